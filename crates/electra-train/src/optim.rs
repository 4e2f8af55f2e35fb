//! The reference optimiser (Adam with decoupled weight decay, optional bias correction, no decay
//! on biases and LayerNorm parameters) and global gradient-norm clipping, which burn 0.21 lacks
//! (its `GradientClipping::Norm` clips each parameter separately).

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::LearningRate;
use burn::optim::{AdaptiveMomentumState, GradientsParams, MultiGradientsParams, Optimizer, SimpleOptimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

/// `AdamWeightDecayOptimizer` of the reference:
/// `m = b1 m + (1 - b1) g`, `v = b2 v + (1 - b2) g^2`,
/// `p -= lr * (m / (sqrt(v) + eps) + wd * p)` with `wd = 0` for 1-D parameters (every bias and
/// LayerNorm parameter in these models is 1-D, and every 1-D parameter is one of them).
/// With `bias_correction`, `m` and `v` are divided by `1 - b^t` as in the Adam paper.
#[derive(Debug, Clone)]
pub struct ElectraAdam {
    /// beta1.
    pub beta1: f32,
    /// beta2.
    pub beta2: f32,
    /// epsilon.
    pub epsilon: f32,
    /// Decoupled weight decay for matrices.
    pub weight_decay: f32,
    /// Adam's bias correction (off in the reference).
    pub bias_correction: bool,
}

impl ElectraAdam {
    /// The optimiser from a config's values (pre-training and fine-tuning both build it here).
    #[must_use]
    pub fn new(beta1: f64, beta2: f64, epsilon: f64, weight_decay: f64, bias_correction: bool) -> Self {
        Self {
            beta1: beta1 as f32,
            beta2: beta2 as f32,
            epsilon: epsilon as f32,
            weight_decay: weight_decay as f32,
            bias_correction,
        }
    }

    /// The optimiser settings of a pre-training run.
    #[must_use]
    pub fn from_config(config: &crate::PretrainConfig) -> Self {
        Self::new(config.adam_beta1, config.adam_beta2, config.adam_epsilon, config.weight_decay, config.bias_correction)
    }
}

impl<B: Backend> SimpleOptimizer<B> for ElectraAdam {
    type State<const D: usize> = AdaptiveMomentumState<B, D>;

    fn step<const D: usize>(
        &self,
        lr: f64,
        tensor: Tensor<B, D>,
        grad: Tensor<B, D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<B, D>, Option<Self::State<D>>) {
        let (b1, b2) = (self.beta1, self.beta2);
        let state = match state {
            Some(mut s) => {
                s.moment_1 = s.moment_1.mul_scalar(b1).add(grad.clone().mul_scalar(1.0 - b1));
                s.moment_2 = s.moment_2.mul_scalar(b2).add(grad.square().mul_scalar(1.0 - b2));
                s.time += 1;
                s
            }
            None => AdaptiveMomentumState {
                time: 1,
                moment_1: grad.clone().mul_scalar(1.0 - b1),
                moment_2: grad.square().mul_scalar(1.0 - b2),
                max_moment_2: None,
            },
        };
        let (m, v) = if self.bias_correction {
            let t = state.time as i32;
            (
                state.moment_1.clone().div_scalar(1.0 - b1.powi(t)),
                state.moment_2.clone().div_scalar(1.0 - b2.powi(t)),
            )
        } else {
            (state.moment_1.clone(), state.moment_2.clone())
        };
        let mut update = m.div(v.sqrt().add_scalar(self.epsilon));
        if D > 1 && self.weight_decay > 0.0 {
            update = update.add(tensor.clone().mul_scalar(self.weight_decay));
        }
        (tensor.sub(update.mul_scalar(lr)), Some(state))
    }

    fn to_device<const D: usize>(mut state: Self::State<D>, device: &B::Device) -> Self::State<D> {
        state.moment_1 = state.moment_1.to_device(device);
        state.moment_2 = state.moment_2.to_device(device);
        state
    }
}

impl ElectraAdam {
    /// Wraps the rule in burn's adaptor (which keeps one state per parameter and records it),
    /// with no loss scale.
    pub fn init<B: AutodiffBackend, M: AutodiffModule<B>>(self) -> Optim<M, B> {
        Optim { adam: OptimizerAdaptor::from(self), loss_scale: None }
    }
}

/// The optimiser of a module `M` on backend `B`: [`ElectraAdam`] in burn's adaptor, and the
/// dynamic loss scale of f16 training ([`LossScale`]; `None` in other precisions). A burn
/// [`Optimizer`]: `step`, `to_record` and `load_record` are Adam's; the loss scale is saved
/// with a checkpoint's state, not in the record.
#[derive(Clone)]
pub struct Optim<M: AutodiffModule<B>, B: AutodiffBackend> {
    adam: OptimizerAdaptor<ElectraAdam, M, B>,
    /// The loss scale (f16 training).
    pub loss_scale: Option<LossScale>,
}

impl<M: AutodiffModule<B>, B: AutodiffBackend> Optimizer<M, B> for Optim<M, B> {
    type Record = <OptimizerAdaptor<ElectraAdam, M, B> as Optimizer<M, B>>::Record;

    fn step(&mut self, lr: LearningRate, module: M, grads: GradientsParams) -> M {
        self.adam.step(lr, module, grads)
    }

    fn step_multi(&mut self, lr: LearningRate, module: M, grads: MultiGradientsParams) -> M {
        self.adam.step_multi(lr, module, grads)
    }

    fn to_record(&self) -> Self::Record {
        self.adam.to_record()
    }

    fn load_record(self, record: Self::Record) -> Self {
        Self { adam: self.adam.load_record(record), loss_scale: self.loss_scale }
    }
}

/// Dynamic loss scaling for f16 training (as PyTorch's `GradScaler` and NVIDIA's recipes): the
/// loss is multiplied by `scale` before the backward so that small gradients survive f16's
/// range, and the gradients are divided by it before clipping and the update. A step whose
/// scaled gradients overflow (a non-finite norm) is skipped and the scale halved; after
/// [`LossScale::GROWTH_INTERVAL`] finite steps in a row it doubles.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LossScale {
    /// The current factor.
    pub scale: f64,
    /// Finite steps since the last change.
    pub good_steps: u64,
}

