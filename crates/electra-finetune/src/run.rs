//! One fine-tuning run: epochs over shuffled, dynamically padded batches, each one
//! [`train_step`] (Adam with eps 1e-6, a linear schedule with 10% warm-up, layer-wise
//! learning-rate decay, global-norm clipping); evaluation after every epoch; the best epoch's
//! model kept on disk in HuggingFace layout ([`is_better`]: a NaN score never wins).

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use electra_model::input::to_host_f32;
use electra_model::parallel::map_chunks;
use electra_model::Precision;
use electra_tokenizer::Cancel;
use electra_train::optim::ElectraAdam;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::model::{HeadKind, TaskModel};
use crate::optim::DepthRule;
use crate::step::{batch, train_step};
use crate::{Error, Result};

/// The shape of the fine-tuning learning-rate schedule (both rise linearly over the first
/// `warmup_proportion` of the steps and reach 0 at the last).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// The reference's (and pre-training's): the warm-up ramp multiplies the linear decay,
    /// `peak * min(1, step / warmup) * (1 - step / total)` with `warmup = warmup_proportion *
    /// total` steps, so the two overlap, the rate never quite reaches the peak, and step 0 has
    /// rate 0.
    #[default]
    Reference,
    /// Warm-up, then decay: `peak * (step + 1) / warmup` for the first `warmup =
    /// round(warmup_proportion * total)` steps, then linear from the peak to 0 over the rest
    /// (this crate's schedule before it followed the reference).
    WarmupThenDecay,
}

/// Hyper-parameters of a fine-tuning run (reference section 6 defaults for ELECTRA-Small).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FinetuneConfig {
    /// Peak learning rate (paper: 3e-4 Small, 1e-4 Base, 5e-5 Large).
    pub learning_rate: f64,
    /// Passes over the training set (paper: 3; 10 for RTE and STS-B; 2 for SQuAD).
    pub epochs: usize,
    /// Examples per optimiser step.
    pub batch_size: usize,
    /// Examples per evaluation batch.
    pub eval_batch_size: usize,
    /// Fraction of the steps spent warming up linearly.
    pub warmup_proportion: f64,
    /// How warm-up and linear decay combine: `reference` (default; the warm-up ramp multiplied
    /// into the decay, as the reference code and pre-training do) or `warmup_then_decay` (the
    /// peak is reached at the end of warm-up, then decays). See [`Schedule`].
    pub schedule: Schedule,
    /// Layer-wise learning-rate decay (paper: 0.8; 0.9 for Large; 1 disables it).
    pub layer_decay: f64,
    /// Where the head sits in the decay's depth numbering.
    pub depth_rule: DepthRule,
    /// Decoupled weight decay on matrices (paper: 0; reference code: 0.01).
    pub weight_decay: f64,
    /// Adam's beta1 (reference 0.9).
    pub adam_beta1: f64,
    /// Adam's beta2 (reference 0.999).
    pub adam_beta2: f64,
    /// Adam epsilon.
    pub adam_epsilon: f64,
    /// Adam's bias correction (the reference's optimiser has none).
    pub bias_correction: bool,
    /// Global gradient-norm clip.
    pub max_grad_norm: f64,
    /// Seed of the head's initialisation, the shuffling and dropout.
    pub seed: u64,
    /// Rows per batch chunk; `None` or 0 for none. With chunks, each batch runs as chunks of
    /// this many examples on rayon's threads (each with its own dropout stream, losses divided
    /// by the whole batch's counts, gradients added in chunk order), as pre-training does
    /// (`electra_train::PretrainConfig::chunk_size`); prediction uses the same chunks. The
    /// `electra` binary picks 8 on CPU backends and none on GPU ones.
    pub chunk_size: Option<usize>,
    /// Precision of the matrix multiplies in training and prediction
    /// ([`electra_model::precision`]): `f32` (default) or `bf16`. (`f16` would need loss
    /// scaling, which pre-training has and fine-tuning does not: it is refused.)
    #[serde(skip_serializing_if = "Precision::is_f32")]
    pub precision: Precision,
}

