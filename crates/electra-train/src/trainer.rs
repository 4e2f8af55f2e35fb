//! The pre-training run: claims the run directory, checks a resume, loads the data, and loops
//! [`train_step`] with metrics, evaluation ([`crate::eval`]), checkpoints
//! ([`crate::checkpoint`]) and the final export.
//!
//! Every random draw of step `t` is seeded from `(seed, t)` and the data position is
//! `t x batch_size`, so a run resumed from a checkpoint continues exactly as the uninterrupted
//! one.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use electra_corrupt::SpecialIds;
use electra_model::{ElectraPreTraining, PreTrainingConfig, hf};
use electra_tokenizer::{Cancel, Manifest, ShardReader, Split, WordPieceTokenizer};
use serde::Serialize;

use crate::checkpoint::{
    CHECKPOINTS_DIR, CONFIG_FILE, RunRecord, check_resumable, latest_checkpoint, list_checkpoints, load_checkpoint,
    save_checkpoint,
};
use crate::config::{Objective, PretrainConfig};
use crate::data::Batches;
use crate::eval::{RARITY_SAMPLE_TOKENS, Unigram, evaluate};
use crate::metrics::{EvalMetrics, StepMetrics};
use crate::optim::ElectraAdam;
use crate::run_dir::{OutMode, claim};
use crate::dist::{Local, Reduce};
use crate::step::{masker, train_step_dist};
use crate::{Error, Result};

/// Receives a run's events; the binary draws a progress bar. Events only: stopping a run is
/// [`Cancel`]'s job.
pub trait Progress {
    /// The run starts at `start` of `total` steps.
    fn on_start(&self, _start: u64, _total: u64) {}
    /// A step finished, with its values read (every step on the host path; at logging,
    /// evaluation and checkpoint steps on the device path).
    fn on_step(&self, _metrics: &StepMetrics) {}
    /// Step `done` finished, its values left on the device (the device path between logging
    /// steps).
    fn on_advance(&self, _done: u64) {}
    /// An evaluation finished.
    fn on_eval(&self, _metrics: &EvalMetrics) {}
    /// A checkpoint was written.
    fn on_checkpoint(&self, _step: u64, _dir: &Path) {}
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
    /// Run directory: `config.json`, `run.json`, `metrics.jsonl`, `curves.svg`, `checkpoints/`,
    /// `discriminator/`, `generator/`.
    pub out_dir: PathBuf,
}

/// The entries of a run directory that belong to the run (what `--overwrite` clears and what
/// makes a fresh run refuse the directory). A prepared `data/` directory is not among them: it
/// depends only on the corpus and vocabulary and is reused.
pub const RUN_ENTRIES: &[&str] = &[
    CONFIG_FILE,
    crate::checkpoint::RUN_FILE,
    CHECKPOINTS_DIR,
    "metrics.jsonl",
    "curves.svg",
    "curves.png",
    "discriminator",
    "generator",
];

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