impl Default for LossScale {
    fn default() -> Self {
        Self { scale: Self::INITIAL, good_steps: 0 }
    }
}

impl LossScale {
    /// The first scale (2^16, PyTorch's default).
    pub const INITIAL: f64 = 65_536.0;
    /// Finite steps before the scale doubles.
    pub const GROWTH_INTERVAL: u64 = 2000;

    /// Records a step whose scaled gradient norm was `norm`; returns whether its update
    /// applies (the norm is finite).
    pub fn update(&mut self, norm: f64) -> bool {
        if !norm.is_finite() {
            self.scale = (self.scale / 2.0).max(1.0);
            self.good_steps = 0;
            return false;
        }
        self.good_steps += 1;
        if self.good_steps >= Self::GROWTH_INTERVAL {
            self.scale = (self.scale * 2.0).min(f64::from(f32::MAX) / 2.0);
            self.good_steps = 0;
        }
        true
    }
}

struct SquaredNorm<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    total: Option<Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for SquaredNorm<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.get::<B::InnerBackend, D>(param.id) {
            let s = g.square().sum();
            self.total = Some(match self.total.take() {
                Some(t) => t + s,
                None => s,
            });
        }
    }
}

struct Scale<'a, B: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    factor: f64,
    _b: std::marker::PhantomData<B>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Scale<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.remove::<B::InnerBackend, D>(param.id) {
            self.grads.register::<B::InnerBackend, D>(param.id, g.mul_scalar(self.factor));
        }
    }
}

struct ScaleBy<'a, B: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    factor: Tensor<B::InnerBackend, 1>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for ScaleBy<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.remove::<B::InnerBackend, D>(param.id) {
            let factor = self.factor.clone().reshape([1; D]);
            self.grads.register::<B::InnerBackend, D>(param.id, g.mul(factor));
        }
    }
}

/// [`clip_global_norm`] without reading anything back from the device: every gradient is
/// multiplied by `min(1, max_norm / norm)` computed on the device (exactly 1 when the norm is
/// within `max_norm`; NaN when the norm is not finite, which the caller detects when it reads
/// the losses). Returns the norm before clipping as a `[1]` tensor on the device.
pub fn clip_global_norm_on_device<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: &mut GradientsParams,
    max_norm: f64,
) -> Option<Tensor<B::InnerBackend, 1>> {
    let mut v = SquaredNorm::<B> { grads, total: None };
    module.visit(&mut v);
    let norm = v.total?.sqrt();
    let factor = norm.clone().recip().mul_scalar(max_norm).clamp_max(1.0);
    module.visit(&mut ScaleBy::<B> { grads, factor });
    Some(norm)
}

