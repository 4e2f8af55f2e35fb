//! Evaluation on the validation split: the generator's and the discriminator's metrics with
//! fixed seeds (comparable across steps), the context-free rarity baseline of the
//! discriminator's AUC, and two context probes that rarity cannot carry.
//!
//! A discriminator can beat chance without reading context: replaced tokens are rarer than the
//! tokens they replace, so scoring a token by its rarity alone reaches
//! [`EvalMetrics::rarity_auc`]. The probes separate the two:
//! - [`binned_auc`]: the AUC within bins of tokens of similar frequency, averaged;
//! - the unigram probe ([`EvalMetrics::unigram_auc`]): the same held-out positions replaced by
//!   draws from the unigram distribution, which are as rare as the tokens they replace.
//!
//! Each comes with the rarity scorer's value on the same tokens (near 0.5).

use burn::prelude::*;
use electra_corrupt::{Masker, replace_tokens};
use electra_model::ElectraPreTraining;
use electra_model::input::{has_padding, int_tensor, sigmoid, to_host_f32};
use electra_tokenizer::ShardReader;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::Result;
use crate::config::PretrainConfig;
use crate::data::{Batches, HostBatch};
use crate::metrics::{EvalMetrics, auc};
use crate::seed::derive_seed;
use crate::step::{Totals, UNIGRAM_STREAM, example_seeds, forward, mask_examples, ratio};

/// The width of [`binned_auc`]'s frequency bins in the evaluation, in nats of surprisal: the
/// tokens of a bin are within a factor 1.65 of each other's frequency.
pub const BIN_WIDTH: f32 = 0.5;

/// Unigram frequencies of (at most `max_tokens` of) a split's tokens, read in order: the rarity
/// baseline's scores and the unigram probe's replacements.
#[derive(Debug, Clone)]
pub struct Unigram {
    surprisal: Vec<f32>,
    /// Running totals of the counts of the ids that may be drawn (`cumulative[i]` = counts of
    /// ids `0..=i`).
    cumulative: Vec<u64>,
}

impl Unigram {
    /// Counts `split`'s tokens. `exclude` (the special tokens) are never drawn by
    /// [`Unigram::sample`]; they keep their surprisal.
    ///
    /// # Errors
    /// Reading the shards.
    pub fn count(split: &ShardReader, vocab_size: usize, max_tokens: usize, exclude: &[u32]) -> Result<Self> {
        let mut counts = vec![0u64; vocab_size];
        let mut total = 0usize;
        for i in 0..split.len() {
            if total >= max_tokens {
                break;
            }
            let (ids, _) = split.get(i)?;
            total += ids.len();
            for id in ids {
                if let Some(c) = counts.get_mut(id as usize) {
                    *c += 1;
                }
            }
        }
        Ok(Self::from_counts(counts, exclude))
    }

    /// From token counts by id (`exclude` as in [`Unigram::count`]).
    pub fn from_counts(mut counts: Vec<u64>, exclude: &[u32]) -> Self {
        let total: u64 = counts.iter().sum();
        let denom = (total + counts.len() as u64) as f64;
        let surprisal = counts.iter().map(|&c| (-((c as f64 + 1.0) / denom).ln()) as f32).collect();
        for &id in exclude {
            if let Some(c) = counts.get_mut(id as usize) {
                *c = 0;
            }
        }
        let cumulative = counts
            .iter()
            .scan(0u64, |sum, &c| {
                *sum += c;
                Some(*sum)
            })
            .collect();
        Self { surprisal, cumulative }
    }

    /// `-ln p(id)` under add-one-smoothed frequencies, by id.
    pub fn surprisal(&self) -> &[f32] {
        &self.surprisal
    }

    /// The id whose share of the counted tokens holds `u` in `[0, 1)` (a draw from the unigram
    /// distribution, excluded ids left out); id 0 when nothing was counted.
    pub fn sample(&self, u: f64) -> u32 {
        let total = self.cumulative.last().copied().unwrap_or(0);
        if total == 0 {
            return 0;
        }
        let target = ((u.clamp(0.0, 1.0) * total as f64) as u64).min(total - 1);
        // The first id whose running total exceeds the target.
        self.cumulative.partition_point(|&c| c <= target) as u32
    }
}