/// Pre-trains from prepared shards into `paths.out_dir`.
///
/// `mode` says what to do with a directory that already holds a run ([`RUN_ENTRIES`]):
/// [`OutMode::Fresh`] refuses it, [`OutMode::Overwrite`] clears it first, and
/// [`OutMode::Resume`] continues from the run's newest checkpoint after checking that the
/// config (all but `steps`), the vocabulary and the prepared data are the run's, and that the
/// checkpoint is not past `config.steps`. `cancel` is polled before every step: when set, a
/// checkpoint is written and the run returns [`Error::Interrupted`].
///
/// # Errors
/// Bad config or data, [`Error::RunExists`], [`Error::Resume`], I/O, non-finite losses.
pub fn pretrain<B: AutodiffBackend>(
    config: &PretrainConfig,
    tokenizer: &WordPieceTokenizer,
    paths: &RunPaths,
    mode: OutMode,
    device: &B::Device,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<Summary> {
    pretrain_dist::<B>(config, tokenizer, paths, mode, device, progress, cancel, &Local)
}

/// [`pretrain`] as one rank of a data-parallel job (`dist`; [`Local`] for one process). Every
/// rank reads its block of each global micro-batch ([`Reduce::rows`]) and applies the same
/// update; rank 0 alone claims the run directory, evaluates and writes metrics, checkpoints
/// and exports (the others return a summary without paths' contents). A resume reads the
/// checkpoint on every rank, so the run directory must be visible to all of them (one machine,
/// or a shared filesystem); any rank count may resume any checkpoint. Cancelling any rank stops
/// every rank after the same step.
///
/// # Errors
/// As [`pretrain`], and [`Error::Collective`].
#[allow(clippy::too_many_arguments)]
pub fn pretrain_dist<B: AutodiffBackend>(
    config: &PretrainConfig,
    tokenizer: &WordPieceTokenizer,
    paths: &RunPaths,
    mode: OutMode,
    device: &B::Device,
    progress: &dyn Progress,
    cancel: &Cancel,
    dist: &dyn Reduce,
) -> Result<Summary> {
    config.validate()?;
    let started = Instant::now();
    let out = &paths.out_dir;
    let lead = dist.rank() == 0;
    if config.batch_size / config.grad_accumulation < dist.world() {
        return Err(Error::Config(format!(
            "micro-batches of {} examples cannot be split over {} ranks",
            config.batch_size / config.grad_accumulation,
            dist.world()
        )));
    }
    let vocab_hash = tokenizer.vocab_sha256().to_string();
    let manifest = Manifest::load(&paths.data_dir)?;
    if !manifest.settings.vocab_sha256.eq_ignore_ascii_case(&vocab_hash) {
        let hint = match &config.init {
            Some(init) => format!(
                "; a run continued from {} uses the checkpoint's vocabulary: prepare the data with it (a run without --data prepares OUT/data on first use)",
                init.dir.display()
            ),
            None => String::new(),
        };
        return Err(Error::Config(format!(
            "{} was prepared with another vocabulary ({} entries, sha256 {}) than this run's {} ({} entries, sha256 {}){hint}",
            paths.data_dir.display(),
            manifest.settings.vocab_size,
            manifest.settings.vocab_sha256,
            tokenizer.source().display(),
            tokenizer.vocab_size(),
            vocab_hash
        )));
    }
    let train = ShardReader::open(&paths.data_dir, Split::Train, &vocab_hash, config.max_seq_len)?;
    if train.is_empty() {
        return Err(Error::Config(format!("{}: the training split is empty", paths.data_dir.display())));
    }
    let valid = ShardReader::open(&paths.data_dir, Split::Validation, &vocab_hash, config.max_seq_len)?;
    let this_run = RunRecord::new(&vocab_hash, manifest.settings);

    // The run directory: refused, cleared or resumed before anything is written to it (by rank
    // 0; the other ranks wait for its verdict and then read the same checkpoint).
    let claimed = if lead { claim(out, mode, RUN_ENTRIES, None).map(|_| ()) } else { Ok(()) };
    agree(dist, claimed, "rank 0 could not claim the run directory")?;
    let ckpt_root = out.join(CHECKPOINTS_DIR);
    let resumed = if mode == OutMode::Resume { resume_point(out, config, &this_run) } else { Ok((this_run, None)) };
    let (record, resume_from) = agree(dist, resumed, "another rank cannot resume this run")?;

    let mut networks = config.networks(tokenizer.vocab_size())?;
    if config.objective == Objective::Mlm {
        // The MLM baseline trains the discriminator-sized encoder with an MLM head.
        networks = PreTrainingConfig { generator: networks.discriminator.clone(), ..networks };
    }
    let sp = tokenizer.special_tokens();
    // The context-free baseline and the context probes of the evaluation (only the ELECTRA
    // objective has a discriminator); the probe never draws a special token.
    let unigram = match config.objective {
        Objective::Electra if !valid.is_empty() => Some(Unigram::count(
            &train,
            tokenizer.vocab_size(),
            RARITY_SAMPLE_TOKENS,
            &[sp.pad, sp.cls, sp.sep, sp.mask],
        )?),
        _ => None,
    };
    let special = SpecialIds { pad: sp.pad, cls: sp.cls, sep: sp.sep, mask: sp.mask, vocab_size: tokenizer.vocab_size() };
    let continuation: Vec<bool> = tokenizer.vocab_tokens().iter().map(|t| t.starts_with("##")).collect();
    let masker = masker(config, special, config.whole_word.then_some(continuation))?;

    // Continued pre-training starts from the checkpoint (a resume reads its own checkpoint
    // instead, into a module of the same architecture).
    let mut model = match (&config.init, &resume_from) {
        (Some(init), None) => {
            let (model, kind) = init.source()?.load::<B>(config.generator_size, config.seed, device)?;
            tracing::info!(dir = %init.dir.display(), ?kind, "continuing pre-training from a checkpoint");
            model
        }
        _ => ElectraPreTraining::<B>::init(&networks, config.seed, device)?,
    };
    let mut optim = ElectraAdam::from_config(config).init::<B, ElectraPreTraining<B>>();
    let mut start = 0;
    if let Some(checkpoint) = &resume_from {
        (model, optim) = load_checkpoint(&checkpoint.dir, model, optim, device)?;
        start = checkpoint.step;
        tracing::info!(step = start, dir = %checkpoint.dir.display(), "resumed");
    }
    let metrics_path = out.join("metrics.jsonl");
    let mut metrics = None;
    if lead {
        record.save(out)?;
        let resolved = serde_json::to_string_pretty(config).unwrap_or_default();
        hf::write_atomic(&out.join(CONFIG_FILE), resolved.as_bytes())?;
        metrics = Some(crate::metrics::MetricsFile::open(&metrics_path, start)?);
    }
    let micro = config.batch_size / config.grad_accumulation;
    let rows = dist.rows(micro);
    let mut batches = Batches::shuffled(&train, config.seed, sp.pad);
    let mut last_eval = None;
    let mut window = (Instant::now(), 0usize);
    progress.on_start(start, config.steps);
    let save = |step: u64, model: &ElectraPreTraining<B>, optim: &crate::optim::Optim<ElectraPreTraining<B>, B>| {
        save_checkpoint(&ckpt_root, step, &record.run_id, model, optim, config.keep_checkpoints)
    };

    // A run continued from a checkpoint is evaluated before its first step too: the starting
    // point's probes, for comparison.
    let eval_at = |model: &ElectraPreTraining<B>, step: u64, metrics: &mut crate::metrics::MetricsFile| {
        let e = evaluate(&model.valid(), &valid, &masker, config, step, sp.pad, unigram.as_ref())?;
        metrics.write(&serde_json::json!({"kind": "eval", "metrics": e}))?;
        progress.on_eval(&e);
        Ok::<_, Error>(e)
    };
    if let Some(metrics) = metrics.as_mut()
        && config.init.is_some()
        && start == 0
        && !valid.is_empty()
    {
        eval_at(&model, 0, metrics)?;
    }
    // The last step's outcome, until its values are read: on the device path a step's losses
    // stay on the device, and are read (and checked) only at logging, evaluation and
    // checkpoint steps, and before an interrupted run saves.
    let mut unread = None;
    for step in start..config.steps {
        if stop_requested(cancel, dist)? {
            if lead {
                if let Some(outcome) = unread.as_mut() {
                    crate::step::StepOutcome::read(outcome)?;
                }
                save(step, &model, &optim)?;
            }
            return Err(Error::Interrupted(step));
        }
        let (next, mut outcome) = train_step_dist(model, &mut optim, config, &masker, step, dist, |k| {
            batches.batch(step * config.batch_size as u64 + (k * micro + rows.start) as u64, rows.len())
        })?;
        model = next;
        window.1 += outcome.tokens();

        let done = step + 1;
        let log_now = done % config.log_every.max(1) == 0 || done == config.steps;
        let eval_now = (config.eval_every > 0 && done % config.eval_every == 0) || done == config.steps;
        let save_now = (config.checkpoint_every > 0 && done % config.checkpoint_every == 0) || done == config.steps;
        // The first step is read too: on a GPU it carries the kernel compilation and autotuning,
        // which the progress output reports.
        let first = step == start;
        if !(outcome.is_read() || first || log_now || eval_now || save_now) {
            // Nothing to show but the position: reading the values would wait for the device.
            progress.on_advance(done);
            unread = Some(outcome);
            continue;
        }
        unread = None;
        // Throughput over the steps since the last read (on the device path, the time the
        // device took for them).
        let mut m = outcome.metrics(done, config.disc_weight)?;
        m.tokens_per_sec = window.1 as f64 / window.0.elapsed().as_secs_f64().max(1e-9);
        m.elapsed_secs = started.elapsed().as_secs_f64();
        window = (Instant::now(), 0);
        progress.on_step(&m);
        let Some(metrics) = metrics.as_mut() else { continue };
        if log_now {
            metrics.write(&serde_json::json!({"kind": "train", "metrics": m}))?;
        }
        if eval_now && !valid.is_empty() {
            last_eval = Some(eval_at(&model, done, metrics)?);
        }
        if save_now {
            let dir = save(done, &model, &optim)?;
            progress.on_checkpoint(done, &dir);
        }
    }
    let plot = out.join("curves.svg");
    let generator_dir = out.join("generator");
    if !lead {
        return Ok(Summary {
            steps: config.steps,
            steps_this_run: config.steps.saturating_sub(start),
            seconds: started.elapsed().as_secs_f64(),
            eval: None,
            discriminator_dir: None,
            generator_dir,
            metrics: metrics_path,
            plot,
        });
    }

    // Export both networks in HuggingFace layout.
    let (generator, discriminator) = model.valid().to_parts();
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
    crate::plot::write_curves(&metrics_path, &plot)?;
    Ok(Summary {
        steps: config.steps,
        steps_this_run: config.steps.saturating_sub(start),
        seconds: started.elapsed().as_secs_f64(),
        eval: last_eval,
        discriminator_dir,
        generator_dir,
        metrics: metrics_path,
        plot,
    })
}

/// Whether any rank was cancelled (one small reduction per step, so all ranks stop together).
fn stop_requested(cancel: &Cancel, dist: &dyn Reduce) -> Result<bool> {
    if dist.world() == 1 {
        return Ok(cancel.is_cancelled());
    }
    let mut flag = [f64::from(u8::from(cancel.is_cancelled()))];
    dist.sum_f64(&mut flag)?;
    Ok(flag[0] > 0.0)
}

/// Every rank learns whether every rank's `result` is `Ok`: a rank with an error returns it
/// (after telling the others); a rank whose own result is fine but another's is not returns
/// [`Error::Collective`] with `others`.
fn agree<T>(dist: &dyn Reduce, result: Result<T>, others: &str) -> Result<T> {
    if dist.world() == 1 {
        return result;
    }
    let mut failed = [f64::from(u8::from(result.is_err()))];
    dist.sum_f64(&mut failed)?;
    match result {
        Err(e) => Err(e),
        Ok(_) if failed[0] > 0.0 => Err(Error::Collective(format!("{others} (see its output)"))),
        Ok(v) => Ok(v),
    }
}

/// Where `--resume` continues in `out`: the run's record (this run's when the directory holds
/// none) and its newest checkpoint, after the checks of [`pretrain`].
fn resume_point(
    out: &Path,
    config: &PretrainConfig,
    this_run: &RunRecord,
) -> Result<(RunRecord, Option<crate::checkpoint::CheckpointInfo>)> {
    let ckpt_root = out.join(CHECKPOINTS_DIR);
    let saved = RunRecord::load(out)?;
    if let Some(saved) = &saved {
        saved.check_same_inputs(this_run, out)?;
    }
    // Checkpoints from before run ids (no run.json) belong to the directory's run.
    let own = saved.as_ref().map(|r| r.run_id.as_str());
    let latest = latest_checkpoint(&ckpt_root, own)?;
    let Some(checkpoint) = latest else {
        let foreign = list_checkpoints(&ckpt_root)?;
        if let Some(c) = foreign.last() {
            return Err(Error::Resume {
                dir: out.to_path_buf(),
                message: format!("{} was written by another run than the one recorded in run.json", c.dir.display()),
            });
        }
        tracing::warn!(dir = %ckpt_root.display(), "--resume: no checkpoint found, starting from scratch");
        return Ok((saved.unwrap_or_else(|| this_run.clone()), None));
    };
    check_resumable(out, config, &checkpoint)?;
    Ok((saved.unwrap_or_else(|| this_run.clone()), Some(checkpoint)))
}

fn write_tokenizer(tokenizer: &WordPieceTokenizer, dir: &Path) -> Result<()> {
    let vocab = tokenizer.vocab_tokens().join("\n") + "\n";
    hf::write_atomic(&dir.join("vocab.txt"), vocab.as_bytes())?;
    let lower = tokenizer.normalizer_options().lowercase;
    let cfg = serde_json::json!({"do_lower_case": lower, "tokenizer_class": "ElectraTokenizer", "model_max_length": 512});
    hf::write_atomic(&dir.join("tokenizer_config.json"), cfg.to_string().as_bytes())?;
    Ok(())
}