impl Default for FinetuneConfig {
    fn default() -> Self {
        Self {
            learning_rate: 3e-4,
            epochs: 3,
            batch_size: 32,
            eval_batch_size: 64,
            warmup_proportion: 0.1,
            schedule: Schedule::Reference,
            layer_decay: 0.8,
            depth_rule: DepthRule::Reference,
            weight_decay: 0.0,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_epsilon: 1e-6,
            bias_correction: false,
            max_grad_norm: 1.0,
            seed: 1,
            chunk_size: None,
            precision: Precision::F32,
        }
    }
}

impl FinetuneConfig {
    /// Checks the values a run cannot start with.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Invalid(format!("fine-tuning config: {m}")));
        if self.precision == Precision::F16 {
            return bad("precision f16 needs loss scaling, which fine-tuning does not have: use bf16 (or f32)");
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return bad("learning_rate must be positive");
        }
        if self.epochs == 0 || self.batch_size == 0 || self.eval_batch_size == 0 {
            return bad("epochs, batch_size and eval_batch_size must be at least 1");
        }
        if !(0.0..1.0).contains(&self.warmup_proportion) {
            return bad("warmup_proportion must be in [0, 1)");
        }
        if !(self.layer_decay > 0.0 && self.layer_decay <= 1.0) {
            return bad("layer_decay must be in (0, 1]");
        }
        if !((0.0..1.0).contains(&self.adam_beta1) && (0.0..1.0).contains(&self.adam_beta2)) {
            return bad("adam_beta1 and adam_beta2 must be in [0, 1)");
        }
        Ok(())
    }

    /// The learning rate at `step` (0-based) of `total`, by [`FinetuneConfig::schedule`].
    pub fn learning_rate_at(&self, step: usize, total: usize) -> f64 {
        match self.schedule {
            Schedule::Reference => {
                let warmup = self.warmup_proportion * total as f64;
                let ramp = if warmup > 0.0 { (step as f64 / warmup).min(1.0) } else { 1.0 };
                let decay = (1.0 - step as f64 / total.max(1) as f64).max(0.0);
                self.learning_rate * ramp * decay
            }
            Schedule::WarmupThenDecay => {
                let warmup = (self.warmup_proportion * total as f64).round() as usize;
                if step < warmup {
                    return self.learning_rate * (step + 1) as f64 / warmup as f64;
                }
                let rest = total.saturating_sub(warmup).max(1);
                self.learning_rate * (1.0 - (step - warmup) as f64 / rest as f64).max(0.0)
            }
        }
    }

    /// The optimiser of a run: the reference Adam with this config's betas, epsilon, weight
    /// decay and bias correction.
    pub fn adam(&self) -> ElectraAdam {
        ElectraAdam::new(self.adam_beta1, self.adam_beta2, self.adam_epsilon, self.weight_decay, self.bias_correction)
    }
}

/// What a feature is trained to predict.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A class index (sequence classification).
    Class(usize),
    /// A real value (regression).
    Value(f32),
    /// One class index per token position; `None` where no label applies (special tokens,
    /// continuation sub-words).
    Tokens(Vec<Option<usize>>),
    /// Start and end token positions of the answer (0 = `[CLS]`: no answer in this window).
    Span {
        /// Start position.
        start: usize,
        /// End position (inclusive).
        end: usize,
    },
}

/// One model input with its target.
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    /// Token ids with `[CLS]`/`[SEP]`, unpadded.
    pub input_ids: Vec<u32>,
    /// Segment ids, same length.
    pub token_type_ids: Vec<u32>,
    /// The target (ignored for prediction-only inputs).
    pub target: Option<Target>,
}

/// A named score; the first of a list is the one that picks the best epoch (higher is better).
pub type Scores = Vec<(String, f64)>;

/// Raw outputs per feature: sequence heads `[outputs]`; token heads `[len * outputs]`; span
/// heads `[len * 2]` (start, end interleaved), over the feature's unpadded length.
pub type Outputs = Vec<Vec<f32>>;

/// One epoch's record.
#[derive(Debug, Clone, Serialize)]
pub struct EpochRecord {
    /// 1-based epoch.
    pub epoch: usize,
    /// Optimiser steps so far.
    pub step: usize,
    /// Mean training loss over the epoch.
    pub train_loss: f64,
    /// Dev scores.
    pub scores: Scores,
    /// Seconds since the run started.
    pub elapsed_s: f64,
}

