//! The pre-training loop.
//!
//! One optimiser step: for each micro-batch, mask (host, seeded by the step), run the generator
//! on the masked input, compute the MLM loss at the chosen positions only, sample replacements
//! (Gumbel-max, no gradient), run the discriminator on the corrupted input, add
//! `disc_weight x` its loss, backpropagate and accumulate; then clip the global gradient norm and
//! apply the reference Adam. Every random draw of step `t` (masking, sampling, dropout) is seeded
//! from `(seed, t)` and the data position is `t x batch_size`, so a run resumed from a checkpoint
//! continues exactly as the uninterrupted one.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::{GradientsAccumulator, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, NamedMpkFileRecorder, Recorder};
use burn::tensor::TensorData;
use burn::tensor::backend::AutodiffBackend;
use electra_corrupt::{
    MaskedBatch, Masker, MaskingConfig, Scheme, SpecialIds, ids_from_tensor, replace_tokens, sample_tokens,
    sample_tokens_host,
};
use electra_model::{ElectraPreTraining, PreTrainingConfig, hf};
use electra_tokenizer::{ShardReader, Split, WordPieceTokenizer};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::chunks::{backward_in_chunks, derive_seed};
use crate::config::{Objective, PretrainConfig};
use crate::data::{Batches, HostBatch};
use crate::loss::{disc_loss_over, mlm_loss_over};
use crate::metrics::{EvalMetrics, StepMetrics, auc};
use crate::optim::{ElectraAdam, clip_global_norm};
use crate::{Error, Result};

/// Receives progress; the binary implements it with a progress bar.
pub trait Progress {
    /// The run starts at `start` of `total` steps.
    fn on_start(&mut self, _start: u64, _total: u64) {}
    /// A step finished.
    fn on_step(&mut self, _metrics: &StepMetrics) {}
    /// An evaluation finished.
    fn on_eval(&mut self, _metrics: &EvalMetrics) {}
    /// A checkpoint was written.
    fn on_checkpoint(&mut self, _step: u64, _dir: &Path) {}
    /// Polled before every step: `true` writes a checkpoint and stops.
    fn should_stop(&self) -> bool {
        false
    }
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Default)]
pub struct NoProgress;
impl Progress for NoProgress {}

/// Where a run reads and writes.
#[derive(Debug, Clone)]
pub struct RunPaths {
    /// Prepared shards (`manifest.json`).
    pub data_dir: PathBuf,
    /// Run directory: `config.json`, `metrics.jsonl`, `curves.svg`, `checkpoints/`,
    /// `discriminator/`, `generator/`.
    pub out_dir: PathBuf,
}

/// What a finished run produced.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Steps done in total.
    pub steps: u64,
    /// Steps done by this invocation.
    pub steps_this_run: u64,
    /// Wall time of this invocation.
    pub seconds: f64,
    /// The last evaluation.
    pub eval: Option<EvalMetrics>,
    /// The exported discriminator (HuggingFace layout).
    pub discriminator_dir: Option<PathBuf>,
    /// The exported generator (HuggingFace layout).
    pub generator_dir: PathBuf,
    /// The metrics file.
    pub metrics: PathBuf,
    /// The plot of the curves.
    pub plot: PathBuf,
}

#[derive(Debug, Serialize, Deserialize)]
struct CheckpointState {
    step: u64,
    format: u32,
}

const CHECKPOINT_FORMAT: u32 = 1;
const STEP_SEED_MIX: u64 = 0x9E37_79B9_7F4A_7C15;

/// The per-step seed of every random draw.
fn step_seed(seed: u64, step: u64) -> u64 {
    seed ^ (step.wrapping_add(1)).wrapping_mul(STEP_SEED_MIX)
}

/// The outcome of one forward pass on a micro-batch.
pub(crate) struct Forward<B: Backend> {
    pub mlm: Tensor<B, 1>,
    pub disc: Option<Tensor<B, 1>>,
    pub predictions: usize,
    pub gen_correct: usize,
    pub real_tokens: usize,
    pub replaced: usize,
    pub disc_correct: usize,
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

fn ints<B: Backend, const D: usize>(values: &[u32], shape: [usize; D], device: &B::Device) -> Tensor<B, D, Int> {
    Tensor::from_data(TensorData::new(values.iter().map(|&v| i64::from(v)).collect::<Vec<_>>(), shape), device)
}

fn floats<B: Backend, const D: usize>(values: &[u32], shape: [usize; D], device: &B::Device) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(values.iter().map(|&v| v as f32).collect::<Vec<_>>(), shape), device)
}

