//! Device-side sampling from the generator's logits.

use burn::tensor::backend::Backend;
use burn::tensor::{DType, Distribution, FloatDType, Int, Tensor};

use crate::{Error, Result};

/// Added inside both logarithms of the Gumbel noise, as in the reference.
const GUMBEL_EPS: f64 = 1e-9;

/// Samples one token per row by Gumbel-max at temperature `temperature`, without gradient.
///
/// Returns `argmax(logits / T + g)` per row with `g = -log(-log(u + 1e-9) + 1e-9)` and
/// `u ~ U[0, 1)` drawn on the logits' device (so it follows that backend's seed), which is a draw
/// from `softmax(logits / T)`.
///
/// The logits are detached first, so nothing downstream of the sample can send gradient back
/// into the generator; the result is an `Int` tensor, which carries no gradient either.
/// Half-precision logits are promoted to `f32` before adding the noise, so that `1e-9` does not
/// vanish and `u` cannot round up to 1.
///
/// # Shapes
/// - `logits`: `[n, vocab]`, typically the generator's logits at the chosen positions
/// - returns: `[n]`, ids in `0..vocab`
///
/// # Errors
/// [`Error::InvalidTemperature`] unless `temperature` is finite and positive;
/// [`Error::EmptyVocabulary`] when `vocab == 0`.
pub fn sample_tokens<B: Backend>(
    logits: Tensor<B, 2>,
    temperature: f64,
) -> Result<Tensor<B, 1, Int>> {
    if !(temperature.is_finite() && temperature > 0.0) {
        return Err(Error::InvalidTemperature(temperature));
    }
    let [n, vocab] = logits.dims();
    if vocab == 0 {
        return Err(Error::EmptyVocabulary);
    }
    let logits = logits.detach();
    let logits = match logits.dtype() {
        DType::F16 | DType::BF16 => logits.cast(FloatDType::F32),
        _ => logits,
    };
    let uniform = logits.random_like(Distribution::Default); // [n, vocab]
    let gumbel = uniform
        .add_scalar(GUMBEL_EPS)
        .log()
        .neg()
        .add_scalar(GUMBEL_EPS)
        .log()
        .neg(); // [n, vocab]
    let scaled = if temperature == 1.0 {
        logits
    } else {
        logits.div_scalar(temperature)
    };
    Ok((scaled + gumbel).argmax(1).reshape([n])) // [n, 1] -> [n]
}

/// Samples one token per row from `softmax(logits / T)` on the host, by inverse transform: one
/// uniform draw from `rng` per row, compared with the row's cumulative probabilities.
///
/// The same distribution as [`sample_tokens`]' Gumbel-max (which the reference uses), with one
/// random number per row instead of one per vocabulary entry (about 30,000 times fewer draws and
/// no logarithms). Used by CPU training, where the logits are already in host memory and the
/// draws must come from a batch chunk's own stream. Exponentials in `f32`, sums in `f64`.
///
/// # Shapes
/// - `logits`: `[n * vocab]`, row-major
/// - returns: `[n]`, ids in `0..vocab`
///
/// # Errors
/// [`Error::InvalidTemperature`] unless `temperature` is finite and positive;
/// [`Error::EmptyVocabulary`] when `vocab == 0`; [`Error::LogitsShape`] when the length is not a
/// multiple of `vocab`; [`Error::NonFiniteLogits`] for a row with NaN logits or no finite one.
pub fn sample_tokens_host(
    logits: &[f32],
    vocab: usize,
    temperature: f64,
    rng: &mut impl rand::Rng,
) -> Result<Vec<u32>> {
    sample_tokens_host_by(logits, vocab, temperature, |_| rng.random::<f64>())
}

