//! Host values to model inputs and back: the one conversion between token ids on the host
//! (`u32`, row-major `[batch, seq]`) and tensors on a device.
//!
//! The encoders take three `[batch, seq]` integer tensors: token ids, segment (token type) ids,
//! and the attention mask, **1 for a real token and 0 for padding**. [`InputBatch::pad`] builds
//! all three from unpadded rows; [`int_tensor`] and [`float_tensor`] convert any other host
//! values; [`to_host_f32`] reads a tensor back; [`sigmoid`] and [`softmax`] turn logits into
//! probabilities on the host.
//!
//! From text: electra-tokenizer's `encode_pair` gives a `ModelInput` `m` (`[CLS] A [SEP]`);
//! `InputBatch::pad(&[(&m.input_ids, &m.token_type_ids)], tokenizer.special_tokens().pad,
//! &device)` makes the batch. The discriminator's outputs are logits; [`sigmoid`] makes a logit a
//! probability. The `electra` binary, fine-tuning and the benchmarks all convert through this
//! module.
//!
//! ```
//! # use burn::backend::Flex;
//! use electra_model::input::InputBatch;
//! let device = Default::default();
//! // [CLS] a b [SEP] and [CLS] c [SEP], padded to 4 with id 0.
//! let rows: [(&[u32], &[u32]); 2] = [(&[2, 7, 8, 3], &[0, 0, 0, 0]), (&[2, 9, 3], &[0, 0, 0])];
//! let input = InputBatch::<Flex>::pad(&rows, 0, &device);
//! assert_eq!(input.input_ids.dims(), [2, 4]);
//! assert_eq!(input.mask_host, vec![1, 1, 1, 1, 1, 1, 1, 0]);
//! ```

use burn::prelude::*;
use burn::tensor::TensorData;

/// An `[shape]` integer tensor from host ids.
pub fn int_tensor<B: Backend, const D: usize>(values: &[u32], shape: [usize; D], device: &B::Device) -> Tensor<B, D, Int> {
    let data: Vec<i64> = values.iter().map(|&v| i64::from(v)).collect();
    Tensor::from_data(TensorData::new(data, shape), device)
}

/// An `[shape]` float tensor from host values.
pub fn float_tensor<B: Backend, const D: usize>(values: &[f32], shape: [usize; D], device: &B::Device) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape), device)
}

/// Whether a host attention mask (1 real, 0 padding) has padding.
#[must_use]
pub fn has_padding(mask: &[u32]) -> bool {
    mask.contains(&0)
}

/// A tensor's values on the host as `f32`, row-major (one device-to-host read).
pub fn to_host_f32<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap_or_default()
}

/// The probability that a discriminator (or any binary head) assigns to its positive class,
/// from the logit it returns: the logistic sigmoid `1 / (1 + e^-logit)`.
#[must_use]
pub fn sigmoid(logit: f32) -> f32 {
    1.0 / (1.0 + (-logit).exp())
}

/// Probabilities from the logits of one softmax head (a sequence classifier's labels, a
/// generator's vocabulary at one position): `e^(l - max) / sum`, on the host. Empty for no
/// logits.
#[must_use]
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|&l| (l - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

/// A padded batch on the device: the three `[batch, seq]` inputs of an encoder, and the host
/// mask it was made from.
#[derive(Debug, Clone)]
pub struct InputBatch<B: Backend> {
    /// Token ids, padded with the pad id.
    pub input_ids: Tensor<B, 2, Int>,
    /// Segment ids, 0 on padding.
    pub token_type_ids: Tensor<B, 2, Int>,
    /// 1 for real tokens, 0 for padding.
    pub attention_mask: Tensor<B, 2, Int>,
    /// The attention mask on the host, row-major.
    pub mask_host: Vec<u32>,
    /// Rows.
    pub batch: usize,
    /// Columns (the longest row).
    pub seq: usize,
}

impl<B: Backend> InputBatch<B> {
    /// Whether any position is padding (a 0 in the mask), from the host copy: what
    /// [`crate::ElectraModel::forward_padded`] needs to read nothing back from the device.
    #[must_use]
    pub fn padded(&self) -> bool {
        has_padding(&self.mask_host)
    }

    /// Pads `(ids, type ids)` rows to the longest with `pad` (type 0, mask 0) and uploads them.
    /// An empty row list gives a `[0, 1]` batch; a row's type ids shorter than its ids are 0.
    pub fn pad(rows: &[(&[u32], &[u32])], pad: u32, device: &B::Device) -> Self {
        let seq = rows.iter().map(|(ids, _)| ids.len()).max().unwrap_or(0).max(1);
        let b = rows.len();
        let (mut ids, mut types, mut mask) = (vec![pad; b * seq], vec![0u32; b * seq], vec![0u32; b * seq]);
        for (r, (row_ids, row_types)) in rows.iter().enumerate() {
            for (c, &id) in row_ids.iter().enumerate() {
                ids[r * seq + c] = id;
                types[r * seq + c] = row_types.get(c).copied().unwrap_or(0);
                mask[r * seq + c] = 1;
            }
        }
        Self::from_host(&ids, &types, mask, b, seq, device)
    }

    /// Uploads already padded row-major `[batch, seq]` host values.
    pub fn from_host(ids: &[u32], types: &[u32], mask: Vec<u32>, batch: usize, seq: usize, device: &B::Device) -> Self {
        Self {
            input_ids: int_tensor(ids, [batch, seq], device),
            token_type_ids: int_tensor(types, [batch, seq], device),
            attention_mask: int_tensor(&mask, [batch, seq], device),
            mask_host: mask,
            batch,
            seq,
        }
    }

    /// Whether any position is padding (known on the host, so no device read).
    #[must_use]
    pub fn has_padding(&self) -> bool {
        self.mask_host.contains(&0)
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::Flex;

    use super::*;

    #[test]
    fn rows_are_padded_to_the_longest_with_mask_zero() {
        let device = Default::default();
        let rows: [(&[u32], &[u32]); 2] = [(&[2, 5, 3], &[0, 1, 1]), (&[2, 3], &[0, 0])];
        let x = InputBatch::<Flex>::pad(&rows, 9, &device);
        assert!(x.has_padding());
        let ints = |t: Tensor<Flex, 2, Int>| t.into_data().iter::<i64>().collect::<Vec<_>>();
        assert_eq!(ints(x.input_ids), vec![2, 5, 3, 2, 3, 9]);
        assert_eq!(ints(x.token_type_ids), vec![0, 1, 1, 0, 0, 0]);
        assert_eq!(ints(x.attention_mask), vec![1, 1, 1, 1, 1, 0]);
        assert!((sigmoid(0.0) - 0.5).abs() < 1e-7 && sigmoid(20.0) > 0.999_999);
    }

    #[test]
    fn softmax_gives_probabilities_that_sum_to_one() {
        let p = softmax(&[1.0, 3.0, 1.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6, "{p:?}");
        assert!((p[1] - 0.786_986).abs() < 1e-5 && (p[0] - p[2]).abs() < 1e-9, "{p:?}");
        // No overflow for large logits; nothing for nothing.
        assert_eq!(softmax(&[1000.0, 1000.0]), vec![0.5, 0.5]);
        assert!(softmax(&[]).is_empty());
    }
}
