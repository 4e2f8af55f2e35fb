//! Where parameters come from and where they go.
//!
//! Every module is built by one `build` function that asks a [`ParamSource`] for each tensor by
//! its HuggingFace name, and written by one `visit` function that hands each tensor to a
//! [`ParamSink`]. Random initialisation ([`RandomInit`]) and checkpoint import
//! ([`crate::hf::TensorMap`]) are two sources of the same walk, so the module structure is
//! described once.
//!
//! Tensors cross this boundary in burn's layout; the only layout difference from PyTorch is the
//! dense weight, `[in, out]` in burn and `[out, in]` in PyTorch, which sources and sinks transpose
//! (on the host, so that modules always hold contiguous tensors).

use burn::module::Param;
use burn::nn::{Embedding, LayerNorm, LayerNormConfig, Linear};
use burn::prelude::*;
use burn::tensor::TensorData;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::Result;

/// The role of a parameter: decides its initialisation and its PyTorch layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A dense (linear) weight: `[in, out]` here, `[out, in]` in PyTorch; truncated normal.
    Dense,
    /// An embedding table `[n, d]`; truncated normal.
    Embedding,
    /// A bias; zeros.
    Bias,
    /// A LayerNorm scale; ones.
    Scale,
}

/// Something that provides parameter tensors by HuggingFace name.
pub trait ParamSource {
    /// The tensor `name` with burn-layout `shape` as f32 data.
    fn take(&mut self, name: &str, shape: &[usize], kind: Kind) -> Result<TensorData>;
    /// Whether an optional tensor (a BERT pooler, say) is available.
    fn contains(&self, name: &str) -> bool;
}

/// Something that receives parameter tensors by HuggingFace name (burn layout).
pub trait ParamSink {
    /// Receives the tensor `name`.
    fn put(&mut self, name: &str, data: TensorData, kind: Kind);
}

/// BERT initialisation: truncated normal (redrawn beyond two standard deviations, as
/// TensorFlow's `truncated_normal`) for dense and embedding weights, zeros for biases, ones for
/// LayerNorm scales. Drawn on the host from a seeded ChaCha8 stream, so the same seed gives the
/// same model on every backend.
#[derive(Debug)]
pub struct RandomInit {
    rng: ChaCha8Rng,
    std: f64,
}

impl RandomInit {
    /// A source with the given standard deviation (`initializer_range`, 0.02) and seed.
    pub fn new(std: f64, seed: u64) -> Self {
        Self { rng: ChaCha8Rng::seed_from_u64(seed), std }
    }

    fn truncated_normal(&mut self) -> f32 {
        loop {
            // Box-Muller; one value per draw keeps the stream simple.
            let u1: f64 = self.rng.random::<f64>().max(f64::MIN_POSITIVE);
            let u2: f64 = self.rng.random::<f64>();
            let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            if z.abs() <= 2.0 {
                return (z * self.std) as f32;
            }
        }
    }
}

impl ParamSource for RandomInit {
    fn take(&mut self, _name: &str, shape: &[usize], kind: Kind) -> Result<TensorData> {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = match kind {
            Kind::Dense | Kind::Embedding => (0..n).map(|_| self.truncated_normal()).collect(),
            Kind::Bias => vec![0.0; n],
            Kind::Scale => vec![1.0; n],
        };
        Ok(TensorData::new(values, shape.to_vec()))
    }

    fn contains(&self, _name: &str) -> bool {
        false
    }
}

/// Joins a prefix and a name with a dot, dropping the dot when the prefix is empty.
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() { name.to_string() } else { format!("{prefix}.{name}") }
}

fn param<B: Backend, const D: usize>(data: TensorData, device: &B::Device) -> Param<Tensor<B, D>> {
    Param::from_tensor(Tensor::from_data(data, device))
}

fn data<B: Backend, const D: usize>(p: &Param<Tensor<B, D>>) -> TensorData {
    p.val().into_data().convert::<f32>()
}

/// Builds a dense layer `name.weight` / `name.bias`.
pub fn build_linear<B: Backend>(
    src: &mut impl ParamSource,
    name: &str,
    d_in: usize,
    d_out: usize,
    device: &B::Device,
) -> Result<Linear<B>> {
    let weight = src.take(&join(name, "weight"), &[d_in, d_out], Kind::Dense)?;
    let bias = src.take(&join(name, "bias"), &[d_out], Kind::Bias)?;
    Ok(Linear { weight: param(weight, device), bias: Some(param(bias, device)) })
}

