//! Layer-wise learning-rate decay (reference section 6): each parameter group gets
//! `lr * decay^(head_depth - depth)`, with depth 0 for the embeddings (and their projection),
//! `i + 1` for transformer layer `i`, and `head_depth` for the task head.
//!
//! The reference puts the head at depth `L + 2`, a leftover of a removed pooler, so its top layer
//! already gets `decay^2` ([`DepthRule::Reference`], the default, which reproduces published
//! numbers); [`DepthRule::Contiguous`] puts the head at `L + 1` so the top layer gets `decay^1`.

use burn::module::{AutodiffModule, Module, ModuleVisitor, Param, ParamId};
use burn::optim::{GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use crate::model::TaskModel;

/// Where the task head sits in the depth numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DepthRule {
    /// Head at depth `L + 2`, as the reference code (top layer gets `decay^2`).
    #[default]
    Reference,
    /// Head at depth `L + 1` (top layer gets `decay^1`).
    Contiguous,
}

impl DepthRule {
    /// The head's depth for an `layers`-layer encoder.
    pub fn head_depth(self, layers: usize) -> usize {
        match self {
            Self::Reference => layers + 2,
            Self::Contiguous => layers + 1,
        }
    }
}

/// The learning-rate multiplier of a group at `depth`.
pub fn lr_scale(depth: usize, layers: usize, decay: f64, rule: DepthRule) -> f64 {
    let exponent = rule.head_depth(layers).saturating_sub(depth);
    decay.powi(exponent as i32)
}

#[derive(Default)]
struct Ids(Vec<ParamId>);

impl<B: Backend> ModuleVisitor<B> for Ids {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.0.push(param.id);
    }
}

fn ids<B: Backend, M: Module<B>>(m: &M) -> Vec<ParamId> {
    let mut v = Ids::default();
    m.visit(&mut v);
    v.0
}

/// The parameter groups of a task model: `(depth, parameter ids)`, embeddings first, head last.
pub fn depth_groups<B: Backend>(model: &TaskModel<B>, rule: DepthRule) -> Vec<(usize, Vec<ParamId>)> {
    let layers = model.electra.encoder.layers.len();
    let mut embeddings = ids(&model.electra.embeddings);
    if let Some(p) = &model.electra.encoder.embeddings_project {
        embeddings.extend(ids(p));
    }
    if let Some(p) = &model.electra.pooler {
        // Unused by every head; kept in the embeddings' group so that it is never orphaned.
        embeddings.extend(ids(p));
    }
    let mut groups = vec![(0, embeddings)];
    for (i, layer) in model.electra.encoder.layers.iter().enumerate() {
        groups.push((i + 1, ids(layer)));
    }
    let mut head = ids(&model.output);
    if let Some(d) = &model.dense {
        head.extend(ids(d));
    }
    groups.push((rule.head_depth(layers), head));
    groups
}

struct Move<'a, B: AutodiffBackend> {
    from: &'a mut GradientsParams,
    to: GradientsParams,
    only: &'a [ParamId],
    _b: std::marker::PhantomData<B>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Move<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if self.only.contains(&param.id)
            && let Some(g) = self.from.remove::<B::InnerBackend, D>(param.id)
        {
            self.to.register::<B::InnerBackend, D>(param.id, g);
        }
    }
}

/// One optimiser update with layer-wise learning rates: the gradients are split by group and
/// each group is stepped with `lr * lr_scale(depth)`. With `decay = 1` this is one plain step.
pub fn step_layerwise<B, O>(
    optim: &mut O,
    model: TaskModel<B>,
    mut grads: GradientsParams,
    lr: f64,
    decay: f64,
    rule: DepthRule,
) -> TaskModel<B>
where
    B: AutodiffBackend,
    O: Optimizer<TaskModel<B>, B>,
    TaskModel<B>: AutodiffModule<B>,
{
    if decay == 1.0 {
        return optim.step(lr, model, grads);
    }
    let layers = model.electra.encoder.layers.len();
    let mut model = model;
    for (depth, group) in depth_groups(&model, rule) {
        let mut mover = Move::<B> { from: &mut grads, to: GradientsParams::new(), only: &group, _b: std::marker::PhantomData };
        model.visit(&mut mover);
        let part = mover.to;
        if !part.is_empty() {
            model = optim.step(lr * lr_scale(depth, layers, decay, rule), model, part);
        }
    }
    model
}