fn host_f32<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap_or_default()
}

/// One forward pass: masking, generator, sampling (Gumbel-max on the device), discriminator,
/// losses (means over the micro-batch).
pub(crate) fn forward<B: Backend>(
    model: &ElectraPreTraining<B>,
    batch: &HostBatch,
    masker: &Masker,
    objective: Objective,
    temperature: f64,
    rng: &mut ChaCha8Rng,
    collect: bool,
) -> Result<Forward<B>> {
    let masked = masker.mask(&batch.input_ids, &batch.attention_mask, batch.batch, batch.seq, rng)?;
    let run = Run { objective, temperature, collect };
    forward_masked(model, batch, &masked, Norms::of(batch, &masked), run, Sampling::Device)
}

/// The denominators of the two losses: the whole micro-batch's counts, so that the losses of its
/// chunks add up to the micro-batch's means.
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
    /// Inverse transform on the host, from this stream (a batch chunk's own).
    Host(&'a mut ChaCha8Rng),
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
    let types = ints::<B, 2>(&batch.token_type_ids, [b, s], &device);
    let mask = ints::<B, 2>(&batch.attention_mask, [b, s], &device);
    let n = masked.positions.len();
    let real_tokens = batch.attention_mask.iter().filter(|&&m| m == 1).count();
    let mut out = Forward {
        mlm: Tensor::zeros([1], &device),
        disc: None,
        predictions: n,
        gen_correct: 0,
        real_tokens,
        replaced: 0,
        disc_correct: 0,
        scored: Vec::new(),
        scored_ids: Vec::new(),
        targets: if run.collect { masked.targets.clone() } else { Vec::new() },
    };
    let whole_batch = matches!(sampling, Sampling::Device);
    let mut samples = Vec::new();
    if n > 0 {
        let hidden = model.generator_hidden(ints(&masked.input_ids, [b, s], &device), types.clone(), mask.clone());
        let positions = ints::<B, 1>(&masked.positions, [n], &device);
        let logits = model.generator_logits_at(hidden, positions); // [n, vocab]
        let targets = ints::<B, 1>(&masked.targets, [n], &device);
        out.mlm = mlm_loss_over(logits.clone(), targets, norms.predictions);
        let predicted = match sampling {
            Sampling::Device => {
                let predicted = ids_from_tensor(logits.clone().detach().argmax(1).reshape([n]))?;
                if run.objective == Objective::Electra {
                    samples = ids_from_tensor(sample_tokens(logits, run.temperature)?)?;
                }
                predicted
            }
            Sampling::Host(rng) => {
                let host = host_f32(logits.detach());
                let vocab = host.len() / n;
                if run.objective == Objective::Electra {
                    samples = sample_tokens_host(&host, vocab, run.temperature, rng)?;
                }
                host.chunks_exact(vocab.max(1)).map(argmax_host).collect()
            }
        };
        out.gen_correct = predicted.iter().zip(&masked.targets).filter(|(p, t)| p == t).count();
    }
    // A whole batch without a masked position trains the generator only (nothing to detect); a
    // chunk without one still runs the discriminator, whose loss is part of its batch's.
    if run.objective == Objective::Mlm || (n == 0 && whole_batch) {
        return Ok(out);
    }
    let (disc_ids, labels) = replace_tokens(&batch.input_ids, &masked.positions, &samples)?;
    let disc_logits = model.discriminator_logits(ints(&disc_ids, [b, s], &device), types, mask); // [batch, seq]
    let label_t = floats::<B, 2>(&labels, [b, s], &device);
    let mask_t = floats::<B, 2>(&batch.attention_mask, [b, s], &device);
    out.disc = Some(disc_loss_over(disc_logits.clone(), label_t, mask_t, norms.real_tokens));
    let logits_host = host_f32(disc_logits.detach());
    for (((&logit, &label), &m), &id) in logits_host.iter().zip(&labels).zip(&batch.attention_mask).zip(&disc_ids) {
        if m == 0 {
            continue;
        }
        out.replaced += label as usize;
        out.disc_correct += usize::from((logit > 0.0) == (label == 1));
        if run.collect {
            out.scored.push((1.0 / (1.0 + (-logit).exp()), label == 1));
            out.scored_ids.push(id);
        }
    }
    Ok(out)
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

/// One micro-batch in chunks of `config.chunk_size` rows ([`backward_in_chunks`]): masks the
/// whole micro-batch (host, `rng`), then each chunk runs forward and backward with its own
/// dropout and sampling streams (seeded by `micro_seed` and the chunk's index), its losses
/// divided by the whole micro-batch's counts. Returns the micro-batch's loss values.
fn chunked_micro_batch<B: AutodiffBackend>(
    model: &ElectraPreTraining<B>,
    batch: &HostBatch,
    masker: &Masker,
    config: &PretrainConfig,
    micro_seed: u64,
    rng: &mut ChaCha8Rng,
    accumulator: &mut GradientsAccumulator<ElectraPreTraining<B>>,
    totals: &mut StepTotals,
) -> Result<(f32, f32)> {
    let masked = masker.mask(&batch.input_ids, &batch.attention_mask, batch.batch, batch.seq, rng)?;
    let norms = Norms::of(batch, &masked);
    let run = Run { objective: config.objective, temperature: config.temperature, collect: false };
    let sampler_seed = derive_seed(micro_seed, u64::MAX);
    let chunk = config.chunk_size.unwrap_or(0);
    let parts = backward_in_chunks(model, batch.batch, chunk, micro_seed, accumulator, |replica, c, rows| {
        let (part, part_masked) = chunk_of(batch, &masked, rows);
        let mut sampler = ChaCha8Rng::seed_from_u64(derive_seed(sampler_seed, c as u64));
        let f = forward_masked(replica, &part, &part_masked, norms, run, Sampling::Host(&mut sampler))?;
        Ok::<_, Error>((f.training_loss(config), (f.loss_values(), Counts::of(&f))))
    })?;
    let (mut mlm, mut disc) = (0.0f32, 0.0f32);
    for ((m, d), counts) in parts {
        mlm += m;
        disc += d;
        totals.add_counts(&counts);
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
pub struct StepOutcome {
    totals: StepTotals,
    /// The learning rate applied.
    pub lr: f64,
    /// The global gradient norm before clipping.
    pub grad_norm: f64,
}

impl StepOutcome {
    /// Tokens (padding included) processed by the step.
    pub fn tokens(&self) -> usize {
        self.totals.tokens
    }

    /// Positions the generator predicted (masked positions), over all micro-batches.
    pub fn predictions(&self) -> usize {
        self.totals.predictions
    }

    /// The mean MLM and discriminator losses over the micro-batches.
    pub fn losses(&self) -> (f64, f64) {
        let parts = self.totals.parts.max(1) as f64;
        (self.totals.mlm / parts, self.totals.disc / parts)
    }
}

/// One optimiser step of [`pretrain`], exactly as the loop runs it: seeds every random draw from
/// `(config.seed, step)`; for each of the `config.grad_accumulation` micro-batches
/// (`micro_batch(k)`, `k = 0..grad_accumulation`) masks, runs the generator, sampling and
/// discriminator, checks that the losses are finite, backpropagates
/// `(mlm + disc_weight x disc) / grad_accumulation` and accumulates; then clips the global
/// gradient norm and applies the optimiser at `config.learning_rate_at(step)`. Public so that
/// benchmarks time the real step.
pub fn train_step<B: AutodiffBackend>(
    model: ElectraPreTraining<B>,
    optim: &mut crate::optim::Optim<ElectraPreTraining<B>, B>,
    config: &PretrainConfig,
    masker: &Masker,
    step: u64,
    mut micro_batch: impl FnMut(usize) -> Result<HostBatch>,
) -> Result<(ElectraPreTraining<B>, StepOutcome)> {
    let device = model.embeddings.word_table().device();
    let seed = step_seed(config.seed, step);
    B::seed(&device, seed);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut accumulator = GradientsAccumulator::<ElectraPreTraining<B>>::new();
    let mut totals = StepTotals::default();
    for k in 0..config.grad_accumulation {
        let batch = micro_batch(k)?;
        let (mlm_v, disc_v) = if config.chunk_size.is_some_and(|c| c > 0) {
            let micro_seed = derive_seed(seed, k as u64);
            chunked_micro_batch(&model, &batch, masker, config, micro_seed, &mut rng, &mut accumulator, &mut totals)?
        } else {
            let f = forward(&model, &batch, masker, config.objective, config.temperature, &mut rng, false)?;
            let values = f.loss_values();
            if values.0.is_finite() && values.1.is_finite() {
                accumulator.accumulate(&model, GradientsParams::from_grads(f.training_loss(config).backward(), &model));
            }
            totals.add_counts(&Counts::of(&f));
            values
        };
        if !mlm_v.is_finite() || !disc_v.is_finite() {
            return Err(Error::NonFinite { step, mlm: mlm_v, disc: disc_v });
        }
        totals.add_part(mlm_v, disc_v, batch.batch * batch.seq);
    }
    let mut grads = accumulator.grads();
    let grad_norm = clip_global_norm::<B, _>(&model, &mut grads, config.max_grad_norm);
    let lr = config.learning_rate_at(step);
    let model = optim.step(lr, model, grads);
    Ok((model, StepOutcome { totals, lr, grad_norm }))
}

/// Pre-trains from prepared shards. With `resume`, continues from the newest checkpoint in
/// `paths.out_dir/checkpoints`.
pub fn pretrain<B: AutodiffBackend>(
    config: &PretrainConfig,
    tokenizer: &WordPieceTokenizer,
    paths: &RunPaths,
    resume: bool,
    device: &B::Device,
    progress: &mut dyn Progress,
) -> Result<Summary> {
    config.validate()?;
    let started = Instant::now();
    let out = &paths.out_dir;
    let ckpt_root = out.join("checkpoints");
    std::fs::create_dir_all(&ckpt_root).map_err(|e| Error::io(&ckpt_root, e))?;
    let mut networks = config.networks(tokenizer.vocab_size())?;
    if config.objective == Objective::Mlm {
        // The MLM baseline trains the discriminator-sized encoder with an MLM head.
        networks = PreTrainingConfig { generator: networks.discriminator.clone(), ..networks };
    }
    let vocab_hash = tokenizer.vocab_sha256().to_string();
    let train = ShardReader::open(&paths.data_dir, Split::Train, &vocab_hash, config.max_seq_len)?;
    if train.is_empty() {
        return Err(Error::Config(format!("{}: the training split is empty", paths.data_dir.display())));
    }
    let valid = ShardReader::open(&paths.data_dir, Split::Validation, &vocab_hash, config.max_seq_len)?;
    // The context-free baseline of the evaluation (only the ELECTRA objective has a discriminator).
    let surprisal = match config.objective {
        Objective::Electra if !valid.is_empty() => {
            Some(unigram_surprisal(&train, tokenizer.vocab_size(), RARITY_SAMPLE_TOKENS)?)
        }
        _ => None,
    };
    let sp = tokenizer.special_tokens();
    let special = SpecialIds { pad: sp.pad, cls: sp.cls, sep: sp.sep, mask: sp.mask, vocab_size: tokenizer.vocab_size() };
    let continuation: Vec<bool> = tokenizer.vocab_tokens().iter().map(|t| t.starts_with("##")).collect();
    let masker = masker(config, special, config.whole_word.then_some(continuation))?;

    let recorder = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
    let mut model = ElectraPreTraining::<B>::init(&networks, config.seed, device)?;
    let mut optim = ElectraAdam::from_config(config).init::<B, ElectraPreTraining<B>>();
    let mut start = 0;
    let config_path = out.join("config.json");
    if resume {
        if let Some((step, dir)) = latest_checkpoint(&ckpt_root)? {
            check_resumed_config(&config_path, config)?;
            model = model
                .load_file(dir.join("model"), &recorder, device)
                .map_err(|e| Error::Checkpoint { path: dir.clone(), message: e.to_string() })?;
            let record = recorder
                .load(dir.join("optimizer"), device)
                .map_err(|e| Error::Checkpoint { path: dir.clone(), message: e.to_string() })?;
            optim = optim.load_record(record);
            start = step;
            tracing::info!(step, dir = %dir.display(), "resumed");
        } else {
            tracing::warn!(dir = %ckpt_root.display(), "--resume: no checkpoint found, starting from scratch");
        }
    }
    let resolved = serde_json::to_string_pretty(config).unwrap_or_default();
    hf::write_atomic(&config_path, resolved.as_bytes())?;

    let metrics_path = out.join("metrics.jsonl");
    let mut metrics = crate::metrics::MetricsFile::open(&metrics_path, start)?;
    let micro = config.batch_size / config.grad_accumulation;
    let mut batches = Batches::shuffled(&train, config.seed, sp.pad);
    let mut last_eval = None;
    let mut window = (Instant::now(), 0usize);
    progress.on_start(start, config.steps);

    for step in start..config.steps {
        if progress.should_stop() {
            save_checkpoint(&ckpt_root, step, &model, &optim, config.keep_checkpoints)?;
            return Err(Error::Interrupted(step));
        }
        let (next, outcome) = train_step(model, &mut optim, config, &masker, step, |k| {
            batches.batch(step * config.batch_size as u64 + (k * micro) as u64, micro)
        })?;
        model = next;
        let StepOutcome { totals, lr, grad_norm } = outcome;
        window.1 += totals.tokens;

        let done = step + 1;
        let m = totals.metrics(done, lr, grad_norm, config, started.elapsed().as_secs_f64(), &mut window);
        progress.on_step(&m);
        if done % config.log_every.max(1) == 0 || done == config.steps {
            metrics.write(&serde_json::json!({"kind": "train", "metrics": m}))?;
        }
        let eval_now = (config.eval_every > 0 && done % config.eval_every == 0) || done == config.steps;
        if eval_now && !valid.is_empty() {
            let e = evaluate(&model.valid(), &valid, &masker, config, done, sp.pad, surprisal.as_deref())?;
            metrics.write(&serde_json::json!({"kind": "eval", "metrics": e}))?;
            progress.on_eval(&e);
            last_eval = Some(e);
        }
        if (config.checkpoint_every > 0 && done % config.checkpoint_every == 0) || done == config.steps {
            let dir = save_checkpoint(&ckpt_root, done, &model, &optim, config.keep_checkpoints)?;
            progress.on_checkpoint(done, &dir);
        }
    }

    // Export both networks in HuggingFace layout.
    let (generator, discriminator) = model.valid().to_parts();
    let generator_dir = out.join("generator");
    hf::save_generator(&generator, &generator_dir)?;
    write_tokenizer(tokenizer, &generator_dir)?;
    let discriminator_dir = if config.objective == Objective::Electra {
        let dir = out.join("discriminator");
        hf::save_discriminator(&discriminator, &dir)?;
        write_tokenizer(tokenizer, &dir)?;
        Some(dir)
    } else {
        None
    };
    let plot = out.join("curves.svg");
    crate::plot::write_curves(&metrics_path, &plot)?;
    Ok(Summary {
        steps: config.steps,
        steps_this_run: config.steps - start,
        seconds: started.elapsed().as_secs_f64(),
        eval: last_eval,
        discriminator_dir,
        generator_dir,
        metrics: metrics_path,
        plot,
    })
}

#[derive(Default)]
struct StepTotals {
    mlm: f64,
    disc: f64,
    predictions: usize,
    gen_correct: usize,
    real: usize,
    replaced: usize,
    disc_correct: usize,
    tokens: usize,
    parts: usize,
}

/// The counts of one forward pass.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    predictions: usize,
    gen_correct: usize,
    real: usize,
    replaced: usize,
    disc_correct: usize,
}

impl Counts {
    fn of<B: Backend>(f: &Forward<B>) -> Self {
        Self {
            predictions: f.predictions,
            gen_correct: f.gen_correct,
            real: f.real_tokens,
            replaced: f.replaced,
            disc_correct: f.disc_correct,
        }
    }
}

impl StepTotals {
    fn add<B: Backend>(&mut self, f: &Forward<B>, mlm: f32, disc: f32, tokens: usize) {
        self.add_counts(&Counts::of(f));
        self.add_part(mlm, disc, tokens);
    }

    /// The counts of a forward pass (a whole micro-batch or one of its chunks).
    fn add_counts(&mut self, c: &Counts) {
        self.predictions += c.predictions;
        self.gen_correct += c.gen_correct;
        self.real += c.real;
        self.replaced += c.replaced;
        self.disc_correct += c.disc_correct;
    }

    /// One micro-batch's loss values and size.
    fn add_part(&mut self, mlm: f32, disc: f32, tokens: usize) {
        self.mlm += f64::from(mlm);
        self.disc += f64::from(disc);
        self.tokens += tokens;
        self.parts += 1;
    }

    fn metrics(
        &self,
        step: u64,
        lr: f64,
        grad_norm: f64,
        config: &PretrainConfig,
        elapsed: f64,
        window: &mut (Instant, usize),
    ) -> StepMetrics {
        let parts = self.parts.max(1) as f64;
        let (mlm, disc) = (self.mlm / parts, self.disc / parts);
        let secs = window.0.elapsed().as_secs_f64().max(1e-9);
        let tokens_per_sec = window.1 as f64 / secs;
        *window = (Instant::now(), 0);
        StepMetrics {
            step,
            loss: mlm + config.disc_weight * disc,
            mlm_loss: mlm,
            disc_loss: disc,
            gen_accuracy: ratio(self.gen_correct, self.predictions),
            disc_accuracy: ratio(self.disc_correct, self.real),
            replaced_fraction: ratio(self.replaced, self.real),
            learning_rate: lr,
            grad_norm,
            tokens_per_sec,
            elapsed_secs: elapsed,
        }
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Training tokens counted for [`EvalMetrics::rarity_auc`]'s unigram frequencies.
const RARITY_SAMPLE_TOKENS: usize = 4_000_000;

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
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut batches = Batches::in_order(valid, pad);
    let micro = (config.batch_size / config.grad_accumulation).max(1);
    let n_batches = config.eval_batches.max(1).min(valid.len().div_ceil(micro));
    let mut totals = StepTotals::default();
    let mut scored = Vec::new();
    let mut rarity = Vec::new();
    let mut counts = std::collections::HashMap::<u32, usize>::new();
    for k in 0..n_batches {
        let size = micro.min(valid.len() - (k * micro).min(valid.len())).max(1);
        let batch = batches.batch((k * micro) as u64, size)?;
        let f = forward(model, &batch, masker, config.objective, config.temperature, &mut rng, true)?;
        let (mlm_v, disc_v) = f.loss_values();
        for &t in &f.targets {
            *counts.entry(t).or_default() += 1;
        }
        scored.extend_from_slice(&f.scored);
        if let Some(table) = surprisal {
            let score = |id: u32| table.get(id as usize).copied().unwrap_or(0.0);
            rarity.extend(f.scored_ids.iter().zip(&f.scored).map(|(&id, &(_, y))| (score(id), y)));
        }
        totals.add(&f, mlm_v, disc_v, batch.batch * batch.seq);
    }
    let (tp, fp, fneg) = scored.iter().fold((0usize, 0usize, 0usize), |(tp, fp, fneg), &(p, y)| {
        let pred = p > 0.5;
        (tp + usize::from(pred && y), fp + usize::from(pred && !y), fneg + usize::from(!pred && y))
    });
    let parts = totals.parts.max(1) as f64;
    let most_common = counts.values().copied().max().unwrap_or(0);
    Ok(EvalMetrics {
        step,
        mlm_loss: totals.mlm / parts,
        disc_loss: totals.disc / parts,
        gen_accuracy: ratio(totals.gen_correct, totals.predictions),
        unigram_accuracy: ratio(most_common, totals.predictions),
        disc_accuracy: ratio(totals.disc_correct, totals.real),
        precision: ratio(tp, tp + fp),
        recall: ratio(tp, tp + fneg),
        auc: auc(&scored),
        rarity_auc: surprisal.map(|_| auc(&rarity)),
        replaced_fraction: ratio(totals.replaced, totals.real),
        examples: totals.parts * micro,
    })
}

fn write_tokenizer(tokenizer: &WordPieceTokenizer, dir: &Path) -> Result<()> {
    let vocab = tokenizer.vocab_tokens().join("\n") + "\n";
    hf::write_atomic(&dir.join("vocab.txt"), vocab.as_bytes())?;
    let lower = tokenizer.normalizer_options().lowercase;
    let cfg = serde_json::json!({"do_lower_case": lower, "tokenizer_class": "ElectraTokenizer", "model_max_length": 512});
    hf::write_atomic(&dir.join("tokenizer_config.json"), cfg.to_string().as_bytes())?;
    Ok(())
}

fn check_resumed_config(path: &Path, config: &PretrainConfig) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(()) };
    let Ok(saved) = serde_json::from_str::<PretrainConfig>(&text) else { return Ok(()) };
    let comparable = PretrainConfig { steps: config.steps, ..saved.clone() };
    if &comparable != config {
        return Err(Error::Config(format!(
            "--resume: the config differs from the one the run started with ({}); only `steps` may change",
            path.display()
        )));
    }
    Ok(())
}

/// The newest complete checkpoint (`step-NNNNNNNN/` with a `state.json`).
pub fn latest_checkpoint(root: &Path) -> Result<Option<(u64, PathBuf)>> {
    let Ok(entries) = std::fs::read_dir(root) else { return Ok(None) };
    let mut best: Option<(u64, PathBuf)> = None;
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(step) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("step-"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(path.join("state.json")) else { continue };
        let Ok(state) = serde_json::from_str::<CheckpointState>(&text) else { continue };
        if state.step == step && state.format == CHECKPOINT_FORMAT && best.as_ref().is_none_or(|(b, _)| step > *b) {
            best = Some((step, path));
        }
    }
    Ok(best)
}

/// Writes a checkpoint atomically: everything goes to a hidden `.partial` directory that is
/// renamed into place only when complete; then the oldest checkpoints beyond `keep` are removed.
pub fn save_checkpoint<B: AutodiffBackend>(
    root: &Path,
    step: u64,
    model: &ElectraPreTraining<B>,
    optim: &crate::optim::Optim<ElectraPreTraining<B>, B>,
    keep: usize,
) -> Result<PathBuf> {
    let name = format!("step-{step:08}");
    let tmp = root.join(format!(".{name}.partial"));
    let dir = root.join(&name);
    let fail = |e: String| Error::Checkpoint { path: tmp.clone(), message: e };
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let result = (|| -> Result<()> {
        // Serialised in memory (the same bytes NamedMpkFileRecorder writes and reads), then
        // written and synced by write_atomic, so that a failed write (a full disk, say) is an
        // I/O error naming the file and the OS's reason rather than an encoder error.
        let recorder = NamedMpkBytesRecorder::<FullPrecisionSettings>::new();
        let model_bytes = recorder.record(model.clone().into_record(), ()).map_err(|e| fail(e.to_string()))?;
        hf::write_atomic(&tmp.join("model.mpk"), &model_bytes)?;
        drop(model_bytes);
        let optim_bytes = recorder.record(optim.to_record(), ()).map_err(|e| fail(e.to_string()))?;
        hf::write_atomic(&tmp.join("optimizer.mpk"), &optim_bytes)?;
        drop(optim_bytes);
        let state = serde_json::to_string(&CheckpointState { step, format: CHECKPOINT_FORMAT }).unwrap_or_default();
        hf::write_atomic(&tmp.join("state.json"), state.as_bytes())?;
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        std::fs::rename(&tmp, &dir).map_err(|e| Error::io(&dir, e))
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    tracing::info!(step, dir = %dir.display(), "checkpoint written");
    prune(root, keep);
    Ok(dir)
}

fn prune(root: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(root) else { return };
    let mut steps: Vec<(u64, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            let s = p.file_name()?.to_str()?.strip_prefix("step-")?.parse().ok()?;
            Some((s, p))
        })
        .collect();
    steps.sort();
    let excess = steps.len().saturating_sub(keep);
    for (_, p) in steps.into_iter().take(excess) {
        if let Err(e) = std::fs::remove_dir_all(&p) {
            tracing::warn!(dir = %p.display(), "cannot remove old checkpoint: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};

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
            let mut rng = ChaCha8Rng::seed_from_u64(step);
            let f = forward(&m, &batch, &masker, Objective::Electra, 100.0, &mut rng, false).unwrap();
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