/// Multiplies every gradient of `module` by `factor`.
pub fn scale_gradients<B: AutodiffBackend, M: AutodiffModule<B>>(module: &M, grads: &mut GradientsParams, factor: f64) {
    if factor != 1.0 {
        module.visit(&mut Scale::<B> { grads, factor, _b: std::marker::PhantomData });
    }
}

/// The global L2 norm of all gradients of `module`.
pub fn global_grad_norm<B: AutodiffBackend, M: AutodiffModule<B>>(module: &M, grads: &GradientsParams) -> f64 {
    let mut v = SquaredNorm::<B> { grads, total: None };
    module.visit(&mut v);
    v.total.map(|t| t.into_scalar().elem::<f64>().sqrt()).unwrap_or(0.0)
}

/// Scales all gradients so that their global norm is at most `max_norm` (as
/// `tf.clip_by_global_norm`); returns the norm before clipping.
pub fn clip_global_norm<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: &mut GradientsParams,
    max_norm: f64,
) -> f64 {
    let norm = global_grad_norm::<B, M>(module, grads);
    if norm > max_norm && norm.is_finite() {
        let mut s = Scale::<B> { grads, factor: max_norm / norm, _b: std::marker::PhantomData };
        module.visit(&mut s);
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::Optimizer;
    use burn::tensor::TensorData;

    type B = Autodiff<Flex>;

    fn linear() -> Linear<B> {
        let device = Default::default();
        let mut l = LinearConfig::new(2, 2).init::<B>(&device);
        l.weight = Param::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2]), &device);
        l.bias = Some(Param::from_data(TensorData::new(vec![0.5f32, -0.5], [2]), &device));
        l
    }

    #[test]
    fn clipping_uses_the_global_norm() {
        let l = linear();
        let x = Tensor::<B, 2>::from_data(TensorData::new(vec![1.0f32, 1.0], [1, 2]), &Default::default());
        // loss = sum(W^T x + b): dL/dW = [[1,1],[1,1]], dL/db = [1,1]; global norm sqrt(6).
        let grads = l.forward(x).sum().backward();
        let mut grads = GradientsParams::from_grads(grads, &l);
        let norm = clip_global_norm::<B, _>(&l, &mut grads, 1.0);
        assert!((norm - 6f64.sqrt()).abs() < 1e-6, "{norm}");
        let after = global_grad_norm::<B, _>(&l, &grads);
        assert!((after - 1.0).abs() < 1e-6, "{after}");
        // Each gradient keeps its direction: dL/db is scaled by 1/sqrt(6), not clipped alone.
        let gb = grads.get::<Flex, 1>(l.bias.as_ref().unwrap().id).unwrap().into_data().to_vec::<f32>().unwrap();
        assert!((gb[0] - 1.0 / 6f32.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn adam_step_matches_a_hand_computation() {
        let l = linear();
        let x = Tensor::<B, 2>::from_data(TensorData::new(vec![1.0f32, 2.0], [1, 2]), &Default::default());
        let grads = GradientsParams::from_grads(l.forward(x).sum().backward(), &l);
        let rule = ElectraAdam { beta1: 0.9, beta2: 0.999, epsilon: 1e-6, weight_decay: 0.01, bias_correction: false };
        let mut optim = rule.init::<B, Linear<B>>();
        let l2 = optim.step(0.1, l, grads);
        // W (burn layout [in, out]) grad = x^T 1 = [[1,1],[2,2]]. No bias correction:
        // m = 0.1 g, v = 0.001 g^2, update = m / (sqrt v + eps) + wd * w.
        let w = [1.0f32, 2.0, 3.0, 4.0];
        let g = [1.0f32, 1.0, 2.0, 2.0];
        let w2 = l2.weight.val().into_data().to_vec::<f32>().unwrap();
        for i in 0..4 {
            let upd = 0.1 * g[i] / ((0.001f32 * g[i] * g[i]).sqrt() + 1e-6) + 0.01 * w[i];
            assert!((w2[i] - (w[i] - 0.1 * upd)).abs() < 1e-5, "{i}: {} vs {}", w2[i], w[i] - 0.1 * upd);
        }
        // Biases are not decayed.
        let b2 = l2.bias.unwrap().val().into_data().to_vec::<f32>().unwrap();
        let upd = 0.1f32 / (0.001f32.sqrt() + 1e-6);
        assert!((b2[0] - (0.5 - 0.1 * upd)).abs() < 1e-5);
    }
}