#[cfg(test)]
mod tests {
    use burn::backend::{Autodiff, Flex};
    use burn::nn::LinearConfig;
    use burn::optim::GradientsParams;
    use electra_model::layers::Pooler;

    use super::*;
    use crate::model::{HeadKind, HeadStyle};
    use crate::run::Feature;
    use crate::step::{batch, loss, loss_denominator};
    use crate::testing::{features, kinds, tiny_model};

    type AB = Autodiff<Flex>;

    /// Every parameter of a module, and those `grads` holds a gradient for.
    struct WithGrad<'a> {
        grads: &'a GradientsParams,
        all: Vec<ParamId>,
        with_grad: Vec<ParamId>,
    }

    impl ModuleVisitor<AB> for WithGrad<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AB, D>>) {
            self.all.push(param.id);
            if self.grads.get::<<AB as AutodiffBackend>::InnerBackend, D>(param.id).is_some() {
                self.with_grad.push(param.id);
            }
        }
    }

    #[test]
    fn every_parameter_with_a_gradient_is_in_exactly_one_depth_group() {
        let device = Default::default();
        for projection in [false, true] {
            for pooler in [false, true] {
                for kind in kinds() {
                    for style in [HeadStyle::Linear, HeadStyle::Hf] {
                        let mut m = tiny_model::<AB>(kind.clone(), style, projection);
                        if pooler {
                            m.electra.pooler = Some(Pooler { dense: LinearConfig::new(8, 8).init(&device) });
                        }
                        let case = format!("{kind:?}, {style:?}, projection {projection}, pooler {pooler}");
                        assert_eq!(m.electra.encoder.embeddings_project.is_some(), projection, "{case}");
                        let sequence = matches!(kind, HeadKind::Sequence { .. } | HeadKind::Regression);
                        assert_eq!(m.dense.is_some(), sequence && style == HeadStyle::Hf, "{case}");
                        let owned = features(&kind);
                        let feats: Vec<&Feature> = owned.iter().collect();
                        let den = loss_denominator(&m.kind, &feats);
                        let l = loss(&m, batch::<AB>(&feats, &device), &feats, den).unwrap_or_else(|e| panic!("{case}: {e}"));
                        let grads = GradientsParams::from_grads(l.backward(), &m);
                        let mut seen = WithGrad { grads: &grads, all: Vec::new(), with_grad: Vec::new() };
                        m.visit(&mut seen);
                        assert!(seen.with_grad.len() > 10, "{case}: only {} gradients", seen.with_grad.len());
                        let groups = depth_groups(&m, DepthRule::Reference);
                        assert_eq!(groups.len(), m.electra.encoder.layers.len() + 2, "{case}");
                        let count = |id: &ParamId| groups.iter().flat_map(|g| &g.1).filter(|&g| g == id).count();
                        for id in &seen.with_grad {
                            assert_eq!(count(id), 1, "{case}: parameter {id:?} with a gradient is in {} groups", count(id));
                        }
                        // Nothing orphaned (a parameter without a gradient today may get one
                        // from another head) and nothing in two groups.
                        for id in &seen.all {
                            assert_eq!(count(id), 1, "{case}: parameter {id:?} is in {} groups", count(id));
                        }
                        let grouped: usize = groups.iter().map(|g| g.1.len()).sum();
                        assert_eq!(grouped, seen.all.len(), "{case}");
                    }
                }
            }
        }
    }
}
