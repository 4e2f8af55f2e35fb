//! One fine-tuning step: the loss of a batch of [`Feature`]s (over the whole batch's
//! denominator, so that batch chunks add up to it), backward (in chunks when configured), the
//! non-finite check, global-norm clipping and the layer-wise decayed optimiser update at the
//! scheduled learning rate. [`train_step`] is what [`finetune`](crate::finetune) runs for every
//! batch, and what `electra bench` times.

use burn::module::AutodiffModule;
use burn::optim::{GradientsAccumulator, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::AutodiffBackend;
use electra_model::input::{InputBatch, float_tensor, int_tensor};
use electra_train::chunks::backward_in_chunks;
use electra_train::optim::clip_global_norm;
use electra_train::seed::derive_seed;

use crate::model::{HeadKind, TaskModel};
use crate::optim::step_layerwise;
use crate::run::{Feature, FinetuneConfig, Target};
use crate::{Error, Result};

/// The id padding is filled with (BERT's `[PAD]`; masked out, so any id would do).
const PAD: u32 = 0;

/// `features` padded to the longest and uploaded (mask 1 on real tokens).
pub(crate) fn batch<B: Backend>(features: &[&Feature], device: &B::Device) -> InputBatch<B> {
    let rows: Vec<(&[u32], &[u32])> =
        features.iter().map(|f| (f.input_ids.as_slice(), f.token_type_ids.as_slice())).collect();
    InputBatch::pad(&rows, PAD, device)
}

/// What one [`train_step`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepOutcome {
    /// The batch's training loss, before the update (mean per example; per labelled token for
    /// tagging).
    pub loss: f64,
    /// The learning rate of the step ([`FinetuneConfig::learning_rate_at`]): the task head's;
    /// lower groups get it scaled by layer-wise decay.
    pub lr: f64,
    /// The global gradient norm before clipping.
    pub grad_norm: f64,
}

/// One optimiser step on the batch `features`, exactly as [`finetune`](crate::finetune) runs
/// it: the loss over the whole batch's denominator (examples, or labelled tokens for tagging);
/// with `config.chunk_size`, forward and backward in chunks on rayon's threads (each with the
/// dropout stream `derive_seed(derive_seed(config.seed, step), chunk)`), gradients added in
/// chunk order; an error when the loss is not finite; global-norm clipping at
/// `config.max_grad_norm`; then the layer-wise decayed update at
/// `config.learning_rate_at(step, total)`. `step` is 0-based, `total` the run's number of steps.
///
/// # Errors
/// An empty batch, a feature without a target of the head's kind, a label out of range, or a
/// loss that is not finite (the model is consumed: lower the learning rate and start again).
pub fn train_step<B, O>(
    model: TaskModel<B>,
    optim: &mut O,
    config: &FinetuneConfig,
    features: &[&Feature],
    step: usize,
    total: usize,
) -> Result<(TaskModel<B>, StepOutcome)>
where
    B: AutodiffBackend,
    O: Optimizer<TaskModel<B>, B>,
    TaskModel<B>: AutodiffModule<B>,
{
    if features.is_empty() {
        return Err(Error::Invalid("a training batch has no features".into()));
    }
    let device = model.output.weight.val().device();
    let denominator = loss_denominator(&model.kind, features);
    let rows_per_chunk = config.chunk_size.unwrap_or(0);
    let (mut grads, value) = if rows_per_chunk > 0 && features.len() > rows_per_chunk {
        let mut acc = GradientsAccumulator::new();
        let seed = derive_seed(config.seed, step as u64);
        let parts = backward_in_chunks(&model, features.len(), rows_per_chunk, seed, &mut acc, |replica, _, rows| {
            let part = &features[rows];
            let l = loss(replica, batch::<B>(part, &device), part, denominator)?;
            let value = l.clone().into_scalar().elem::<f64>();
            Ok::<_, Error>((l, value))
        })?;
        (acc.grads(), parts.iter().sum::<f64>())
    } else {
        let l = loss(&model, batch::<B>(features, &device), features, denominator)?;
        let value = l.clone().into_scalar().elem::<f64>();
        (GradientsParams::from_grads(l.backward(), &model), value)
    };
    if !value.is_finite() {
        return Err(Error::Invalid(format!("loss became {value} at step {step}; lower the learning rate")));
    }
    let grad_norm = clip_global_norm::<B, _>(&model, &mut grads, config.max_grad_norm);
    let lr = config.learning_rate_at(step, total);
    let model = step_layerwise(optim, model, grads, lr, config.layer_decay, config.depth_rule);
    Ok((model, StepOutcome { loss: value, lr, grad_norm }))
}

