//! One pre-training step: masking, generator, sampling, discriminator, losses, backward (whole
//! micro-batches or batch chunks), global-norm clipping and the optimiser update.
//!
//! One optimiser step: for each micro-batch, mask (host, each example from its own stream), run
//! the generator on the masked input, compute the MLM loss at the chosen positions only, sample
//! replacements (no gradient), run the discriminator on the corrupted input, add
//! `disc_weight x` its loss, backpropagate and accumulate; then clip the global gradient norm and
//! apply the reference Adam. Every random draw of step `t` (masking, sampling, dropout) is seeded
//! from `(seed, t)`.
//!
//! Two paths, one switch ([`host_path`]): with batch chunks (CPU backends) sampling, replacement
//! and counts run on the host from each example's streams and every step's values are read; without
//! them (GPU backends, `forward_on_device`) they are tensor operations and a step reads nothing
//! back from the device until its [`StepOutcome`] is asked for its values. Evaluation
//! (`forward`) reads what it scores.

use burn::optim::{GradientsAccumulator, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::IndexingUpdateOp;
use burn::tensor::backend::AutodiffBackend;
use electra_corrupt::{
    MaskedBatch, Masker, MaskingConfig, Scheme, SpecialIds, ids_from_tensor, replace_tokens, sample_tokens,
    sample_tokens_host_by,
};
use electra_model::{ElectraPreTraining, Precision};
use electra_model::input::{float_tensor, has_padding, int_tensor, sigmoid, to_host_f32};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::chunks::backward_in_chunks;
use crate::config::{Objective, PretrainConfig};
use crate::data::HostBatch;
use crate::loss::{disc_loss_over, mlm_loss_over};
use crate::metrics::StepMetrics;
use crate::optim::{LossScale, clip_global_norm, clip_global_norm_on_device, global_grad_norm, scale_gradients};
use crate::dist::{Local, Reduce};
use crate::seed::derive_seed;
use crate::{Error, Result};

/// The seed of every random draw of step `step`.
#[must_use]
pub fn step_seed(seed: u64, step: u64) -> u64 {
    derive_seed(seed, step)
}

/// The outcome of one forward pass on a micro-batch.
pub(crate) struct Forward<B: Backend> {
    pub mlm: Tensor<B, 1>,
    pub disc: Option<Tensor<B, 1>>,
    pub counts: Counts,
    /// Discriminator probabilities and labels over real tokens (evaluation only).
    pub scored: Vec<(f32, bool)>,
    /// The discriminator's input token at each entry of `scored` (evaluation only).
    pub scored_ids: Vec<u32>,
    /// Targets, for the unigram baseline (evaluation only).
    pub targets: Vec<u32>,
}

impl<B: Backend> Forward<B> {
    /// The two losses as host values (the discriminator's is 0 when it did not run).
    pub(crate) fn loss_values(&self) -> (f32, f32) {
        let mlm = self.mlm.clone().into_scalar().elem::<f32>();
        let disc = self.disc.clone().map(|d| d.into_scalar().elem::<f32>()).unwrap_or(0.0);
        (mlm, disc)
    }

    /// The loss to backpropagate: `(mlm + disc_weight x disc) / grad_accumulation`.
    fn training_loss(&self, config: &PretrainConfig) -> Tensor<B, 1> {
        let mut loss = self.mlm.clone();
        if let Some(d) = self.disc.clone() {
            loss = loss + d.mul_scalar(config.disc_weight);
        }
        loss.div_scalar(config.grad_accumulation as f64)
    }
}

/// `loss` times f16's loss scale (1 in the other precisions: no operation recorded).
fn scale_loss<B: Backend>(loss: Tensor<B, 1>, scale: f64) -> Tensor<B, 1> {
    if scale == 1.0 { loss } else { loss.mul_scalar(scale) }
}

/// The random streams of one example: its masking and its generator samples.
const MASK_STREAM: u64 = 0;
const SAMPLE_STREAM: u64 = 1;
/// The unigram probe's replacements ([`crate::eval`]).
pub(crate) const UNIGRAM_STREAM: u64 = 2;

/// The seeds of `rows` consecutive examples whose first is example `first` of the step (or of
/// the evaluation) seeded by `seed`: every random draw of an example comes from its own seed, so
/// it does not depend on which batch, chunk or rank the example lands in.
pub(crate) fn example_seeds(seed: u64, first: u64, rows: usize) -> Vec<u64> {
    (0..rows as u64).map(|r| derive_seed(seed, first + r)).collect()
}

/// Masks `batch`, each row from its example's own masking stream.
pub(crate) fn mask_examples(masker: &Masker, batch: &HostBatch, seeds: &[u64]) -> Result<MaskedBatch> {
    let mut rngs: Vec<ChaCha8Rng> =
        seeds.iter().map(|&s| ChaCha8Rng::seed_from_u64(derive_seed(s, MASK_STREAM))).collect();
    Ok(masker.mask_rows(&batch.input_ids, &batch.attention_mask, batch.batch, batch.seq, &mut rngs)?)
}

/// One forward pass: masking (each example from its seed in `seeds`), generator, sampling
/// (Gumbel-max on the device), discriminator, losses (means over the micro-batch).
pub(crate) fn forward<B: Backend>(
    model: &ElectraPreTraining<B>,
    batch: &HostBatch,
    masker: &Masker,
    objective: Objective,
    temperature: f64,
    seeds: &[u64],
    collect: bool,
) -> Result<Forward<B>> {
    let masked = mask_examples(masker, batch, seeds)?;
    let run = Run { objective, temperature, collect };
    forward_masked(model, batch, &masked, Norms::of(batch, &masked), run, Sampling::Device)
}

/// The denominators of the two losses: the whole micro-batch's counts (over every rank), so
/// that the losses of its chunks (and ranks) add up to the micro-batch's means.
#[derive(Debug, Clone, Copy)]
struct Norms {
    predictions: usize,
    real_tokens: usize,
}

impl Norms {
    /// The counts of a whole (micro-)batch and its masking.
    fn of(batch: &HostBatch, masked: &MaskedBatch) -> Self {
        Self {
            predictions: masked.positions.len(),
            real_tokens: batch.attention_mask.iter().filter(|&&m| m == 1).count(),
        }
    }
}

/// What a forward pass computes.
#[derive(Debug, Clone, Copy)]
struct Run {
    objective: Objective,
    temperature: f64,
    collect: bool,
}

/// Where the generator's replacements are drawn.
enum Sampling<'a> {
    /// Gumbel-max on the device, from the backend's generator.
    Device,
    /// Inverse transform on the host, each masked position from its example's sampling stream
    /// (the examples' seeds, one per row of the batch).
    Host(&'a [u64]),
}

/// Generator, sampling, discriminator and losses on an already masked batch; the losses are sums
/// divided by `norms` (means when `norms` are this batch's own counts).
fn forward_masked<B: Backend>(
    model: &ElectraPreTraining<B>,
    batch: &HostBatch,
    masked: &MaskedBatch,
    norms: Norms,
    run: Run,
    sampling: Sampling<'_>,
) -> Result<Forward<B>> {
    let device = model.embeddings.word_table().device();
    let (b, s) = (batch.batch, batch.seq);
    let types = int_tensor::<B, 2>(&batch.token_type_ids, [b, s], &device);
    let mask = int_tensor::<B, 2>(&batch.attention_mask, [b, s], &device);
    let n = masked.positions.len();
    let real_tokens = batch.attention_mask.iter().filter(|&&m| m == 1).count();
    let padded = real_tokens < b * s;
    let mut out = Forward {
        mlm: Tensor::zeros([1], &device),
        disc: None,
        counts: Counts { predictions: n, real: real_tokens, ..Counts::default() },
        scored: Vec::new(),
        scored_ids: Vec::new(),
        targets: if run.collect { masked.targets.clone() } else { Vec::new() },
    };
    let mut samples = Vec::new();
    if n > 0 {
        let ids = int_tensor(&masked.input_ids, [b, s], &device);
        let hidden = model.generator_hidden(ids, types.clone(), mask.clone(), padded);
        let positions = int_tensor::<B, 1>(&masked.positions, [n], &device);
        let logits = model.generator_logits_at(hidden, positions); // [n, vocab]
        let targets = int_tensor::<B, 1>(&masked.targets, [n], &device);
        out.mlm = mlm_loss_over(logits.clone(), targets, norms.predictions);
        let predicted = match sampling {
            Sampling::Device => {
                let predicted = ids_from_tensor(logits.clone().detach().argmax(1).reshape([n]))?;
                if run.objective == Objective::Electra {
                    samples = ids_from_tensor(sample_tokens(logits, run.temperature)?)?;
                }
                predicted
            }
            Sampling::Host(seeds) => {
                let host = to_host_f32(logits.detach());
                let vocab = host.len() / n;
                if run.objective == Objective::Electra {
                    let mut rngs: Vec<ChaCha8Rng> =
                        seeds.iter().map(|&s| ChaCha8Rng::seed_from_u64(derive_seed(s, SAMPLE_STREAM))).collect();
                    let rows: Vec<usize> = masked.positions.iter().map(|&p| p as usize / s).collect();
                    samples = sample_tokens_host_by(&host, vocab, run.temperature, |i| rngs[rows[i]].random::<f64>())?;
                }
                host.chunks_exact(vocab.max(1)).map(argmax_host).collect()
            }
        };
        out.counts.gen_correct = predicted.iter().zip(&masked.targets).filter(|(p, t)| p == t).count();
    }
    // A micro-batch without a masked position (on any rank) trains the generator only (nothing
    // to detect); a chunk or rank's part without one still runs the discriminator, whose loss is
    // part of its micro-batch's.
    if run.objective == Objective::Mlm || norms.predictions == 0 {
        return Ok(out);
    }
    let (disc_ids, labels) = replace_tokens(&batch.input_ids, &masked.positions, &samples)?;
    let disc_logits = model.discriminator_logits(int_tensor(&disc_ids, [b, s], &device), types, mask, padded); // [batch, seq]
    let as_f32 = |v: &[u32]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
    let label_t = float_tensor::<B, 2>(&as_f32(&labels), [b, s], &device);
    let mask_t = float_tensor::<B, 2>(&as_f32(&batch.attention_mask), [b, s], &device);
    out.disc = Some(disc_loss_over(disc_logits.clone(), label_t, mask_t, norms.real_tokens));
    let logits_host = to_host_f32(disc_logits.detach());
    for (((&logit, &label), &m), &id) in logits_host.iter().zip(&labels).zip(&batch.attention_mask).zip(&disc_ids) {
        if m == 0 {
            continue;
        }
        out.counts.replaced += label as usize;
        out.counts.disc_correct += usize::from((logit > 0.0) == (label == 1));
        if run.collect {
            out.scored.push((sigmoid(logit), label == 1));
            out.scored_ids.push(id);
        }
    }
    Ok(out)
}

/// The losses and counts of a training pass that stay on the device until a step's metrics are
/// read: `[mlm, disc, gen_correct, replaced, disc_correct]`, summed over micro-batches.
const TALLIES: usize = 5;

/// One training pass on the device ([`train_step_dist`] without batch chunks): generator, MLM
/// loss, Gumbel-max sampling from the backend's generator, replacement and labels, discriminator
/// and its loss, all as tensor operations, so that nothing is read back from the device. The
/// host supplies what it already has: the masked batch (masking needs each example's own stream
/// and whole-word boundaries), the loss denominators and whether the batch has padding.
///
/// Returns the loss to backpropagate and the pass's `[TALLIES]` tallies (detached).
fn forward_on_device<B: Backend>(
    model: &ElectraPreTraining<B>,
    batch: &HostBatch,
    masked: &MaskedBatch,
    norms: Norms,
    config: &PretrainConfig,
) -> Result<(Tensor<B, 1>, Tensor<B, 1>)> {
    let device = model.embeddings.word_table().device();
    let (b, s) = (batch.batch, batch.seq);
    let n = masked.positions.len();
    let types = int_tensor::<B, 2>(&batch.token_type_ids, [b, s], &device);
    let mask = int_tensor::<B, 2>(&batch.attention_mask, [b, s], &device);
    let padded = has_padding(&batch.attention_mask);
    let zero = || Tensor::<B, 1>::zeros([1], &device);
    let electra = config.objective == Objective::Electra;
    let mut disc_ids = int_tensor::<B, 1>(&batch.input_ids, [b * s], &device);
    let mut labels = Tensor::<B, 1>::zeros([b * s], &device);
    let (mut mlm, mut gen_correct) = (zero(), zero());
    if n > 0 {
        let ids = int_tensor(&masked.input_ids, [b, s], &device);
        let hidden = model.generator_hidden(ids, types.clone(), mask.clone(), padded);
        let positions = int_tensor::<B, 1>(&masked.positions, [n], &device);
        let logits = model.generator_logits_at(hidden, positions.clone()); // [n, vocab]
        let targets = int_tensor::<B, 1>(&masked.targets, [n], &device);
        mlm = mlm_loss_over(logits.clone(), targets.clone(), norms.predictions);
        let predicted = logits.clone().detach().argmax(1).reshape([n]);
        gen_correct = predicted.equal(targets.clone()).int().sum().float();
        if electra {
            let samples = sample_tokens(logits, config.temperature)?; // [n]
            // The original token at a chosen position is its target: adding `sample - target`
            // there replaces it (positions are distinct); the label is 1 where they differ.
            let delta = samples.clone() - targets.clone();
            disc_ids = disc_ids.select_assign(0, positions.clone(), delta, IndexingUpdateOp::Add);
            let changed = samples.not_equal(targets).float(); // [n]
            labels = labels.select_assign(0, positions, changed, IndexingUpdateOp::Add);
        }
    }
    let mut loss = mlm.clone();
    let (mut disc, mut replaced, mut disc_correct) = (zero(), zero(), zero());
    // As on the host path: a micro-batch without a masked position (on any rank) trains the
    // generator only; a rank's part without one still runs the discriminator.
    if electra && norms.predictions > 0 {
        let labels = labels.reshape([b, s]);
        let mask_f = mask.clone().float();
        let disc_logits = model.discriminator_logits(disc_ids.reshape([b, s]), types, mask, padded); // [batch, seq]
        let d = disc_loss_over(disc_logits.clone(), labels.clone(), mask_f.clone(), norms.real_tokens);
        loss = loss + d.clone().mul_scalar(config.disc_weight);
        let predicted = disc_logits.detach().greater_elem(0.0).float();
        // 1 where the prediction equals the label, over real tokens.
        disc_correct = ((predicted - labels.clone()).abs().neg() + 1.0).mul(mask_f).sum();
        replaced = labels.sum();
        disc = d;
    }
    let tallies = Tensor::cat(vec![mlm.detach(), disc.detach(), gen_correct, replaced, disc_correct], 0);
    Ok((loss.div_scalar(config.grad_accumulation as f64), tallies))
}

/// The index of a row's largest value (the first on ties).
fn argmax_host(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best as u32
}

/// Rows `rows` of a batch and of its masking (flat positions shifted to the chunk).
fn chunk_of(batch: &HostBatch, masked: &MaskedBatch, rows: std::ops::Range<usize>) -> (HostBatch, MaskedBatch) {
    let s = batch.seq;
    let (lo, hi) = (rows.start * s, rows.end * s);
    let first = masked.positions.partition_point(|&p| (p as usize) < lo);
    let last = masked.positions.partition_point(|&p| (p as usize) < hi);
    let part = HostBatch {
        input_ids: batch.input_ids[lo..hi].to_vec(),
        token_type_ids: batch.token_type_ids[lo..hi].to_vec(),
        attention_mask: batch.attention_mask[lo..hi].to_vec(),
        batch: rows.len(),
        seq: s,
    };
    let m = MaskedBatch {
        input_ids: masked.input_ids[lo..hi].to_vec(),
        positions: masked.positions[first..last].iter().map(|&p| p - lo as u32).collect(),
        targets: masked.targets[first..last].to_vec(),
        batch: rows.len(),
        seq: s,
    };
    (part, m)
}

/// One (already masked) micro-batch in chunks of `config.chunk_size` rows
/// ([`backward_in_chunks`]): each chunk runs forward and backward with its own dropout stream
/// (seeded by `micro_seed` and the chunk's index) and its examples' sampling streams, its
/// losses divided by the whole micro-batch's counts `norms` (and the backward's loss
/// multiplied by `loss_scale`). Returns the loss values.
#[allow(clippy::too_many_arguments)]
fn chunked_micro_batch<B: AutodiffBackend>(
    model: &ElectraPreTraining<B>,
    batch: &HostBatch,
    masked: &MaskedBatch,
    (norms, loss_scale): (Norms, f64),
    seeds: &[u64],
    config: &PretrainConfig,
    micro_seed: u64,
    accumulator: &mut GradientsAccumulator<ElectraPreTraining<B>>,
    totals: &mut Totals,
) -> Result<(f32, f32)> {
    let run = Run { objective: config.objective, temperature: config.temperature, collect: false };
    let chunk = config.chunk_size.unwrap_or(0);
    let parts = backward_in_chunks(model, batch.batch, chunk, micro_seed, accumulator, |replica, _, rows| {
        let part_seeds = &seeds[rows.clone()];
        let (part, part_masked) = chunk_of(batch, masked, rows);
        let f = forward_masked(replica, &part, &part_masked, norms, run, Sampling::Host(part_seeds))?;
        Ok::<_, Error>((scale_loss(f.training_loss(config), loss_scale), (f.loss_values(), f.counts)))
    })?;
    let (mut mlm, mut disc) = (0.0f32, 0.0f32);
    for ((m, d), counts) in parts {
        mlm += m;
        disc += d;
        totals.counts.add(&counts);
    }
    Ok((mlm, disc))
}

/// The masker of a run: `config`'s masking settings, BERT's 80/10/10 scheme for the MLM
/// objective; `continuation` marks `##` pieces (whole-word masking only).
pub fn masker(config: &PretrainConfig, special: SpecialIds, continuation: Option<Vec<bool>>) -> Result<Masker> {
    Ok(Masker::new(
        MaskingConfig {
            mask_prob: config.mask_prob,
            mask_token_prob: config.mask_token_prob,
            max_seq_len: config.max_seq_len,
            whole_word: config.whole_word,
            scheme: if config.objective == Objective::Mlm { Scheme::Bert } else { Scheme::Electra },
        },
        special,
        continuation,
    )?)
}

/// What one optimiser step did (see [`train_step`]).
///
/// A step on the device path (no batch chunks) leaves its losses, counts and gradient norm on
/// the device; the first call that needs them ([`StepOutcome::losses`], [`StepOutcome::metrics`],
/// [`StepOutcome::read`]) reads them all at once (one device-to-host read). Until then the host
/// does not wait for the device, which queues the next step's work behind this one's.
pub struct StepOutcome<B: Backend> {
    pub(crate) totals: Totals,
    /// `[TALLIES + 1]`: the tallies and the gradient norm, not yet read.
    pending: Option<Tensor<B, 1>>,
    step: u64,
    /// The learning rate applied.
    pub lr: f64,
    /// The global gradient norm before clipping (valid once read).
    grad_norm: f64,
    /// The loss scale the step ran with (f16 training).
    pub loss_scale: Option<f64>,
}

impl<B: Backend> StepOutcome<B> {
    /// Tokens (padding included) processed by the step (known without reading the device).
    pub fn tokens(&self) -> usize {
        self.totals.tokens
    }

    /// Positions the generator predicted (masked positions), over all micro-batches (known
    /// without reading the device).
    pub fn predictions(&self) -> usize {
        self.totals.counts.predictions
    }

    /// Whether the step's values are on the host (always after a step on the host path).
    pub fn is_read(&self) -> bool {
        self.pending.is_none()
    }

    /// Reads the step's values from the device, if they are still there (one read).
    ///
    /// # Errors
    /// [`Error::NonFinite`] when a loss is not finite: on the device path the update was already
    /// applied, so the model must not be saved.
    pub fn read(&mut self) -> Result<()> {
        if self.fetch() {
            let (mlm, disc) = self.totals.mean_losses();
            if !mlm.is_finite() || !disc.is_finite() {
                return Err(Error::NonFinite { step: self.step, mlm: mlm as f32, disc: disc as f32 });
            }
        }
        Ok(())
    }

    /// Moves the pending values to the host, unchecked; whether there were any.
    fn fetch(&mut self) -> bool {
        let Some(pending) = self.pending.take() else { return false };
        let v = to_host_f32(pending);
        let t = &mut self.totals;
        t.mlm = f64::from(v[0]);
        t.disc = f64::from(v[1]);
        t.counts.gen_correct = v[2] as usize;
        t.counts.replaced = v[3] as usize;
        t.counts.disc_correct = v[4] as usize;
        self.grad_norm = f64::from(v[TALLIES]);
        true
    }

    /// The mean MLM and discriminator losses over the micro-batches ([`StepOutcome::read`]).
    ///
    /// # Errors
    /// As [`StepOutcome::read`].
    pub fn losses(&mut self) -> Result<(f64, f64)> {
        self.read()?;
        Ok(self.totals.mean_losses())
    }

    /// The global gradient norm before clipping ([`StepOutcome::read`]).
    ///
    /// # Errors
    /// As [`StepOutcome::read`].
    pub fn grad_norm(&mut self) -> Result<f64> {
        self.read()?;
        Ok(self.grad_norm)
    }

    /// The step's metrics record, `step` being the number of steps done (throughput and elapsed
    /// time left at 0 for the caller; [`StepOutcome::read`]).
    ///
    /// # Errors
    /// As [`StepOutcome::read`].
    pub fn metrics(&mut self, step: u64, disc_weight: f64) -> Result<StepMetrics> {
        self.read()?;
        let mut m = self.totals.step_metrics(step, self.lr, self.grad_norm, disc_weight);
        m.loss_scale = self.loss_scale;
        Ok(m)
    }
}

/// Whether a run's steps take the host path: batch chunks (`chunk_size > 0`), masking,
/// sampling and replacement on the host with each example's own streams, values read every
/// step (the CPU backends' default, where the host and the device share memory). Otherwise the
/// device path (`forward_on_device`): nothing is read back within a step.
#[must_use]
pub fn host_path(config: &PretrainConfig) -> bool {
    config.chunk_size.is_some_and(|c| c > 0)
}

/// One optimiser step of [`crate::pretrain`], exactly as the loop runs it, in one process:
/// [`train_step_dist`] with [`Local`].
///
/// # Errors
/// As [`train_step_dist`].
pub fn train_step<B: AutodiffBackend>(
    model: ElectraPreTraining<B>,
    optim: &mut crate::optim::Optim<ElectraPreTraining<B>, B>,
    config: &PretrainConfig,
    masker: &Masker,
    step: u64,
    micro_batch: impl FnMut(usize) -> Result<HostBatch>,
) -> Result<(ElectraPreTraining<B>, StepOutcome<B::InnerBackend>)> {
    train_step_dist(model, optim, config, masker, step, &Local, micro_batch)
}

/// One optimiser step on this rank's share of the global batch: seeds every random draw from
/// `(config.seed, step, example)`; for each of the `config.grad_accumulation` micro-batches
/// (`micro_batch(k)` returns this rank's rows of global micro-batch `k`,
/// [`Reduce::rows`]) masks each example from its own stream, sums the loss denominators over
/// the ranks, runs the generator, sampling and discriminator, backpropagates
/// `(mlm + disc_weight x disc) / grad_accumulation` and accumulates; then sums the gradients,
/// losses and counts over the ranks, clips the global gradient norm and applies the optimiser at
/// `config.learning_rate_at(step)` (identically on every rank). Public so that benchmarks time
/// the real step.
///
/// The step runs in `config.precision` ([`electra_model::autocast`]). In f16 the loss is
/// multiplied by the optimiser's [`LossScale`] before the backward; the scaled gradients' norm
/// is read (one read per step, as PyTorch's `GradScaler` does) to skip the update when it is not
/// finite, and the gradients are divided by the scale before clipping.
///
/// On the host path ([`host_path`]) a non-finite loss is an error before the update. On the
/// device path in one process nothing is read back: the losses stay on the device
/// ([`StepOutcome`]) and a non-finite one is an error when they are read (the trainer reads
/// them at logging, evaluation and checkpoint steps, before saving anything).
///
/// # Errors
/// Data, masking, [`Error::NonFinite`], or the collective ([`Error::Collective`]).
pub fn train_step_dist<B: AutodiffBackend>(
    model: ElectraPreTraining<B>,
    optim: &mut crate::optim::Optim<ElectraPreTraining<B>, B>,
    config: &PretrainConfig,
    masker: &Masker,
    step: u64,
    dist: &dyn Reduce,
    mut micro_batch: impl FnMut(usize) -> Result<HostBatch>,
) -> Result<(ElectraPreTraining<B>, StepOutcome<B::InnerBackend>)> {
    electra_model::autocast(config.precision, || {
        let loss_scale = match config.precision {
            Precision::F16 => optim.loss_scale.get_or_insert_with(LossScale::default).scale,
            _ => 1.0,
        };
        let device = model.embeddings.word_table().device();
        let seed = step_seed(config.seed, step);
        // The backend's generator (dropout and sampling without chunks): one stream per rank.
        B::seed(&device, if dist.world() == 1 { seed } else { derive_seed(seed, u64::MAX - dist.rank() as u64) });
        let micro = config.batch_size / config.grad_accumulation;
        let rows = dist.rows(micro);
        let on_host = host_path(config);
        let mut accumulator = GradientsAccumulator::<ElectraPreTraining<B>>::new();
        let mut totals = Totals::default();
        let mut tallies: Option<Tensor<B::InnerBackend, 1>> = None;
        for k in 0..config.grad_accumulation {
            let batch = micro_batch(k)?;
            if batch.batch != rows.len() {
                return Err(Error::Config(format!(
                    "micro-batch {k} has {} rows, this rank's share is {}",
                    batch.batch,
                    rows.len()
                )));
            }
            let seeds = example_seeds(seed, (k * micro + rows.start) as u64, batch.batch);
            let masked = mask_examples(masker, &batch, &seeds)?;
            let mut norms = Norms::of(&batch, &masked);
            let own = norms;
            if dist.world() > 1 {
                let mut both = [norms.predictions as f64, norms.real_tokens as f64];
                dist.sum_f64(&mut both)?;
                norms = Norms { predictions: both[0] as usize, real_tokens: both[1] as usize };
            }
            if on_host {
                let micro_seed = derive_seed(seed, k as u64);
                let (mlm_v, disc_v) = chunked_micro_batch(
                    &model,
                    &batch,
                    &masked,
                    (norms, loss_scale),
                    &seeds,
                    config,
                    micro_seed,
                    &mut accumulator,
                    &mut totals,
                )?;
                totals.add_part(mlm_v, disc_v, &batch);
            } else {
                let (loss, part) = forward_on_device(&model, &batch, &masked, norms, config)?;
                accumulator.accumulate(&model, GradientsParams::from_grads(scale_loss(loss, loss_scale).backward(), &model));
                let part = part.inner();
                tallies = Some(match tallies.take() {
                    Some(t) => t + part,
                    None => part,
                });
                // The host knows the counts that do not depend on the samples.
                totals.counts.predictions += own.predictions;
                totals.counts.real += own.real_tokens;
                totals.add_part(0.0, 0.0, &batch);
            }
        }
        let mut grads = accumulator.grads();
        let mut outcome =
            StepOutcome { totals, pending: None, step, lr: config.learning_rate_at(step), grad_norm: 0.0, loss_scale: None };
        if let Some(t) = tallies {
            // Read here only when the ranks must agree on the values before the update.
            let norm_slot = Tensor::zeros([1], &t.device());
            outcome.pending = Some(Tensor::cat(vec![t, norm_slot], 0));
            if dist.world() > 1 {
                outcome.fetch();
            }
        }
        if dist.world() > 1 {
            crate::dist::sum_gradients(&model, &mut grads, dist)?;
            outcome.totals.sum_over(dist)?;
        }
        if outcome.is_read() {
            let (mlm, disc) = outcome.totals.mean_losses();
            if !mlm.is_finite() || !disc.is_finite() {
                return Err(Error::NonFinite { step, mlm: mlm as f32, disc: disc as f32 });
            }
        }
        if let Some(scale) = optim.loss_scale.as_mut().filter(|_| config.precision == Precision::F16) {
            let scaled_norm = global_grad_norm::<B, _>(&model, &grads);
            let norm = scaled_norm / loss_scale;
            outcome.loss_scale = Some(loss_scale);
            outcome.grad_norm = norm;
            if let Some(p) = outcome.pending.take() {
                let device = p.device();
                outcome.pending = Some(p.slice_assign([TALLIES..TALLIES + 1], Tensor::from_floats([norm as f32], &device)));
            }
            if !scale.update(scaled_norm) {
                tracing::warn!(step, loss_scale = scale.scale, "f16 gradients overflowed: update skipped, loss scale halved");
                return Ok((model, outcome));
            }
            let factor = if norm > config.max_grad_norm { config.max_grad_norm / norm } else { 1.0 } / loss_scale;
            scale_gradients::<B, _>(&model, &mut grads, factor);
        } else if on_host {
            outcome.grad_norm = clip_global_norm::<B, _>(&model, &mut grads, config.max_grad_norm);
        } else {
            let norm = clip_global_norm_on_device::<B, _>(&model, &mut grads, config.max_grad_norm);
            match (outcome.pending.take(), norm) {
                (Some(p), Some(norm)) => outcome.pending = Some(p.slice_assign([TALLIES..TALLIES + 1], norm)),
                (None, Some(norm)) => outcome.grad_norm = f64::from(to_host_f32(norm)[0]),
                (p, None) => outcome.pending = p,
            }
        }
        let model = optim.step(outcome.lr, model, grads);
        Ok((model, outcome))
    })
}

/// The counts of forward passes: one pass, a chunk, or summed over a step or an evaluation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Masked positions the generator predicted.
    pub predictions: usize,
    /// Of which its argmax was the original token.
    pub gen_correct: usize,
    /// Real (non-padding) tokens the discriminator scored.
    pub real: usize,
    /// Of which were replaced by a different token.
    pub replaced: usize,
    /// Of which the discriminator classified correctly.
    pub disc_correct: usize,
}

