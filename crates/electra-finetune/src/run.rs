//! One fine-tuning run: epochs over shuffled, dynamically padded batches; Adam (eps 1e-6) with a
//! linear schedule and 10% warm-up, layer-wise learning-rate decay and global-norm clipping;
//! evaluation after every epoch; the best epoch's model kept on disk in HuggingFace layout.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::prelude::*;
use burn::tensor::TensorData;
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::AutodiffBackend;
use electra_model::parallel::map_chunks;
use electra_train::chunks::backward_in_chunks;
use electra_train::seed::derive_seed;
use electra_train::optim::{ElectraAdam, clip_global_norm};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::model::{HeadKind, TaskModel};
use crate::optim::{DepthRule, step_layerwise};
use crate::{Error, Result};

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
    /// Layer-wise learning-rate decay (paper: 0.8; 0.9 for Large; 1 disables it).
    pub layer_decay: f64,
    /// Where the head sits in the decay's depth numbering.
    pub depth_rule: DepthRule,
    /// Decoupled weight decay on matrices (paper: 0; reference code: 0.01).
    pub weight_decay: f64,
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
}

impl Default for FinetuneConfig {
    fn default() -> Self {
        Self {
            learning_rate: 3e-4,
            epochs: 3,
            batch_size: 32,
            eval_batch_size: 64,
            warmup_proportion: 0.1,
            layer_decay: 0.8,
            depth_rule: DepthRule::Reference,
            weight_decay: 0.0,
            adam_epsilon: 1e-6,
            bias_correction: false,
            max_grad_norm: 1.0,
            seed: 1,
            chunk_size: None,
        }
    }
}