/// Negative log-likelihood of `targets` (`None` = ignored) under `logits` `[n, classes]`, summed
/// and divided by `counted` (the number of targets of the whole batch, of which these rows may
/// be a chunk).
fn cross_entropy<B: Backend>(logits: Tensor<B, 2>, targets: &[Option<usize>], counted: usize) -> Result<Tensor<B, 1>> {
    let device = logits.device();
    let [n, classes] = logits.dims();
    if let Some(bad) = targets.iter().flatten().find(|&&t| t >= classes) {
        return Err(Error::Invalid(format!("label index {bad} out of range for {classes} outputs")));
    }
    // In range of `classes` (checked above), which a tensor's shape keeps below u32::MAX.
    let idx: Vec<u32> = targets.iter().map(|t| t.unwrap_or(0) as u32).collect();
    let weight: Vec<f32> = targets.iter().map(|t| if t.is_some() { 1.0 } else { 0.0 }).collect();
    let idx = int_tensor::<B, 2>(&idx, [n, 1], &device);
    let weight = float_tensor::<B, 2>(&weight, [n, 1], &device);
    let picked = log_softmax(logits, 1).gather(1, idx);
    Ok(picked.mul(weight).sum().neg().div_scalar(counted.max(1) as f32))
}

/// What [`loss`] divides by for the batch `features`: the number of labelled tokens for token
/// tagging, of examples otherwise.
pub(crate) fn loss_denominator(kind: &HeadKind, features: &[&Feature]) -> usize {
    match kind {
        HeadKind::Token { .. } => features
            .iter()
            .map(|f| match &f.target {
                Some(Target::Tokens(labels)) => labels.iter().take(f.input_ids.len()).flatten().count(),
                _ => 0,
            })
            .sum(),
        _ => features.len(),
    }
}