/// The result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// Seed of the run.
    pub seed: u64,
    /// Per-epoch records.
    pub epochs: Vec<EpochRecord>,
    /// The best epoch (1-based) by the first score.
    pub best_epoch: usize,
    /// The best epoch's scores.
    pub best: Scores,
    /// Where the best model was written.
    pub model_dir: PathBuf,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Reports the events of a run (the CLI draws a bar; libraries never print). Every method
/// defaults to nothing; stopping a run is [`Cancel`]'s job, not progress's.
pub trait RunProgress {
    /// Once, before the first step: the run starts at `start_step` (0) of `total_steps`.
    fn on_start(&self, _start_step: usize, _total_steps: usize) {}
    /// After every optimiser step: `step` steps of `total` done, this step's loss.
    fn on_step(&self, _step: usize, _total: usize, _loss: f64) {}
    /// After every epoch's evaluation.
    fn on_epoch(&self, _record: &EpochRecord) {}
}

/// No progress reporting.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;
impl RunProgress for Silent {}

/// Raw outputs for `features` (evaluation mode: no dropout), in order, in batches of
/// `batch_size`; with `chunk > 0`, in batches of `chunk` examples (at most `batch_size`) run
/// on rayon's threads (CPU backends: every core busy, see `FinetuneConfig::chunk_size`).
pub fn predict<B: Backend>(model: &TaskModel<B>, features: &[Feature], batch_size: usize, chunk: usize) -> Outputs {
    let device = model.output.weight.val().device();
    let rows = if chunk > 0 { chunk.min(batch_size.max(1)) } else { batch_size.max(1) };
    let run = |part: &[Feature]| -> Outputs {
        let refs: Vec<&Feature> = part.iter().collect();
        let b = batch::<B>(&refs, &device);
        let seq = b.seq;
        let lengths = refs.iter().map(|f| f.input_ids.len());
        match model.kind {
            HeadKind::Sequence { .. } | HeadKind::Regression => {
                let logits = model.forward_sequence(b.input_ids, b.token_type_ids, b.attention_mask);
                let n = logits.dims()[1];
                to_host_f32(logits).chunks(n).map(<[f32]>::to_vec).collect()
            }
            HeadKind::Token { .. } | HeadKind::Span => {
                let logits = model.forward_tokens(b.input_ids, b.token_type_ids, b.attention_mask);
                let n = logits.dims()[2];
                let v = to_host_f32(logits);
                lengths.enumerate().map(|(r, len)| v[r * seq * n..(r * seq + len) * n].to_vec()).collect()
            }
        }
    };
    if chunk > 0 && !features.is_empty() {
        return map_chunks(features.len(), rows, |_, r| run(&features[r])).concat();
    }
    features.chunks(rows).flat_map(run).collect()
}

/// Whether an epoch whose main dev score is `score` replaces the best epoch so far, whose main
/// score is `best` (`None` before the first epoch): the first epoch is always kept (so that a
/// model is on disk), a NaN never replaces a number, and a number replaces a NaN or a lower
/// number (ties keep the earlier epoch).
pub fn is_better(score: f64, best: Option<f64>) -> bool {
    match best {
        None => true,
        Some(b) => !score.is_nan() && (b.is_nan() || score > b),
    }
}

/// The best epoch (1-based) of a run whose epochs' main dev scores are `scores`, as
/// [`finetune`] picks it with [`is_better`]: the first highest non-NaN score; when every score
/// is NaN, epoch 1. `None` only for no epochs.
pub fn best_epoch(scores: &[f64]) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, &score) in scores.iter().enumerate() {
        if is_better(score, best.map(|b| b.1)) {
            best = Some((i + 1, score));
        }
    }
    best.map(|b| b.0)
}