/// [`sample_tokens_host`] with the uniform draw of row `i` taken from `uniform(i)` (a value in
/// `[0, 1)`): e.g. each masked position from its example's own stream, so that the samples do
/// not depend on how the examples are grouped into batches.
///
/// # Errors
/// As [`sample_tokens_host`].
pub fn sample_tokens_host_by(
    logits: &[f32],
    vocab: usize,
    temperature: f64,
    mut uniform: impl FnMut(usize) -> f64,
) -> Result<Vec<u32>> {
    if !(temperature.is_finite() && temperature > 0.0) {
        return Err(Error::InvalidTemperature(temperature));
    }
    if vocab == 0 {
        return Err(Error::EmptyVocabulary);
    }
    if logits.len() % vocab != 0 || vocab > u32::MAX as usize + 1 {
        return Err(Error::LogitsShape { len: logits.len(), vocab });
    }
    let inv_t = (1.0 / temperature) as f32;
    let mut weights = vec![0.0f32; vocab];
    let mut out = Vec::with_capacity(logits.len() / vocab);
    for (row, values) in logits.chunks_exact(vocab).enumerate() {
        let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        if !max.is_finite() || values.iter().any(|v| v.is_nan()) {
            return Err(Error::NonFiniteLogits { row });
        }
        let mut total = 0.0f64;
        for (w, &v) in weights.iter_mut().zip(values) {
            *w = ((v - max) * inv_t).exp();
            total += f64::from(*w);
        }
        // The largest logit contributes exp(0) = 1, so total >= 1.
        let target = uniform(row) * total;
        let mut acc = 0.0f64;
        // Falls back to the last id with non-zero weight if rounding leaves `target` uncovered.
        let mut pick = weights.iter().rposition(|&w| w > 0.0).unwrap_or(0);
        for (i, &w) in weights.iter().enumerate() {
            acc += f64::from(w);
            if acc > target {
                pick = i;
                break;
            }
        }
        out.push(pick as u32);
    }
    Ok(out)
}

/// Reads a 1-D `Int` tensor of token ids (e.g. [`sample_tokens`]'s output) back to the host.
///
/// # Errors
/// [`Error::InvalidTokenId`] when a value is negative or does not fit in `u32`.
pub fn ids_from_tensor<B: Backend>(ids: Tensor<B, 1, Int>) -> Result<Vec<u32>> {
    ids.into_data()
        .iter::<i64>()
        .map(|id| u32::try_from(id).map_err(|_| Error::InvalidTokenId(id)))
        .collect()
}

#[cfg(test)]
mod tests {
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::TensorData;

    use super::*;

    type B = Flex;

    /// Draws per distribution test: 20,000 rows sampled at once.
    const DRAWS: usize = 20_000;
    /// Largest allowed |empirical - expected| probability: the standard deviation is at most
    /// sqrt(0.25 / 20_000) = 0.0035, so this is over 4 standard deviations.
    const PROB_TOL: f64 = 0.015;
    /// Chi-square critical value for 4 degrees of freedom at p = 1e-5.
    const CHI2_CRIT_DF4: f64 = 28.47;

    fn logits_from_rows(rows: &[Vec<f32>]) -> Tensor<B, 2> {
        let vocab = rows.first().map_or(0, Vec::len);
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        Tensor::from_data(
            TensorData::new(flat, [rows.len(), vocab]),
            &Default::default(),
        )
    }

    /// Samples `DRAWS` rows of `log(p)` at `temperature`; returns the empirical distribution.
    fn empirical(p: &[f64], temperature: f64) -> Result<Vec<f64>> {
        let row: Vec<f32> = p.iter().map(|&x| x.ln() as f32).collect();
        let logits = logits_from_rows(&vec![row; DRAWS]);
        let samples = ids_from_tensor(sample_tokens(logits, temperature)?)?;
        assert_eq!(samples.len(), DRAWS);
        let mut counts = vec![0usize; p.len()];
        for id in samples {
            counts[id as usize] += 1;
        }
        Ok(counts.iter().map(|&c| c as f64 / DRAWS as f64).collect())
    }