/// The training loss of `features` (a batch, or a chunk of one): per-example (per labelled token
/// for tagging) losses summed and divided by `denominator`, [`loss_denominator`] of the whole
/// batch, so that a batch's chunks add up to its mean.
pub(crate) fn loss<B: Backend>(
    model: &TaskModel<B>,
    batch: InputBatch<B>,
    features: &[&Feature],
    denominator: usize,
) -> Result<Tensor<B, 1>> {
    let device = batch.input_ids.device();
    let b = features.len();
    let missing = || Error::Invalid("a training feature has no target".into());
    match &model.kind {
        HeadKind::Sequence { .. } => {
            let logits = model.forward_sequence(batch.input_ids, batch.token_type_ids, batch.attention_mask);
            let t = features
                .iter()
                .map(|f| match f.target {
                    Some(Target::Class(c)) => Ok(Some(c)),
                    _ => Err(missing()),
                })
                .collect::<Result<Vec<_>>>()?;
            cross_entropy(logits, &t, denominator)
        }
        HeadKind::Regression => {
            let pred = model.forward_sequence(batch.input_ids, batch.token_type_ids, batch.attention_mask).reshape([b]);
            let t = features
                .iter()
                .map(|f| match f.target {
                    Some(Target::Value(v)) => Ok(v),
                    _ => Err(missing()),
                })
                .collect::<Result<Vec<_>>>()?;
            let t = float_tensor::<B, 1>(&t, [b], &device);
            Ok(pred.sub(t).square().sum().div_scalar(denominator.max(1) as f64))
        }
        HeadKind::Token { .. } => {
            let s = batch.seq;
            let logits = model.forward_tokens(batch.input_ids, batch.token_type_ids, batch.attention_mask);
            let n = logits.dims()[2];
            let mut t = vec![None; b * s];
            for (r, f) in features.iter().enumerate() {
                let Some(Target::Tokens(labels)) = &f.target else { return Err(missing()) };
                for (c, l) in labels.iter().enumerate().take(s) {
                    t[r * s + c] = *l;
                }
            }
            cross_entropy(logits.reshape([b * s, n]), &t, denominator)
        }
        HeadKind::Span => {
            let s = batch.seq;
            let mask = batch.attention_mask.clone();
            let logits = model.forward_tokens(batch.input_ids, batch.token_type_ids, batch.attention_mask);
            // Padding can never be an answer: push its logits far down.
            let bias = mask.float().neg().add_scalar(1.0).mul_scalar(-1.0e4);
            let start = logits.clone().slice([0..b, 0..s, 0..1]).reshape([b, s]).add(bias.clone());
            let end = logits.slice([0..b, 0..s, 1..2]).reshape([b, s]).add(bias);
            let mut st = Vec::with_capacity(b);
            let mut en = Vec::with_capacity(b);
            for f in features {
                let Some(Target::Span { start, end }) = f.target else { return Err(missing()) };
                st.push(Some(start.min(s - 1)));
                en.push(Some(end.min(s - 1)));
            }
            Ok(cross_entropy(start, &st, denominator)?.add(cross_entropy(end, &en, denominator)?).div_scalar(2.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::{Autodiff, Flex};
    use electra_model::input::to_host_f32;

    use super::*;
    use crate::model::HeadStyle;
    use crate::testing::{features, kinds, tiny_model};

    type B = Flex;

    fn model(kind: HeadKind) -> TaskModel<B> {
        tiny_model(kind, HeadStyle::Linear, false)
    }

    #[test]
    fn chunk_losses_over_the_batch_denominator_add_up_to_the_batch_loss() -> Result<()> {
        let two = || vec!["a".to_string(), "b".to_string()];
        for kind in [HeadKind::Sequence { labels: two() }, HeadKind::Regression, HeadKind::Token { labels: two() }, HeadKind::Span] {
            let m = model(kind.clone());
            let owned = features(&kind);
            let feats: Vec<&Feature> = owned.iter().collect();
            let device = Default::default();
            let den = loss_denominator(&m.kind, &feats);
            let whole = loss(&m, batch::<B>(&feats, &device), &feats, den)?.into_scalar().elem::<f64>();
            let mut parts = 0.0;
            for rows in [0..2, 2..3, 3..5] {
                let part = &feats[rows];
                parts += loss(&m, batch::<B>(part, &device), part, den)?.into_scalar().elem::<f64>();
            }
            assert!(whole.is_finite() && whole > 0.0, "{kind:?}: {whole}");
            assert!((whole - parts).abs() < 1e-5 * whole.max(1.0), "{kind:?}: whole {whole} vs chunks {parts}");
        }
        Ok(())
    }

    #[test]
    fn a_step_updates_the_model_and_reports_its_loss_rate_and_norm() -> Result<()> {
        type AB = Autodiff<Flex>;
        for kind in kinds() {
            for chunk_size in [None, Some(2)] {
                let config = FinetuneConfig { chunk_size, layer_decay: 0.8, ..FinetuneConfig::default() };
                let m = tiny_model::<AB>(kind.clone(), HeadStyle::Linear, false);
                let (head, embeddings) = (to_host_f32(m.output.weight.val()), to_host_f32(m.electra.embeddings.word_embeddings.weight.val()));
                let mut optim = config.adam().init::<AB, TaskModel<AB>>();
                let owned = features(&kind);
                let feats: Vec<&Feature> = owned.iter().collect();
                let (m, out) = train_step(m, &mut optim, &config, &feats, 3, 10)?;
                assert!(out.loss.is_finite() && out.loss > 0.0, "{kind:?}: {out:?}");
                assert_eq!(out.lr, config.learning_rate_at(3, 10));
                assert!(out.grad_norm.is_finite() && out.grad_norm > 0.0, "{kind:?}: {out:?}");
                assert_ne!(head, to_host_f32(m.output.weight.val()), "{kind:?}: the head did not move");
                let moved = to_host_f32(m.electra.embeddings.word_embeddings.weight.val());
                assert_ne!(embeddings, moved, "{kind:?}: the embeddings (lowest depth group) did not move");
                let empty = train_step(m, &mut optim, &config, &[], 4, 10);
                assert!(matches!(empty, Err(Error::Invalid(_))), "an empty batch was not refused");
            }
        }
        Ok(())
    }
}