/// Fine-tunes `model` on `train`, scoring `dev` after every epoch with `score` (the first score
/// picks the best epoch, [`is_better`], whose model is written to `out_dir` in HuggingFace
/// layout). Each batch is one [`train_step`]; training and scoring run in `config.precision`
/// ([`electra_model::autocast`]). `cancel` is polled before every step: once set,
/// the run stops with [`Error::Interrupted`] (`out_dir` keeps the best epoch evaluated so far,
/// if any).
///
/// # Errors
/// An invalid config, an empty split, a failed step ([`train_step`]), a scoring error, a model
/// that cannot be written, or [`Error::Interrupted`].
#[allow(clippy::too_many_arguments)] // the data, the scorer, the output and the two hooks are all the caller's
pub fn finetune<B: AutodiffBackend>(
    model: TaskModel<B>,
    config: &FinetuneConfig,
    train: &[Feature],
    dev: &[Feature],
    score: &dyn Fn(&Outputs) -> Result<Scores>,
    out_dir: &Path,
    progress: &dyn RunProgress,
    cancel: &Cancel,
) -> Result<RunResult> {
    config.validate()?;
    electra_model::autocast(config.precision, || {
        if train.is_empty() {
            return Err(Error::Invalid("the training split is empty".into()));
        }
        if dev.is_empty() {
            return Err(Error::Invalid("the dev split is empty".into()));
        }
        let started = Instant::now();
        let device = model.output.weight.val().device();
        B::seed(&device, config.seed);
        let mut model = model;
        let mut optim = config.adam().init::<B, TaskModel<B>>();
        let steps_per_epoch = train.len().div_ceil(config.batch_size);
        let total = steps_per_epoch * config.epochs;
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let mut order: Vec<usize> = (0..train.len()).collect();
        let mut step = 0;
        let mut records = Vec::new();
        let mut best: Option<(usize, Scores)> = None;
        let main_score = |scores: &Scores| scores.first().map_or(f64::NAN, |s| s.1);
        progress.on_start(0, total);
        for epoch in 1..=config.epochs {
            order.shuffle(&mut rng);
            let mut loss_sum = 0.0;
            for chunk in order.chunks(config.batch_size) {
                if cancel.is_cancelled() {
                    return Err(Error::Interrupted { step });
                }
                let feats: Vec<&Feature> = chunk.iter().map(|&i| &train[i]).collect();
                let (next, outcome) = train_step(model, &mut optim, config, &feats, step, total)?;
                model = next;
                step += 1;
                loss_sum += outcome.loss;
                progress.on_step(step, total, outcome.loss);
            }
            let eval_model = model.valid();
            let outputs = predict(&eval_model, dev, config.eval_batch_size, config.chunk_size.unwrap_or(0));
            let scores = score(&outputs)?;
            let record = EpochRecord {
                epoch,
                step,
                train_loss: loss_sum / steps_per_epoch as f64,
                scores: scores.clone(),
                elapsed_s: started.elapsed().as_secs_f64(),
            };
            tracing::info!(epoch, step, train_loss = record.train_loss, ?scores, "evaluated");
            progress.on_epoch(&record);
            records.push(record);
            if is_better(main_score(&scores), best.as_ref().map(|b| main_score(&b.1))) {
                eval_model.save(out_dir)?;
                best = Some((epoch, scores));
            }
        }
        let (best_epoch, best) = best.unwrap_or_default();
        if main_score(&best).is_nan() {
            tracing::warn!(best_epoch, "every epoch's main dev score is NaN (or missing); kept the first epoch's model");
        }
        Ok(RunResult {
            seed: config.seed,
            epochs: records,
            best_epoch,
            best,
            model_dir: out_dir.to_path_buf(),
            seconds: started.elapsed().as_secs_f64(),
        })
    })
}

#[cfg(test)]
mod tests {
    use burn::backend::{Autodiff, Flex};