pub fn visit_linear<B: Backend>(l: &Linear<B>, name: &str, sink: &mut impl ParamSink) {
    sink.put(&join(name, "weight"), data(&l.weight), Kind::Dense);
    if let Some(b) = &l.bias {
        sink.put(&join(name, "bias"), data(b), Kind::Bias);
    }
}

/// Builds a LayerNorm `name.weight` / `name.bias`.
pub(crate) fn build_layer_norm<B: Backend>(
    src: &mut impl ParamSource,
    name: &str,
    d: usize,
    eps: f64,
    device: &B::Device,
) -> Result<LayerNorm<B>> {
    let gamma = src.take(&join(name, "weight"), &[d], Kind::Scale)?;
    let beta = src.take(&join(name, "bias"), &[d], Kind::Bias)?;
    let mut ln = LayerNormConfig::new(d).with_epsilon(eps).init(device);
    ln.gamma = param(gamma, device);
    ln.beta = Some(param(beta, device));
    Ok(ln)
}

pub(crate) fn visit_layer_norm<B: Backend>(
    ln: &LayerNorm<B>,
    name: &str,
    sink: &mut impl ParamSink,
) {
    sink.put(&join(name, "weight"), data(&ln.gamma), Kind::Scale);
    if let Some(b) = &ln.beta {
        sink.put(&join(name, "bias"), data(b), Kind::Bias);
    }
}

/// Builds an embedding table `name.weight` of shape `[n, d]`.
pub(crate) fn build_embedding<B: Backend>(
    src: &mut impl ParamSource,
    name: &str,
    n: usize,
    d: usize,
    device: &B::Device,
) -> Result<Embedding<B>> {
    let weight = src.take(&join(name, "weight"), &[n, d], Kind::Embedding)?;
    Ok(Embedding { weight: param(weight, device) })
}

pub(crate) fn visit_embedding<B: Backend>(e: &Embedding<B>, name: &str, sink: &mut impl ParamSink) {
    sink.put(&join(name, "weight"), data(&e.weight), Kind::Embedding);
}

/// Builds a free vector parameter (the generator's output bias).
pub(crate) fn build_vector<B: Backend>(
    src: &mut impl ParamSource,
    name: &str,
    n: usize,
    device: &B::Device,
) -> Result<Param<Tensor<B, 1>>> {
    Ok(param(src.take(name, &[n], Kind::Bias)?, device))
}

pub(crate) fn visit_vector<B: Backend>(
    p: &Param<Tensor<B, 1>>,
    name: &str,
    sink: &mut impl ParamSink,
) {
    sink.put(name, data(p), Kind::Bias);
}

/// Transposes a row-major 2-D f32 buffer `[rows, cols]` into `[cols, rows]`.
pub fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_normal_is_bounded_and_has_the_right_spread() {
        let mut init = RandomInit::new(0.02, 7);
        let d = init.take("w", &[200, 100], Kind::Dense).unwrap().to_vec::<f32>().unwrap();
        assert!(d.iter().all(|x| x.abs() <= 0.04 + 1e-7));
        let mean = d.iter().sum::<f32>() / d.len() as f32;
        let var = d.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / d.len() as f32;
        // A normal truncated at 2 sigma has std 0.880 sigma.
        assert!(mean.abs() < 1e-3, "mean {mean}");
        assert!((var.sqrt() - 0.0176).abs() < 5e-4, "std {}", var.sqrt());
        let b = init.take("b", &[5], Kind::Bias).unwrap().to_vec::<f32>().unwrap();
        assert_eq!(b, vec![0.0; 5]);
        let s = init.take("s", &[3], Kind::Scale).unwrap().to_vec::<f32>().unwrap();
        assert_eq!(s, vec![1.0; 3]);
    }

    #[test]
    fn transpose_swaps_axes() {
        assert_eq!(transpose(&[1., 2., 3., 4., 5., 6.], 2, 3), vec![1., 4., 2., 5., 3., 6.]);
    }
}
