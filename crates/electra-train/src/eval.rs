//! Evaluation on the validation split: the generator's and the discriminator's metrics with
//! fixed seeds (comparable across steps), and the context-free rarity baseline of the
//! discriminator's AUC.

use burn::prelude::*;
use electra_corrupt::Masker;
use electra_model::ElectraPreTraining;
use electra_tokenizer::ShardReader;

use crate::Result;
use crate::config::PretrainConfig;
use crate::data::Batches;
use crate::metrics::{EvalMetrics, auc};
use crate::step::{Totals, example_seeds, forward, ratio};

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
    let denom = (total + vocab_size) as f64;
    Ok(counts.iter().map(|&c| (-((c as f64 + 1.0) / denom).ln()) as f32).collect())
}

/// Metrics on the first `eval_batches` batches of the validation split, with fixed masking and
/// sampling seeds so that evaluations are comparable across steps. `surprisal` (from
/// [`unigram_surprisal`]) adds the context-free baseline [`EvalMetrics::rarity_auc`].
pub fn evaluate<B: Backend>(
    model: &ElectraPreTraining<B>,
    valid: &ShardReader,
    masker: &Masker,
    config: &PretrainConfig,
    step: u64,
    pad: u32,
    surprisal: Option<&[f32]>,
) -> Result<EvalMetrics> {
    let device = model.embeddings.word_table().device();
    B::seed(&device, config.seed);
    let mut batches = Batches::in_order(valid, pad);
    let micro = (config.batch_size / config.grad_accumulation).max(1);
    let n_batches = config.eval_batches.max(1).min(valid.len().div_ceil(micro));
    let mut totals = Totals::default();
    let mut scored = Vec::new();
    let mut rarity = Vec::new();
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
        if let Some(table) = surprisal {
            let score = |id: u32| table.get(id as usize).copied().unwrap_or(0.0);
            rarity.extend(f.scored_ids.iter().zip(&f.scored).map(|(&id, &(_, y))| (score(id), y)));
        }
        totals.counts.add(&f.counts);
        totals.add_part(mlm_v, disc_v, &batch);
    }
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
        rarity_auc: surprisal.map(|_| auc(&rarity)),
        replaced_fraction: ratio(c.replaced, c.real),
        // The rows actually scored: a short last batch counts its own rows.
        examples: totals.examples,
    })
}