impl Counts {
    /// Adds another pass's counts.
    pub fn add(&mut self, c: &Counts) {
        self.predictions += c.predictions;
        self.gen_correct += c.gen_correct;
        self.real += c.real;
        self.replaced += c.replaced;
        self.disc_correct += c.disc_correct;
    }
}

/// Losses and counts summed over the micro-batches of a step (or the batches of an evaluation).
#[derive(Debug, Clone, Default)]
pub(crate) struct Totals {
    /// Sum of the micro-batches' mean MLM losses.
    pub mlm: f64,
    /// Sum of the micro-batches' mean discriminator losses.
    pub disc: f64,
    /// The counts of every pass.
    pub counts: Counts,
    /// Tokens (padding included).
    pub tokens: usize,
    /// Examples (rows).
    pub examples: usize,
    /// Micro-batches.
    pub parts: usize,
}

impl Totals {
    /// One micro-batch's loss values and size.
    pub fn add_part(&mut self, mlm: f32, disc: f32, batch: &HostBatch) {
        self.mlm += f64::from(mlm);
        self.disc += f64::from(disc);
        self.tokens += batch.batch * batch.seq;
        self.examples += batch.batch;
        self.parts += 1;
    }

    /// Sums the losses and counts over the ranks (each rank's losses are its share of the
    /// micro-batches' means); the number of micro-batches is the same on every rank.
    pub fn sum_over(&mut self, dist: &dyn Reduce) -> Result<()> {
        let c = &mut self.counts;
        let mut v = [
            self.mlm,
            self.disc,
            c.predictions as f64,
            c.gen_correct as f64,
            c.real as f64,
            c.replaced as f64,
            c.disc_correct as f64,
            self.tokens as f64,
            self.examples as f64,
        ];
        dist.sum_f64(&mut v)?;
        let n = |x: f64| x as usize;
        (self.mlm, self.disc) = (v[0], v[1]);
        (c.predictions, c.gen_correct, c.real, c.replaced, c.disc_correct) = (n(v[2]), n(v[3]), n(v[4]), n(v[5]), n(v[6]));
        (self.tokens, self.examples) = (n(v[7]), n(v[8]));
        Ok(())
    }