impl FinetuneConfig {
    /// Checks the values a run cannot start with.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Invalid(format!("fine-tuning config: {m}")));
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
        Ok(())
    }

    /// The learning rate at `step` of `total`: linear warm-up over the first
    /// `warmup_proportion`, then linear decay to 0.
    pub fn learning_rate_at(&self, step: usize, total: usize) -> f64 {
        let warmup = (self.warmup_proportion * total as f64).round() as usize;
        if step < warmup {
            return self.learning_rate * (step + 1) as f64 / warmup as f64;
        }
        let rest = total.saturating_sub(warmup).max(1);
        self.learning_rate * (1.0 - (step - warmup) as f64 / rest as f64).max(0.0)
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

/// Reports progress of a run (the CLI draws a bar; libraries never print).
pub trait RunProgress {
    /// Called after every optimiser step.
    fn step(&self, _step: usize, _total: usize, _loss: f64) {}
    /// Called after every evaluation.
    fn epoch(&self, _record: &EpochRecord) {}
}

/// No progress reporting.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;
impl RunProgress for Silent {}

fn ints<B: Backend>(values: Vec<i64>, shape: [usize; 2], device: &B::Device) -> Tensor<B, 2, Int> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// A padded batch on the device.
struct Batch<B: Backend> {
    ids: Tensor<B, 2, Int>,
    types: Tensor<B, 2, Int>,
    mask: Tensor<B, 2, Int>,
    seq: usize,
    lengths: Vec<usize>,
}

fn batch<B: Backend>(features: &[&Feature], device: &B::Device) -> Batch<B> {
    let b = features.len();
    let seq = features.iter().map(|f| f.input_ids.len()).max().unwrap_or(1).max(1);
    let (mut ids, mut types, mut mask) = (vec![0i64; b * seq], vec![0i64; b * seq], vec![0i64; b * seq]);
    for (r, f) in features.iter().enumerate() {
        for (c, (&id, &ty)) in f.input_ids.iter().zip(&f.token_type_ids).enumerate() {
            ids[r * seq + c] = i64::from(id);
            types[r * seq + c] = i64::from(ty);
            mask[r * seq + c] = 1;
        }
    }
    Batch {
        ids: ints(ids, [b, seq], device),
        types: ints(types, [b, seq], device),
        mask: ints(mask, [b, seq], device),
        seq,
        lengths: features.iter().map(|f| f.input_ids.len()).collect(),
    }
}

/// Negative log-likelihood of `targets` (`None` = ignored) under `logits` `[n, classes]`, summed
/// and divided by `counted` (the number of targets of the whole batch, of which these rows may
/// be a chunk).
fn cross_entropy<B: Backend>(logits: Tensor<B, 2>, targets: &[Option<usize>], counted: usize) -> Result<Tensor<B, 1>> {
    let device = logits.device();
    let [n, classes] = logits.dims();
    if let Some(bad) = targets.iter().flatten().find(|&&t| t >= classes) {
        return Err(Error::Invalid(format!("label index {bad} out of range for {classes} outputs")));
    }
    let idx: Vec<i64> = targets.iter().map(|t| t.unwrap_or(0) as i64).collect();
    let weight: Vec<f32> = targets.iter().map(|t| if t.is_some() { 1.0 } else { 0.0 }).collect();
    let idx = Tensor::<B, 2, Int>::from_data(TensorData::new(idx, [n, 1]), &device);
    let weight = Tensor::<B, 2>::from_data(TensorData::new(weight, [n, 1]), &device);
    let picked = log_softmax(logits, 1).gather(1, idx);
    Ok(picked.mul(weight).sum().neg().div_scalar(counted.max(1) as f32))
}

/// What [`loss`] divides by for the batch `features`: the number of labelled tokens for token
/// tagging, of examples otherwise.
fn loss_denominator(kind: &HeadKind, features: &[&Feature]) -> usize {
    match kind {
        HeadKind::Token { .. } => features
            .iter()
            .map(|f| match &f.target {
                Some(Target::Tokens(labels)) => labels.iter().take(f.input_ids.len()).flatten().count(),
                _ => 0,
            })
            .sum(),
        _ => features.len(),
    }
}

/// The training loss of `features` (a batch, or a chunk of one): per-example (per labelled token
/// for tagging) losses summed and divided by `denominator`, [`loss_denominator`] of the whole
/// batch, so that a batch's chunks add up to its mean.
fn loss<B: Backend>(
    model: &TaskModel<B>,
    batch: Batch<B>,
    features: &[&Feature],
    denominator: usize,
) -> Result<Tensor<B, 1>> {
    let device = batch.ids.device();
    let b = features.len();
    let missing = || Error::Invalid("a training feature has no target".into());
    match &model.kind {
        HeadKind::Sequence { .. } => {
            let logits = model.forward_sequence(batch.ids, batch.types, batch.mask);
            let t = features
                .iter()
                .map(|f| match f.target {
                    Some(Target::Class(c)) => Ok(Some(c)),
                    _ => Err(missing()),
                })
                .collect::<Result<Vec<_>>>()?;
            cross_entropy(logits, &t, denominator)
        }
        HeadKind::Regression => {
            let pred = model.forward_sequence(batch.ids, batch.types, batch.mask).reshape([b]);
            let t = features
                .iter()
                .map(|f| match f.target {
                    Some(Target::Value(v)) => Ok(v),
                    _ => Err(missing()),
                })
                .collect::<Result<Vec<_>>>()?;
            let t = Tensor::<B, 1>::from_data(TensorData::new(t, [b]), &device);
            Ok(pred.sub(t).square().sum().div_scalar(denominator.max(1) as f64))
        }
        HeadKind::Token { .. } => {
            let s = batch.seq;
            let logits = model.forward_tokens(batch.ids, batch.types, batch.mask);
            let n = logits.dims()[2];
            let mut t = vec![None; b * s];
            for (r, f) in features.iter().enumerate() {
                let Some(Target::Tokens(labels)) = &f.target else { return Err(missing()) };
                for (c, l) in labels.iter().enumerate().take(s) {
                    t[r * s + c] = *l;
                }
            }
            cross_entropy(logits.reshape([b * s, n]), &t, denominator)
        }
        HeadKind::Span => {
            let s = batch.seq;
            let mask = batch.mask.clone();
            let logits = model.forward_tokens(batch.ids, batch.types, batch.mask);
            // Padding can never be an answer: push its logits far down.
            let bias = mask.float().neg().add_scalar(1.0).mul_scalar(-1.0e4);
            let start = logits.clone().slice([0..b, 0..s, 0..1]).reshape([b, s]).add(bias.clone());
            let end = logits.slice([0..b, 0..s, 1..2]).reshape([b, s]).add(bias);
            let mut st = Vec::with_capacity(b);
            let mut en = Vec::with_capacity(b);
            for f in features {
                let Some(Target::Span { start, end }) = f.target else { return Err(missing()) };
                st.push(Some(start.min(s - 1)));
                en.push(Some(end.min(s - 1)));
            }
            Ok(cross_entropy(start, &st, denominator)?.add(cross_entropy(end, &en, denominator)?).div_scalar(2.0))
        }
    }
}

/// Raw outputs for `features` (evaluation mode: no dropout), in order, in batches of
/// `batch_size`; with `chunk > 0`, in batches of `chunk` examples (at most `batch_size`) run
/// on rayon's threads (CPU backends: every core busy, see `FinetuneConfig::chunk_size`).
pub fn predict<B: Backend>(model: &TaskModel<B>, features: &[Feature], batch_size: usize, chunk: usize) -> Outputs {
    let device = model.output.weight.val().device();
    let rows = if chunk > 0 { chunk.min(batch_size.max(1)) } else { batch_size.max(1) };
    let run = |part: &[Feature]| -> Outputs {
        let refs: Vec<&Feature> = part.iter().collect();
        let b = batch::<B>(&refs, &device);
        let (seq, lengths) = (b.seq, b.lengths.clone());
        match model.kind {
            HeadKind::Sequence { .. } | HeadKind::Regression => {
                let logits = model.forward_sequence(b.ids, b.types, b.mask);
                let n = logits.dims()[1];
                host(logits).chunks(n).map(<[f32]>::to_vec).collect()
            }
            HeadKind::Token { .. } | HeadKind::Span => {
                let logits = model.forward_tokens(b.ids, b.types, b.mask);
                let n = logits.dims()[2];
                let v = host(logits);
                lengths.into_iter().enumerate().map(|(r, len)| v[r * seq * n..(r * seq + len) * n].to_vec()).collect()
            }
        }
    };
    if chunk > 0 && !features.is_empty() {
        return map_chunks(features.len(), rows, |_, r| run(&features[r])).concat();
    }
    features.chunks(rows).flat_map(run).collect()
}

/// A tensor's values on the host, as f32.
pub(crate) fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap_or_default()
}