    use super::*;
    use crate::model::HeadStyle;
    use crate::testing::{features, tiny_model, two};

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn the_reference_schedule_multiplies_the_warmup_ramp_into_the_decay() {
        // 100 steps, warm-up 10: peak * min(1, t / 10) * (1 - t / 100).
        let c = FinetuneConfig { learning_rate: 1e-3, warmup_proportion: 0.1, ..Default::default() };
        assert_eq!(c.schedule, Schedule::Reference, "the reference is the default");
        assert_eq!(c.learning_rate_at(0, 100), 0.0);
        assert!(close(c.learning_rate_at(5, 100), 1e-3 * 0.5 * 0.95));
        assert!(close(c.learning_rate_at(10, 100), 1e-3 * 0.9));
        assert!(close(c.learning_rate_at(55, 100), 1e-3 * 0.45));
        assert!(close(c.learning_rate_at(99, 100), 1e-5));
        // No warm-up: the decay alone.
        let flat = FinetuneConfig { warmup_proportion: 0.0, ..c.clone() };
        assert!(close(flat.learning_rate_at(0, 100), 1e-3));
        assert!(close(flat.learning_rate_at(50, 100), 0.5e-3));
        // A fractional warm-up (2.5 steps of 25), as the reference's float warm-up.
        assert!(close(c.learning_rate_at(2, 25), 1e-3 * 0.8 * 0.92));
    }

    #[test]
    fn warmup_then_decay_reaches_the_peak_then_decays() {
        let c = FinetuneConfig {
            learning_rate: 1e-3,
            warmup_proportion: 0.1,
            schedule: Schedule::WarmupThenDecay,
            ..Default::default()
        };
        assert!(close(c.learning_rate_at(0, 100), 1e-4));
        assert!(close(c.learning_rate_at(4, 100), 5e-4));
        assert!(close(c.learning_rate_at(9, 100), 1e-3));
        assert!(close(c.learning_rate_at(10, 100), 1e-3));
        assert!(close(c.learning_rate_at(55, 100), 0.5e-3));
        assert!(close(c.learning_rate_at(99, 100), 1e-3 / 90.0));
    }

    #[test]
    fn schedule_and_betas_have_serde_defaults() {
        let old: FinetuneConfig = serde_json::from_str(r#"{"learning_rate": 1e-4}"#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((old.schedule, old.adam_beta1, old.adam_beta2), (Schedule::Reference, 0.9, 0.999));
        let named: FinetuneConfig =
            serde_json::from_str(r#"{"schedule": "warmup_then_decay"}"#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(named.schedule, Schedule::WarmupThenDecay);
        let adam = FinetuneConfig { adam_beta1: 0.8, adam_beta2: 0.99, ..Default::default() }.adam();
        assert_eq!((adam.beta1, adam.beta2, adam.epsilon), (0.8, 0.99, 1e-6));
        assert!(FinetuneConfig { adam_beta2: 1.0, ..Default::default() }.validate().is_err());
    }

    #[test]
    fn a_nan_dev_score_never_wins_the_best_epoch() {
        assert_eq!(best_epoch(&[f64::NAN, 0.5]), Some(2));
        assert_eq!(best_epoch(&[0.5, f64::NAN]), Some(1));
        assert_eq!(best_epoch(&[0.5, f64::NAN, 0.7, 0.7, 0.6]), Some(3), "ties keep the earlier epoch");
        // Every score NaN: the first epoch is kept (a model is on disk), and no panic.
        assert_eq!(best_epoch(&[f64::NAN, f64::NAN]), Some(1));
        assert_eq!(best_epoch(&[]), None);
        assert!(is_better(f64::NAN, None));
        assert!(!is_better(f64::NAN, Some(0.1)));
        assert!(is_better(0.1, Some(f64::NAN)));
    }

    #[test]
    fn a_cancelled_run_stops_before_its_first_step() {
        type AB = Autodiff<Flex>;
        let kind = HeadKind::Sequence { labels: two() };
        let m = tiny_model::<AB>(kind.clone(), HeadStyle::Linear, false);
        let data = features(&kind);
        let out = std::env::temp_dir().join(format!("electra-finetune-cancelled-{}", std::process::id()));
        let cancel = Cancel::new();
        cancel.cancel();
        let config = FinetuneConfig { batch_size: 2, ..Default::default() };
        let score = |_: &Outputs| -> Result<Scores> { panic!("scored a run that was cancelled before any step") };
        let result = finetune(m, &config, &data, &data, &score, &out, &Silent, &cancel);
        assert!(matches!(result, Err(Error::Interrupted { step: 0 })), "{result:?}");
        assert!(!out.exists(), "a cancelled run wrote {}", out.display());
    }
}