    /// The mean MLM and discriminator losses over the micro-batches.
    pub fn mean_losses(&self) -> (f64, f64) {
        let parts = self.parts.max(1) as f64;
        (self.mlm / parts, self.disc / parts)
    }

    /// The step's metrics (throughput and elapsed time are the caller's).
    pub fn step_metrics(&self, step: u64, lr: f64, grad_norm: f64, disc_weight: f64) -> StepMetrics {
        let (mlm, disc) = self.mean_losses();
        let c = &self.counts;
        StepMetrics {
            step,
            loss: mlm + disc_weight * disc,
            mlm_loss: mlm,
            disc_loss: disc,
            gen_accuracy: ratio(c.gen_correct, c.predictions),
            disc_accuracy: ratio(c.disc_correct, c.real),
            replaced_fraction: ratio(c.replaced, c.real),
            learning_rate: lr,
            grad_norm,
            tokens_per_sec: 0.0,
            elapsed_secs: 0.0,
            loss_scale: None,
        }
    }
}

/// `a / b`, 0 when `b` is 0.
pub(crate) fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use electra_model::PreTrainingConfig;

    use crate::optim::ElectraAdam;

    type B = Autodiff<Flex>;

    /// One forward/backward/update cycle repeated on a fixed sequence (fresh masks and samples
    /// each step; near-uniform samples at temperature 100): both losses must fall well below
    /// their starting values, the discriminator's below the base rate's entropy.
    #[test]
    fn the_step_learns_to_detect_replacements() {
        let mut c = crate::config::tiny();
        c.vocab_size = 40;
        let cfg = PreTrainingConfig::new(c, 0.25).unwrap();
        let d = Default::default();
        B::seed(&d, 5);
        let mut m = ElectraPreTraining::<B>::init(&cfg, 1, &d).unwrap();
        let mut optim =
            ElectraAdam { beta1: 0.9, beta2: 0.999, epsilon: 1e-6, weight_decay: 0.01, bias_correction: true }
                .init::<B, ElectraPreTraining<B>>();
        let masker = Masker::new(
            MaskingConfig { max_seq_len: 16, ..Default::default() },
            SpecialIds { pad: 0, cls: 2, sep: 3, mask: 4, vocab_size: 40 },
            None,
        )
        .unwrap();
        let ids: Vec<u32> = vec![2, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 3];
        let batch = HostBatch {
            input_ids: ids.repeat(4),
            token_type_ids: vec![0; 64],
            attention_mask: vec![1; 64],
            batch: 4,
            seq: 16,
        };
        let (mut first, mut last) = ((0.0, 0.0), (0.0, 0.0));
        for step in 0..80u64 {
            let seeds = example_seeds(step, 0, batch.batch);
            let f = forward(&m, &batch, &masker, Objective::Electra, 100.0, &seeds, false).unwrap();
            let disc = f.disc.clone().unwrap();
            let values = f.loss_values();
            if step == 0 {
                first = values;
            }
            last = values;
            let loss = f.mlm + disc.mul_scalar(50.0);
            let mut grads = GradientsParams::from_grads(loss.backward(), &m);
            clip_global_norm::<B, _>(&m, &mut grads, 1.0);
            m = optim.step(1e-3, m, grads);
        }
        // 2 of 16 tokens are chosen per row: base-rate entropy of 1/8 replaced is 0.377.
        assert!(first.1 > 0.6, "{first:?}");
        assert!(last.1 < 0.3, "discriminator did not learn: {first:?} -> {last:?}");
        assert!(last.0 < first.0 * 0.5, "generator did not learn: {first:?} -> {last:?}");
    }
}