    fn assert_matches(observed: &[f64], expected: &[f64]) {
        let max_diff = observed
            .iter()
            .zip(expected)
            .map(|(o, e)| (o - e).abs())
            .fold(0.0, f64::max);
        assert!(max_diff < PROB_TOL, "{observed:?} vs {expected:?}");
        let chi2: f64 = observed
            .iter()
            .zip(expected)
            .map(|(o, e)| DRAWS as f64 * (o - e).powi(2) / e)
            .sum();
        assert!(
            chi2 < CHI2_CRIT_DF4,
            "chi-square {chi2}: {observed:?} vs {expected:?}"
        );
    }

    #[test]
    fn peaked_rows_return_the_argmax() -> Result<()> {
        // The noise lies in [-3.1, 16.7] for f32 u, so a margin of 50 always wins.
        let rows: Vec<Vec<f32>> = (0..64)
            .map(|r| {
                let mut row = vec![0.0f32; 7];
                row[r % 7] = 50.0;
                row
            })
            .collect();
        let samples = ids_from_tensor(sample_tokens(logits_from_rows(&rows), 1.0)?)?;
        let expected: Vec<u32> = (0..64).map(|r| (r % 7) as u32).collect();
        assert_eq!(samples, expected);
        Ok(())
    }

    #[test]
    fn temperature_one_samples_softmax_of_logits() -> Result<()> {
        let p: [f64; 5] = [0.5, 0.25, 0.15, 0.07, 0.03];
        assert_matches(&empirical(&p, 1.0)?, &p);
        Ok(())
    }

    #[test]
    fn temperature_two_flattens_the_distribution() -> Result<()> {
        let p: [f64; 5] = [0.5, 0.25, 0.15, 0.07, 0.03];
        let root: Vec<f64> = p.iter().map(|x: &f64| x.sqrt()).collect();
        let total: f64 = root.iter().sum();
        let expected: Vec<f64> = root.iter().map(|x| x / total).collect();
        let observed = empirical(&p, 2.0)?;
        assert_matches(&observed, &expected);
        // And it is measurably different from p itself.
        assert!((observed[0] - p[0]).abs() > 0.05);
        Ok(())
    }

    #[test]
    fn half_precision_logits_sample_correctly() -> Result<()> {
        let p: [f64; 5] = [0.5, 0.25, 0.15, 0.07, 0.03];
        let row: Vec<f32> = p.iter().map(|&x| x.ln() as f32).collect();
        let logits = logits_from_rows(&vec![row; DRAWS]).cast(FloatDType::F16);
        let samples = ids_from_tensor(sample_tokens(logits, 1.0)?)?;
        let mut observed = vec![0.0; p.len()];
        for id in samples {
            observed[id as usize] += 1.0 / DRAWS as f64;
        }
        assert_matches(&observed, &p);
        Ok(())
    }

    /// The host sampler's empirical distribution over `DRAWS` rows of `log(p)`.
    fn empirical_host(p: &[f64], temperature: f64) -> Result<Vec<f64>> {
        use rand::SeedableRng;
        let row: Vec<f32> = p.iter().map(|&x| x.ln() as f32).collect();
        let flat: Vec<f32> = row.iter().copied().cycle().take(row.len() * DRAWS).collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let samples = sample_tokens_host(&flat, p.len(), temperature, &mut rng)?;
        assert_eq!(samples.len(), DRAWS);
        let mut observed = vec![0.0; p.len()];
        for id in samples {
            observed[id as usize] += 1.0 / DRAWS as f64;
        }
        Ok(observed)
    }

    #[test]
    fn host_sampling_draws_softmax_of_logits_over_temperature() -> Result<()> {
        let p: [f64; 5] = [0.5, 0.25, 0.15, 0.07, 0.03];
        assert_matches(&empirical_host(&p, 1.0)?, &p);
        let root: Vec<f64> = p.iter().map(|x: &f64| x.sqrt()).collect();
        let total: f64 = root.iter().sum();
        let expected: Vec<f64> = root.iter().map(|x| x / total).collect();
        assert_matches(&empirical_host(&p, 2.0)?, &expected);
        Ok(())
    }