/// Fine-tunes `model` on `train`, scoring `dev` after every epoch with `score` (the first score
/// picks the best epoch, whose model is written to `out_dir` in HuggingFace layout).
pub fn finetune<B: AutodiffBackend>(
    model: TaskModel<B>,
    config: &FinetuneConfig,
    train: &[Feature],
    dev: &[Feature],
    score: &dyn Fn(&Outputs) -> Result<Scores>,
    out_dir: &Path,
    progress: &dyn RunProgress,
) -> Result<RunResult> {
    config.validate()?;
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
    let mut optim = ElectraAdam {
        beta1: 0.9,
        beta2: 0.999,
        epsilon: config.adam_epsilon as f32,
        weight_decay: config.weight_decay as f32,
        bias_correction: config.bias_correction,
    }
    .init::<B, TaskModel<B>>();
    let steps_per_epoch = train.len().div_ceil(config.batch_size);
    let total = steps_per_epoch * config.epochs;
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut step = 0;
    let mut records = Vec::new();
    let mut best: Option<(usize, Scores)> = None;
    let rows_per_chunk = config.chunk_size.unwrap_or(0);
    for epoch in 1..=config.epochs {
        order.shuffle(&mut rng);
        let mut loss_sum = 0.0;
        for chunk in order.chunks(config.batch_size) {
            let feats: Vec<&Feature> = chunk.iter().map(|&i| &train[i]).collect();
            let denominator = loss_denominator(&model.kind, &feats);
            let (mut grads, value) = if rows_per_chunk > 0 && feats.len() > rows_per_chunk {
                let mut acc = GradientsAccumulator::new();
                let seed = derive_seed(config.seed, step as u64);
                let parts = backward_in_chunks(&model, feats.len(), rows_per_chunk, seed, &mut acc, |replica, _, rows| {
                    let part = &feats[rows];
                    let l = loss(replica, batch::<B>(part, &device), part, denominator)?;
                    let value = l.clone().into_scalar().elem::<f64>();
                    Ok::<_, Error>((l, value))
                })?;
                (acc.grads(), parts.iter().sum::<f64>())
            } else {
                let l = loss(&model, batch::<B>(&feats, &device), &feats, denominator)?;
                let value = l.clone().into_scalar().elem::<f64>();
                (GradientsParams::from_grads(l.backward(), &model), value)
            };
            if !value.is_finite() {
                return Err(Error::Invalid(format!("loss became {value} at step {step}; lower the learning rate")));
            }
            clip_global_norm::<B, _>(&model, &mut grads, config.max_grad_norm);
            let lr = config.learning_rate_at(step, total);
            model = step_layerwise(&mut optim, model, grads, lr, config.layer_decay, config.depth_rule);
            step += 1;
            loss_sum += value;
            progress.step(step, total, value);
        }
        let eval_model = model.valid();
        let outputs = predict(&eval_model, dev, config.eval_batch_size, rows_per_chunk);
        let scores = score(&outputs)?;
        let record = EpochRecord {
            epoch,
            step,
            train_loss: loss_sum / steps_per_epoch as f64,
            scores: scores.clone(),
            elapsed_s: started.elapsed().as_secs_f64(),
        };
        tracing::info!(epoch, step, train_loss = record.train_loss, ?scores, "evaluated");
        progress.epoch(&record);
        records.push(record);
        let main = scores.first().map(|s| s.1).unwrap_or(f64::NAN);
        let improved = match &best {
            None => true,
            Some((_, b)) => main > b.first().map(|s| s.1).unwrap_or(f64::NEG_INFINITY),
        };
        if improved {
            eval_model.save(out_dir)?;
            best = Some((epoch, scores));
        }
    }
    let (best_epoch, best) = best.unwrap_or_default();
    Ok(RunResult {
        seed: config.seed,
        epochs: records,
        best_epoch,
        best,
        model_dir: out_dir.to_path_buf(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use burn::backend::Flex;
    use electra_model::{ElectraConfig, ElectraModel};

    use super::*;
    use crate::model::HeadStyle;

    type B = Flex;

    fn model(kind: HeadKind) -> TaskModel<B> {
        let mut c = ElectraConfig::small();
        c.vocab_size = 50;
        c.embedding_size = Some(8);
        c.hidden_size = 8;
        c.num_hidden_layers = 1;
        c.num_attention_heads = 2;
        c.intermediate_size = 16;
        c.max_position_embeddings = 16;
        let device = Default::default();
        let encoder = ElectraModel::init(&c, 3, &device).unwrap_or_else(|e| panic!("{e}"));
        TaskModel::new(encoder, kind, HeadStyle::Linear, 4, &device).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Five examples of different lengths (so chunks pad differently) with targets of `kind`.
    fn features(kind: &HeadKind) -> Vec<Feature> {
        (0..5)
            .map(|r| {
                let len = 4 + r;
                let input_ids: Vec<u32> = (0..len).map(|j| ((r * 7 + j * 3) % 45 + 5) as u32).collect();
                let target = match kind {
                    HeadKind::Sequence { .. } => Target::Class(r % 2),
                    HeadKind::Regression => Target::Value(r as f32 * 0.5 - 1.0),
                    HeadKind::Token { .. } => {
                        Target::Tokens((0..len).map(|j| (j % 3 != 0).then_some((r + j) % 2)).collect())
                    }
                    HeadKind::Span => Target::Span { start: 1, end: 1 + r % 3 },
                };
                Feature { token_type_ids: vec![0; len], input_ids, target: Some(target) }
            })
            .collect()
    }

    #[test]
    fn chunk_losses_over_the_batch_denominator_add_up_to_the_batch_loss() -> Result<()> {
        let two = || vec!["a".to_string(), "b".to_string()];
        for kind in [HeadKind::Sequence { labels: two() }, HeadKind::Regression, HeadKind::Token { labels: two() }, HeadKind::Span] {
            let m = model(kind.clone());
            let owned = features(&kind);
            let feats: Vec<&Feature> = owned.iter().collect();
            let device = Default::default();
            let den = loss_denominator(&m.kind, &feats);
            let whole = loss(&m, batch::<B>(&feats, &device), &feats, den)?.into_scalar().elem::<f64>();
            let mut parts = 0.0;
            for rows in [0..2, 2..3, 3..5] {
                let part = &feats[rows];
                parts += loss(&m, batch::<B>(part, &device), part, den)?.into_scalar().elem::<f64>();
            }
            assert!(whole.is_finite() && whole > 0.0, "{kind:?}: {whole}");
            assert!((whole - parts).abs() < 1e-5 * whole.max(1.0), "{kind:?}: whole {whole} vs chunks {parts}");
        }
        Ok(())
    }
}