/// Training tokens counted for [`EvalMetrics::rarity_auc`]'s unigram frequencies.
pub(crate) const RARITY_SAMPLE_TOKENS: usize = 4_000_000;

/// How surprising each token id is without context: `-ln p(id)` under add-one-smoothed unigram
/// frequencies of (at most `max_tokens` of) `split`'s examples, read in order. Scoring tokens by
/// it gives the AUC that a discriminator which ignores context can reach
/// ([`EvalMetrics::rarity_auc`]).
///
/// # Errors
/// Reading the shards.
pub fn unigram_surprisal(split: &ShardReader, vocab_size: usize, max_tokens: usize) -> Result<Vec<f32>> {
    Ok(Unigram::count(split, vocab_size, max_tokens, &[])?.surprisal)
}

/// The ROC AUC of `scored` over pairs of tokens of similar frequency: the entries binned by
/// `rarity` (each token's unigram surprisal, parallel to `scored`) into bins `width` nats wide,
/// the AUC within each bin, averaged with each bin weighted by its number of
/// (replaced, original) pairs. Bins that hold one class only are left out; `None` when none
/// holds both. Within a bin the tokens' frequencies differ by at most a factor `e^width`, so
/// rarity alone cannot carry this AUC.
pub fn binned_auc(scored: &[(f32, bool)], rarity: &[f32], width: f32) -> Option<f64> {
    let mut bins = std::collections::BTreeMap::<i64, Vec<(f32, bool)>>::new();
    for (&s, &r) in scored.iter().zip(rarity) {
        bins.entry((r / width).floor() as i64).or_default().push(s);
    }
    let (mut sum, mut pairs) = (0.0f64, 0.0f64);
    for bin in bins.values() {
        let positives = bin.iter().filter(|s| s.1).count();
        let weight = (positives * (bin.len() - positives)) as f64;
        if weight > 0.0 {
            sum += weight * auc(bin);
            pairs += weight;
        }
    }
    (pairs > 0.0).then(|| sum / pairs)
}

/// The unigram probe on one batch: the positions the masker chooses (each example from its own
/// masking stream, as in the main evaluation), each replaced by a draw from `unigram` (each
/// example from its own probe stream), scored by the discriminator. Returns, for every real
/// token, its probability of being replaced, its label and its id.
fn unigram_probe<B: Backend>(
    model: &ElectraPreTraining<B>,
    batch: &HostBatch,
    masker: &Masker,
    seeds: &[u64],
    unigram: &Unigram,
) -> Result<Vec<(f32, bool, u32)>> {
    let masked = mask_examples(masker, batch, seeds)?;
    let (b, s) = (batch.batch, batch.seq);
    let mut rngs: Vec<ChaCha8Rng> =
        seeds.iter().map(|&x| ChaCha8Rng::seed_from_u64(derive_seed(x, UNIGRAM_STREAM))).collect();
    let samples: Vec<u32> =
        masked.positions.iter().map(|&p| unigram.sample(rngs[p as usize / s].random::<f64>())).collect();
    let (ids, labels) = replace_tokens(&batch.input_ids, &masked.positions, &samples)?;
    let device = model.embeddings.word_table().device();
    let logits = model.discriminator_logits(
        int_tensor(&ids, [b, s], &device),
        int_tensor(&batch.token_type_ids, [b, s], &device),
        int_tensor(&batch.attention_mask, [b, s], &device),
        has_padding(&batch.attention_mask),
    );
    let logits = to_host_f32(logits);
    Ok(logits
        .iter()
        .zip(&labels)
        .zip(&batch.attention_mask)
        .zip(&ids)
        .filter(|(((_, _), m), _)| **m == 1)
        .map(|(((&logit, &label), _), &id)| (sigmoid(logit), label == 1, id))
        .collect())
}

