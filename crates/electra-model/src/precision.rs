//! Mixed precision: matrix multiplies in bf16 or f16, everything else in f32.
//!
//! [`autocast`] runs a closure with a compute precision installed on the current thread, as
//! PyTorch's `torch.autocast` does: inside it every matrix multiply of the models (the linear
//! layers, the attention scores and context, the generator's tied output projection) casts its
//! operands to the half type, multiplies there, and casts the product back to `f32`. The
//! parameters stay `f32` (they are the master weights, and the optimiser state is `f32` too);
//! the casts are tracked by autodiff, so the gradients of a half-precision product come back as
//! `f32`. LayerNorm, softmax, GELU, dropout, the losses and the generator's sampling stay in
//! `f32`. One difference from PyTorch's autocast: a product is cast back to `f32` at once
//! (PyTorch keeps it in half precision until an `f32` operation), so element-wise work between
//! two products (bias, GELU, the residual) runs in `f32`.
//!
//! Outside [`autocast`], or with [`Precision::F32`], every model computes exactly as before
//! (the casts are not even recorded).
//!
//! bf16 keeps `f32`'s exponent range, so it needs no loss scaling; f16 does (the trainer's
//! dynamic loss scale). Both pay off on GPUs with half-precision matrix units; on CPUs the
//! half types are converted in software and are slower than `f32`.

use std::cell::Cell;

use burn::prelude::*;
use burn::tensor::{DType, FloatDType};
use serde::{Deserialize, Serialize};

/// The precision of the models' matrix multiplies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in `f32` (the default).
    #[default]
    F32,
    /// Matrix multiplies in bfloat16 (8-bit exponent, 7-bit mantissa).
    Bf16,
    /// Matrix multiplies in IEEE half precision (5-bit exponent, 10-bit mantissa); training
    /// needs loss scaling.
    F16,
}

impl Precision {
    /// The half type of the matrix multiplies; `None` for [`Precision::F32`].
    #[must_use]
    pub fn compute_dtype(self) -> Option<FloatDType> {
        match self {
            Self::F32 => None,
            Self::Bf16 => Some(FloatDType::BF16),
            Self::F16 => Some(FloatDType::F16),
        }
    }

    /// Its name as the command line and configs spell it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
            Self::F16 => "f16",
        }
    }

    /// True for [`Precision::F32`] (serde's `skip_serializing_if`, so that configs of `f32`
    /// runs are unchanged).
    #[must_use]
    pub fn is_f32(&self) -> bool {
        *self == Self::F32
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float32" => Ok(Self::F32),
            "bf16" | "bfloat16" => Ok(Self::Bf16),
            "f16" | "fp16" | "float16" | "half" => Ok(Self::F16),
            other => Err(format!("unknown precision `{other}` (expected f32, bf16 or f16)")),
        }
    }
}

thread_local! {
    static COMPUTE: Cell<Option<FloatDType>> = const { Cell::new(None) };
}

/// Restores the previous precision when dropped (also when `f` panics).
struct Restore(Option<FloatDType>);

impl Drop for Restore {
    fn drop(&mut self) {
        COMPUTE.with(|c| c.set(self.0));
    }
}

/// Runs `f` with the models' matrix multiplies in `precision` on this thread (module docs).
/// Nests: the previous precision is restored afterwards. Work that `f` hands to other threads
/// (batch chunks on rayon's pool) must install it there too: [`current`] reads it.
pub fn autocast<R>(precision: Precision, f: impl FnOnce() -> R) -> R {
    let _restore = Restore(COMPUTE.with(|c| c.replace(precision.compute_dtype())));
    f()
}

/// The precision installed on this thread by [`autocast`] ([`Precision::F32`] outside it).
#[must_use]
pub fn current() -> Precision {
    match COMPUTE.with(Cell::get) {
        Some(FloatDType::BF16) => Precision::Bf16,
        Some(FloatDType::F16) => Precision::F16,
        _ => Precision::F32,
    }
}

/// `a.matmul(b)` in the installed precision, the product in `a`'s float type.
pub fn matmul<B: Backend, const D: usize>(a: Tensor<B, D>, b: Tensor<B, D>) -> Tensor<B, D> {
    match COMPUTE.with(Cell::get) {
        None => a.matmul(b),
        Some(half) => {
            let out = float_dtype(a.dtype());
            a.cast(half).matmul(b.cast(half)).cast(out)
        }
    }
}

/// `linear.forward(x)` in the installed precision (weight and bias cast to the half type, the
/// output cast back to `x`'s float type).
pub fn linear<B: Backend, const D: usize>(linear: &burn::nn::Linear<B>, x: Tensor<B, D>) -> Tensor<B, D> {
    match COMPUTE.with(Cell::get) {
        None => linear.forward(x),
        Some(half) => {
            let out = float_dtype(x.dtype());
            let bias = linear.bias.as_ref().map(|b| b.val().cast(half));
            burn::tensor::module::linear(x.cast(half), linear.weight.val().cast(half), bias).cast(out)
        }
    }
}

/// The float type of a float tensor's dtype (`f32` for anything unexpected).
fn float_dtype(dtype: DType) -> FloatDType {
    match dtype {
        DType::F64 => FloatDType::F64,
        DType::F16 => FloatDType::F16,
        DType::BF16 => FloatDType::BF16,
        _ => FloatDType::F32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print() {
        for p in [Precision::F32, Precision::Bf16, Precision::F16] {
            assert_eq!(p.name().parse::<Precision>(), Ok(p));
        }
        assert_eq!("BF16".parse::<Precision>(), Ok(Precision::Bf16));
        assert!("f8".parse::<Precision>().unwrap_err().contains("f8"));
    }

    #[test]
    fn autocast_installs_and_restores_even_on_panic() {
        assert_eq!(current(), Precision::F32);
        autocast(Precision::Bf16, || {
            assert_eq!(current(), Precision::Bf16);
            autocast(Precision::F16, || assert_eq!(current(), Precision::F16));
            assert_eq!(current(), Precision::Bf16);
        });
        assert_eq!(current(), Precision::F32);
        let _ = std::panic::catch_unwind(|| autocast(Precision::F16, || panic!("inside")));
        assert_eq!(current(), Precision::F32);
    }
}
