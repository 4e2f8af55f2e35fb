//! The two losses (reference section 3).

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

/// Generator masked-LM loss: cross-entropy over the chosen positions, averaged over them.
///
/// # Shapes
/// - `logits`: `[n, vocab]`, `targets`: `[n]`
/// - output: `[1]`
pub fn mlm_loss<B: Backend>(logits: Tensor<B, 2>, targets: Tensor<B, 1, Int>) -> Tensor<B, 1> {
    let [n, _] = logits.dims();
    mlm_loss_over(logits, targets, n)
}

/// [`mlm_loss`]'s sum divided by `denominator` instead of the number of rows: a chunk of a batch
/// passes the batch's count of chosen positions, so that its chunks' losses add up to the
/// batch's mean.
pub fn mlm_loss_over<B: Backend>(logits: Tensor<B, 2>, targets: Tensor<B, 1, Int>, denominator: usize) -> Tensor<B, 1> {
    let [n, _] = logits.dims();
    let logp = log_softmax(logits, 1).gather(1, targets.reshape([n, 1])); // [n, 1]
    logp.sum().div_scalar(denominator.max(1) as f64).neg()
}

/// Discriminator loss: sigmoid binary cross-entropy over all real tokens (attention mask 1,
/// `[CLS]` and `[SEP]` included), averaged over them. Uses the stable form
/// `max(x, 0) - x y + log(1 + exp(-|x|))`.
///
/// # Shapes
/// - `logits`, `labels` (0/1), `mask` (0/1): `[batch, seq]`
/// - output: `[1]`
pub fn disc_loss<B: Backend>(logits: Tensor<B, 2>, labels: Tensor<B, 2>, mask: Tensor<B, 2>) -> Tensor<B, 1> {
    (bce_with_logits(logits, labels) * mask.clone()).sum() / mask.sum()
}

/// Per-token sigmoid binary cross-entropy in the stable form
/// `max(x, 0) - x y + log(1 + exp(-|x|))`.
fn bce_with_logits<B: Backend>(logits: Tensor<B, 2>, labels: Tensor<B, 2>) -> Tensor<B, 2> {
    logits.clone().clamp_min(0.0) - logits.clone() * labels + logits.abs().neg().exp().log1p()
}

/// [`disc_loss`]'s masked sum divided by `denominator` instead of the number of real tokens (a
/// chunk of a batch passes the batch's count).
pub fn disc_loss_over<B: Backend>(
    logits: Tensor<B, 2>,
    labels: Tensor<B, 2>,
    mask: Tensor<B, 2>,
    denominator: usize,
) -> Tensor<B, 1> {
    (bce_with_logits(logits, labels) * mask).sum().div_scalar(denominator.max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::TensorData;

    type B = Flex;

    #[test]
    fn mlm_loss_matches_a_hand_computation() {
        let d = Default::default();
        let logits = Tensor::<B, 2>::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0, 0.0, 0.0, 0.0], [2, 3]), &d);
        let targets = Tensor::<B, 1, Int>::from_data(TensorData::new(vec![2i64, 0], [2]), &d);
        let loss = mlm_loss(logits, targets).into_scalar().elem::<f32>();
        // Row 0: -log(e^3 / (e^1 + e^2 + e^3)) = 0.40760596; row 1: ln 3 = 1.09861229.
        let expected = (0.407_605_96 + 1.098_612_3) / 2.0;
        assert!((loss - expected).abs() < 1e-5, "{loss} vs {expected}");
    }

    #[test]
    fn chunk_losses_over_the_batch_counts_add_up_to_the_batch_means() {
        let d = Default::default();
        let logits = Tensor::<B, 2>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 0.5, -1.0, 0.0, 2.0, 2.0, -3.0], [3, 3]),
            &d,
        );
        let targets = Tensor::<B, 1, Int>::from_data(TensorData::new(vec![2i64, 0, 1], [3]), &d);
        let whole = mlm_loss(logits.clone(), targets.clone()).into_scalar().elem::<f32>();
        let first = mlm_loss_over(logits.clone().slice(0..1), targets.clone().slice(0..1), 3);
        let rest = mlm_loss_over(logits.slice(1..3), targets.slice(1..3), 3);
        let parts = first.into_scalar().elem::<f32>() + rest.into_scalar().elem::<f32>();
        assert!((whole - parts).abs() < 1e-6, "{whole} vs {parts}");

        let x = Tensor::<B, 2>::from_data(TensorData::new(vec![2.0f32, -1.0, 0.3, 0.0, 1.5, -2.0], [2, 3]), &d);
        let y = Tensor::<B, 2>::from_data(TensorData::new(vec![1.0f32, 0.0, 0.0, 1.0, 0.0, 0.0], [2, 3]), &d);
        let m = Tensor::<B, 2>::from_data(TensorData::new(vec![1.0f32, 1.0, 1.0, 1.0, 1.0, 0.0], [2, 3]), &d);
        let whole = disc_loss(x.clone(), y.clone(), m.clone()).into_scalar().elem::<f32>();
        let top = disc_loss_over(x.clone().slice(0..1), y.clone().slice(0..1), m.clone().slice(0..1), 5);
        let bottom = disc_loss_over(x.slice(1..2), y.slice(1..2), m.slice(1..2), 5);
        let parts = top.into_scalar().elem::<f32>() + bottom.into_scalar().elem::<f32>();
        assert!((whole - parts).abs() < 1e-6, "{whole} vs {parts}");
    }

    #[test]
    fn disc_loss_averages_over_real_tokens_only() {
        let d = Default::default();
        let logits = Tensor::<B, 2>::from_data(TensorData::new(vec![2.0f32, -1.0, 50.0, 0.0], [2, 2]), &d);
        let labels = Tensor::<B, 2>::from_data(TensorData::new(vec![1.0f32, 0.0, 0.0, 1.0], [2, 2]), &d);
        let mask = Tensor::<B, 2>::from_data(TensorData::new(vec![1.0f32, 1.0, 0.0, 1.0], [2, 2]), &d);
        let loss = disc_loss(logits, labels, mask).into_scalar().elem::<f32>();
        // -log(sigmoid(2)) = 0.126928, -log(1 - sigmoid(-1)) = 0.313262, padded 50 ignored,
        // -log(sigmoid(0)) = 0.693147.
        let expected = (0.126_928_f32 + 0.313_262 + std::f32::consts::LN_2) / 3.0;
        assert!((loss - expected).abs() < 1e-5, "{loss} vs {expected}");
    }
}