    #[test]
    fn host_sampling_never_picks_zero_probability_tokens_and_rejects_bad_rows() {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let row = [f32::NEG_INFINITY, 0.0, f32::NEG_INFINITY, 0.0];
        let flat: Vec<f32> = row.iter().copied().cycle().take(4 * 1000).collect();
        let samples = sample_tokens_host(&flat, 4, 1.0, &mut rng).unwrap_or_default();
        assert_eq!(samples.len(), 1000);
        assert!(samples.iter().all(|&s| s == 1 || s == 3));
        assert_eq!(
            sample_tokens_host(&[0.0, f32::NAN, 1.0, 2.0], 2, 1.0, &mut rng).err(),
            Some(Error::NonFiniteLogits { row: 0 })
        );
        assert_eq!(
            sample_tokens_host(&[0.0, 1.0, f32::NEG_INFINITY, f32::NEG_INFINITY], 2, 1.0, &mut rng).err(),
            Some(Error::NonFiniteLogits { row: 1 })
        );
        assert_eq!(
            sample_tokens_host(&[0.0; 5], 2, 1.0, &mut rng).err(),
            Some(Error::LogitsShape { len: 5, vocab: 2 })
        );
        assert_eq!(sample_tokens_host(&[0.0; 4], 2, 0.0, &mut rng).err(), Some(Error::InvalidTemperature(0.0)));
    }

    #[test]
    fn zero_rows_give_an_empty_sample() -> Result<()> {
        let logits = Tensor::<B, 2>::zeros([0, 5], &Default::default());
        assert!(ids_from_tensor(sample_tokens(logits, 1.0)?)?.is_empty());
        Ok(())
    }

    #[test]
    fn bad_temperature_and_empty_vocabulary_are_errors() {
        for t in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let logits = Tensor::<B, 2>::zeros([2, 3], &Default::default());
            assert!(
                matches!(sample_tokens(logits, t), Err(Error::InvalidTemperature(_))),
                "temperature {t}"
            );
        }
        let logits = Tensor::<B, 2>::zeros([2, 0], &Default::default());
        assert_eq!(
            sample_tokens(logits, 1.0).err(),
            Some(Error::EmptyVocabulary)
        );
    }

    #[test]
    fn negative_ids_are_rejected_on_read_back() {
        let ids = Tensor::<B, 1, Int>::from_ints([3, -1], &Default::default());
        assert_eq!(ids_from_tensor(ids).err(), Some(Error::InvalidTokenId(-1)));
    }

    /// The sample is an `Int` tensor (it cannot carry gradient, which the type signature already
    /// guarantees) and the logits are detached before use; on an autodiff backend the gradient of
    /// a loss that uses the samples only flows through the explicit use of `logits`.
    #[test]
    fn sampling_carries_no_gradient_under_autodiff() -> Result<()> {
        type A = Autodiff<Flex>;
        let device = Default::default();
        let logits = Tensor::<A, 2>::from_data(
            TensorData::new(vec![0.0f32, 50.0, 0.0, 50.0, 0.0, 0.0], [2, 3]),
            &device,
        )
        .require_grad();
        let samples = sample_tokens(logits.clone(), 1.0)?;
        let as_float = samples.clone().float();
        assert!(!as_float.is_require_grad());
        assert!(logits.is_require_grad());
        // loss = sum(logits) + sum(samples): d loss / d logits is exactly 1 everywhere, so no
        // path through the samples contributed.
        let loss = logits.clone().sum() + as_float.sum();
        let grads = loss.backward();
        let grad = logits
            .grad(&grads)
            .map(|g| g.into_data().iter::<f32>().collect::<Vec<_>>());
        assert_eq!(grad, Some(vec![1.0; 6]));
        assert_eq!(ids_from_tensor(samples)?, vec![1, 0]);
        Ok(())
    }
}