/// Metrics on the first `eval_batches` batches of the validation split, with fixed masking and
/// sampling seeds so that evaluations are comparable across steps. `unigram` (from
/// [`Unigram::count`] over the training split) adds the context-free baseline
/// [`EvalMetrics::rarity_auc`] and the context probes.
/// Runs in the run's precision (`config.precision`).
pub fn evaluate<B: Backend>(
    model: &ElectraPreTraining<B>,
    valid: &ShardReader,
    masker: &Masker,
    config: &PretrainConfig,
    step: u64,
    pad: u32,
    unigram: Option<&Unigram>,
) -> Result<EvalMetrics> {
    electra_model::autocast(config.precision, || {
        let device = model.embeddings.word_table().device();
        B::seed(&device, config.seed);
        let mut batches = Batches::in_order(valid, pad);
        let micro = (config.batch_size / config.grad_accumulation).max(1);
        let n_batches = config.eval_batches.max(1).min(valid.len().div_ceil(micro));
        let mut totals = Totals::default();
        let mut scored = Vec::new();
        let mut rarity = Vec::new();
        let mut probe = Vec::new();
        let mut counts = std::collections::HashMap::<u32, usize>::new();
        for k in 0..n_batches {
            let size = micro.min(valid.len() - (k * micro).min(valid.len())).max(1);
            let batch = batches.batch((k * micro) as u64, size)?;
            // Example i of the validation split always gets the same masks, at every evaluation.
            let seeds = example_seeds(config.seed, (k * micro) as u64, batch.batch);
            let f = forward(model, &batch, masker, config.objective, config.temperature, &seeds, true)?;
            let (mlm_v, disc_v) = f.loss_values();
            for &t in &f.targets {
                *counts.entry(t).or_default() += 1;
            }
            scored.extend_from_slice(&f.scored);
            if let Some(unigram) = unigram {
                let table = unigram.surprisal();
                let score = |id: u32| table.get(id as usize).copied().unwrap_or(0.0);
                rarity.extend(f.scored_ids.iter().zip(&f.scored).map(|(&id, &(_, y))| (score(id), y)));
                if config.objective == crate::Objective::Electra {
                    probe.extend(unigram_probe(model, &batch, masker, &seeds, unigram)?.into_iter().map(
                        |(p, y, id)| (p, y, score(id)),
                    ));
                }
            }
            totals.counts.add(&f.counts);
            totals.add_part(mlm_v, disc_v, &batch);
        }
        // Each scored token's rarity, parallel to `scored` (the bins of the binned AUC).
        let rarity_scores: Vec<f32> = rarity.iter().map(|&(r, _)| r).collect();
        let (tp, fp, fneg) = scored.iter().fold((0usize, 0usize, 0usize), |(tp, fp, fneg), &(p, y)| {
            let pred = p > 0.5;
            (tp + usize::from(pred && y), fp + usize::from(pred && !y), fneg + usize::from(!pred && y))
        });
        let (mlm_loss, disc_loss) = totals.mean_losses();
        let most_common = counts.values().copied().max().unwrap_or(0);
        let c = totals.counts;
        Ok(EvalMetrics {
            step,
            mlm_loss,
            disc_loss,
            gen_accuracy: ratio(c.gen_correct, c.predictions),
            unigram_accuracy: ratio(most_common, c.predictions),
            disc_accuracy: ratio(c.disc_correct, c.real),
            precision: ratio(tp, tp + fp),
            recall: ratio(tp, tp + fneg),
            auc: auc(&scored),
            rarity_auc: unigram.map(|_| auc(&rarity)),
            binned_auc: binned_auc(&scored, &rarity_scores, BIN_WIDTH),
            binned_rarity_auc: binned_auc(&rarity, &rarity_scores, BIN_WIDTH),
            unigram_auc: (!probe.is_empty()).then(|| auc(&probe.iter().map(|&(p, y, _)| (p, y)).collect::<Vec<_>>())),
            unigram_rarity_auc: (!probe.is_empty())
                .then(|| auc(&probe.iter().map(|&(_, y, r)| (r, y)).collect::<Vec<_>>())),
            replaced_fraction: ratio(c.replaced, c.real),
            // The rows actually scored: a short last batch counts its own rows.
            examples: totals.examples,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tokens in four frequency levels (rarity 1..=4, 100 tokens each); the rarer the level, the
    /// more of its tokens are replaced, so rarity alone separates the classes overall.
    fn levels() -> (Vec<bool>, Vec<f32>) {
        let mut labels = Vec::new();
        let mut rarity = Vec::new();
        for level in 1..=4u8 {
            for i in 0..100u32 {
                // Level k has 20k replaced tokens of its 100.
                labels.push(i < 20 * u32::from(level));
                rarity.push(f32::from(level));
            }
        }
        (labels, rarity)
    }

    #[test]
    fn rarity_alone_scores_one_half_within_bins_and_context_scores_one() {
        let (labels, rarity) = levels();
        let by_rarity: Vec<(f32, bool)> = rarity.iter().zip(&labels).map(|(&r, &y)| (r, y)).collect();
        assert!(auc(&by_rarity) > 0.7, "rarity carries the plain AUC: {}", auc(&by_rarity));
        assert_eq!(binned_auc(&by_rarity, &rarity, BIN_WIDTH), Some(0.5), "one level per bin: all ties");
        // Bins two levels wide: within one, rarity orders the pairs of different levels.
        assert!(binned_auc(&by_rarity, &rarity, 2.0).unwrap() > 0.55);
        // A scorer that reads "context" (here: knows the label) is perfect in every bin.
        let context: Vec<(f32, bool)> = labels.iter().map(|&y| (if y { 0.9 } else { 0.1 }, y)).collect();
        assert_eq!(binned_auc(&context, &rarity, BIN_WIDTH), Some(1.0));
        // Rarity plus a weak context signal: the bins keep the context part only.
        let mixed: Vec<(f32, bool)> =
            labels.iter().zip(&rarity).map(|(&y, &r)| (r + if y { 0.5 } else { 0.0 }, y)).collect();
        assert_eq!(binned_auc(&mixed, &rarity, BIN_WIDTH), Some(1.0));
        // Weighted by pairs: a bin of 1 x 1 pairs counts 1, one of 10 x 10 counts 100.
        let rarity = [[1.0f32; 2].as_slice(), &[3.0; 20]].concat();
        let mut scored = vec![(0.1, true), (0.9, false)]; // wrong way round: AUC 0
        scored.extend((0..20).map(|i| (if i < 10 { 0.9 } else { 0.1 }, i < 10))); // AUC 1
        let expected = 100.0 / 101.0;
        assert!((binned_auc(&scored, &rarity, BIN_WIDTH).unwrap() - expected).abs() < 1e-12);
    }

    #[test]
    fn bins_with_one_class_are_left_out() {
        let rarity = [1.0, 1.0, 2.0, 2.0, 3.0, 3.0];
        // Bin 1: both classes, perfectly ordered; bins 2 and 3: negatives only.
        let scored = [(0.9, true), (0.1, false), (0.5, false), (0.6, false), (0.2, false), (0.3, false)];
        assert_eq!(binned_auc(&scored, &rarity, BIN_WIDTH), Some(1.0));
        assert_eq!(binned_auc(&scored[2..], &rarity[2..], BIN_WIDTH), None);
        assert_eq!(binned_auc(&[], &[], BIN_WIDTH), None);
    }

    #[test]
    fn unigram_draws_follow_the_counts_and_never_excluded_ids() {
        // ids: 0 [PAD] 0 counts, 1 [CLS] frequent but excluded, 2..=4 in ratio 1:2:5.
        let u = Unigram::from_counts(vec![0, 1000, 10, 20, 50], &[0, 1]);
        let n = 8000;
        let mut drawn = [0usize; 5];
        for k in 0..n {
            drawn[u.sample((k as f64 + 0.5) / n as f64) as usize] += 1;
        }
        assert_eq!(drawn, [0, 0, 1000, 2000, 5000]);
        assert_eq!(u.sample(0.0), 2);
        assert_eq!(u.sample(1.0), 4, "u = 1 is clamped to the last id");
        // Excluded ids keep their rarity score: [CLS] is frequent, hence not surprising.
        assert!(u.surprisal()[1] < u.surprisal()[2]);
        assert_eq!(Unigram::from_counts(vec![0, 0], &[]).sample(0.3), 0, "nothing counted");
    }
}
