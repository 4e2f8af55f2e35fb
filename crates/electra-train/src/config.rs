//! [`PretrainConfig`]: every setting of a pre-training run, read from a JSON file.

use std::path::{Path, PathBuf};

use electra_model::init::InitSource;
use electra_model::{ElectraConfig, Precision, PreTrainingConfig};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The pre-training objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// Replaced-token detection with a generator (the default).
    #[default]
    Electra,
    /// A BERT-style masked-LM baseline of the discriminator's encoder (80/10/10 masking).
    Mlm,
}

/// The discriminator architecture: a preset name or a full HuggingFace-style config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ModelSpec {
    /// `tiny` (4 layers, hidden 128, for laptops and CI), `small`, `base` or `large`.
    Preset(String),
    /// Any config (`vocab_size` is replaced by the tokenizer's).
    Custom(Box<ElectraConfig>),
}

/// Continued pre-training: the checkpoint both networks start from (see
/// [`electra_model::init`] for what a directory may hold).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitFrom {
    /// A HuggingFace model directory (`ElectraForPreTraining`, or any BERT/ELECTRA encoder) or
    /// an `electra pretrain` run's export (`discriminator/` and `generator/`).
    pub dir: PathBuf,
    /// A separate generator directory (`ElectraForMaskedLM`). Without it: the export's
    /// `generator/`, else a fresh generator `generator_size` times the discriminator's width
    /// sharing the checkpoint's embeddings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<PathBuf>,
}

impl InitFrom {
    /// The resolved directories.
    ///
    /// # Errors
    /// A directory that holds no model.
    pub fn source(&self) -> Result<InitSource> {
        Ok(InitSource::resolve(&self.dir, self.generator.as_deref())?)
    }
}

/// Every setting of a pre-training run. Defaults are the reference's ELECTRA-Small recipe
/// (`../docs/user-guide.md` lists where the project deviates).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PretrainConfig {
    /// Discriminator architecture (not with `init`, whose checkpoint gives it).
    pub model: ModelSpec,
    /// Start from a checkpoint instead of random weights (continued pre-training). Absent in
    /// the configs of runs from random initialisation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<InitFrom>,
    /// Generator width as a fraction of the discriminator's (paper: 1/4 Small and Large, 1/3 Base).
    pub generator_size: f64,
    /// `electra` or `mlm`.
    pub objective: Objective,
    /// Maximum sequence length (must equal the prepared shards').
    pub max_seq_len: usize,
    /// Sequences per optimiser step (across accumulation).
    pub batch_size: usize,
    /// Micro-batches per optimiser step; `batch_size` must be divisible by it.
    pub grad_accumulation: usize,
    /// Rows per batch chunk; `None` or 0 for none. With chunks, each micro-batch runs as chunks
    /// of this many sequences on rayon's threads, each with its own dropout and sampling streams
    /// (on the host), gradients added in chunk order: the same losses as the whole micro-batch,
    /// a result that does not depend on the number of threads, and every core busy on CPU
    /// backends (docs/performance.md, "Batch chunks"). `None` leaves the choice to the caller:
    /// the `electra` binary picks 8 on CPU backends and none on GPU ones, and records it.
    pub chunk_size: Option<usize>,
    /// Precision of the models' matrix multiplies ([`electra_model::precision`]): `f32` (the
    /// default), `bf16`, or `f16` with dynamic loss scaling ([`crate::optim::LossScale`]).
    /// Parameters, optimiser state, losses and sampling stay `f32`. Absent from the configs of
    /// `f32` runs.
    #[serde(skip_serializing_if = "Precision::is_f32")]
    pub precision: Precision,
    /// Total optimiser steps.
    pub steps: u64,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// Warm-up steps (the ramp multiplies the linear decay, as in the reference).
    pub warmup_steps: u64,
    /// Decoupled weight decay (not applied to biases and LayerNorm parameters).
    pub weight_decay: f64,
    /// Adam beta1.
    pub adam_beta1: f64,
    /// Adam beta2.
    pub adam_beta2: f64,
    /// Adam epsilon.
    pub adam_epsilon: f64,
    /// Apply Adam's bias correction (the reference does not).
    pub bias_correction: bool,
    /// Global gradient-norm clipping threshold.
    pub max_grad_norm: f64,
    /// Weight of the discriminator loss.
    pub disc_weight: f64,
    /// Fraction of tokens to corrupt.
    pub mask_prob: f64,
    /// Fraction of chosen positions shown to the generator as `[MASK]`.
    pub mask_token_prob: f64,
    /// Choose whole words.
    pub whole_word: bool,
    /// Sampling temperature of the generator.
    pub temperature: f64,
    /// Seed of initialisation, data order, masking, sampling and dropout.
    pub seed: u64,
    /// Steps between metric records.
    pub log_every: u64,
    /// Steps between evaluations on the validation split (0: only at the end).
    pub eval_every: u64,
    /// Validation batches per evaluation.
    pub eval_batches: usize,
    /// Steps between checkpoints (0: only at the end).
    pub checkpoint_every: u64,
    /// Checkpoints kept.
    pub keep_checkpoints: usize,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        Self {
            model: ModelSpec::Preset("small".into()),
            init: None,
            generator_size: 0.25,
            objective: Objective::Electra,
            max_seq_len: 128,
            batch_size: 128,
            grad_accumulation: 1,
            chunk_size: None,
            precision: Precision::F32,
            steps: 1_000_000,
            learning_rate: 5e-4,
            warmup_steps: 10_000,
            weight_decay: 0.01,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_epsilon: 1e-6,
            bias_correction: false,
            max_grad_norm: 1.0,
            disc_weight: 50.0,
            mask_prob: 0.15,
            mask_token_prob: 0.85,
            whole_word: false,
            temperature: 1.0,
            seed: 12345,
            log_every: 10,
            eval_every: 1000,
            eval_batches: 20,
            checkpoint_every: 1000,
            keep_checkpoints: 3,
        }
    }
}

/// A 4-layer, hidden-128 discriminator: the default run on a laptop CPU.
pub fn tiny() -> ElectraConfig {
    let mut c = ElectraConfig::small();
    c.hidden_size = 128;
    c.embedding_size = Some(128);
    c.num_hidden_layers = 4;
    c.num_attention_heads = 2;
    c.intermediate_size = 512;
    c
}

impl PretrainConfig {
    /// Reads a JSON config; unknown fields are errors naming them.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let c: Self = serde_json::from_str(&text)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        c.validate().map_err(|e| match e {
            Error::Config(m) => Error::Config(format!("{}: {m}", path.display())),
            other => other,
        })?;
        Ok(c)
    }

    /// The discriminator architecture for a vocabulary of `vocab_size`.
    pub fn discriminator(&self, vocab_size: usize) -> Result<ElectraConfig> {
        let mut c = match &self.model {
            ModelSpec::Preset(name) => match name.as_str() {
                "tiny" => tiny(),
                "small" => ElectraConfig::small(),
                "base" => ElectraConfig::base(),
                "large" => ElectraConfig::large(),
                other => {
                    return Err(Error::Config(format!(
                        "model: unknown preset `{other}` (tiny, small, base, large or a config object)"
                    )));
                }
            },
            ModelSpec::Custom(c) => (**c).clone(),
        };
        c.vocab_size = vocab_size;
        if c.max_position_embeddings < self.max_seq_len {
            return Err(Error::Config(format!(
                "max_seq_len {} exceeds the model's max_position_embeddings {}",
                self.max_seq_len, c.max_position_embeddings
            )));
        }
        c.validate()?;
        Ok(c)
    }

    /// Both networks' architectures: the preset's (or custom config's) for a vocabulary of
    /// `vocab_size`, or the checkpoint's with `init`, whose vocabulary must have `vocab_size`
    /// entries.
    ///
    /// # Errors
    /// Unknown presets, invalid or unreadable configs, a checkpoint whose vocabulary size or
    /// positions do not fit (naming its config file).
    pub fn networks(&self, vocab_size: usize) -> Result<PreTrainingConfig> {
        let Some(init) = &self.init else {
            return Ok(PreTrainingConfig::new(self.discriminator(vocab_size)?, self.generator_size)?);
        };
        let source = init.source()?;
        let networks = source.networks(self.generator_size)?;
        let file = source.discriminator.join(electra_model::hf::CONFIG_FILE);
        let d = &networks.discriminator;
        if d.vocab_size != vocab_size {
            return Err(Error::Config(format!(
                "{}: vocab_size {} differs from the vocabulary's {} entries (the vocabulary must be the checkpoint's)",
                file.display(),
                d.vocab_size,
                vocab_size
            )));
        }
        if d.max_position_embeddings < self.max_seq_len {
            return Err(Error::Config(format!(
                "max_seq_len {} exceeds max_position_embeddings {} of {}",
                self.max_seq_len,
                d.max_position_embeddings,
                file.display()
            )));
        }
        Ok(networks)
    }

    /// Rejects settings no run can use.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.batch_size == 0 || self.grad_accumulation == 0 {
            return bad("batch_size and grad_accumulation must be positive".into());
        }
        if self.batch_size % self.grad_accumulation != 0 {
            return bad(format!(
                "batch_size {} is not divisible by grad_accumulation {}",
                self.batch_size, self.grad_accumulation
            ));
        }
        if self.steps == 0 {
            return bad("steps must be positive".into());
        }
        if self.max_seq_len < 5 {
            return bad("max_seq_len must be at least 5".into());
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return bad(format!("learning_rate must be positive, got {}", self.learning_rate));
        }
        if !(self.mask_prob > 0.0 && self.mask_prob < 1.0) {
            return bad(format!("mask_prob must be in (0, 1), got {}", self.mask_prob));
        }
        if !(0.0..=1.0).contains(&self.mask_token_prob) {
            return bad(format!("mask_token_prob must be in [0, 1], got {}", self.mask_token_prob));
        }
        if !(self.temperature > 0.0) {
            return bad(format!("temperature must be positive, got {}", self.temperature));
        }
        if !(self.max_grad_norm > 0.0) {
            return bad(format!("max_grad_norm must be positive, got {}", self.max_grad_norm));
        }
        if self.keep_checkpoints == 0 {
            return bad("keep_checkpoints must be at least 1".into());
        }
        if self.init.is_some() {
            if self.model != Self::default().model {
                return bad("`model` and `init` exclude each other: the checkpoint gives the architecture".into());
            }
            if self.objective == Objective::Mlm {
                return bad("objective `mlm` cannot start from a checkpoint (`init`); use `electra`".into());
            }
            // The generator size applies to a derived generator; the checkpoint is read later.
            if !(self.generator_size > 0.0 && self.generator_size <= 1.0) {
                return bad(format!("generator_size must be in (0, 1], got {}", self.generator_size));
            }
            return Ok(());
        }
        self.discriminator(30522)?;
        PreTrainingConfig::new(self.discriminator(30522)?, self.generator_size)?;
        Ok(())
    }

    /// The defaults of continued pre-training from `init` (`electra pretrain --init DIR` without
    /// `--config`): a run of minutes on a laptop CPU for a MiniLM-sized encoder, with the
    /// schedule of continued training: a peak learning rate of 1e-4 (5x below ELECTRA-Small's
    /// from-scratch 5e-4, as domain-adaptive pre-training uses for encoders that already read
    /// context), a warm-up of 10% of the steps, Adam's bias correction (short warm-up), and the
    /// checkpoint's own dropout. The generator, when derived, is a quarter of the
    /// discriminator's width (the paper's ratio for Small and Large).
    pub fn continued(init: InitFrom) -> Self {
        Self {
            init: Some(init),
            max_seq_len: 128,
            batch_size: 16,
            steps: 80,
            learning_rate: 1e-4,
            warmup_steps: 8,
            bias_correction: true,
            log_every: 10,
            eval_every: 20,
            eval_batches: 8,
            checkpoint_every: 20,
            keep_checkpoints: 2,
            ..Self::default()
        }
    }

    /// The learning rate at `step` (0-based): `peak * min(1, step / warmup) * (1 - step / total)`.
    /// The warm-up ramp multiplies the linear decay, as in the reference.
    pub fn learning_rate_at(&self, step: u64) -> f64 {
        let warm = if self.warmup_steps == 0 {
            1.0
        } else {
            (step as f64 / self.warmup_steps as f64).min(1.0)
        };
        let decay = (1.0 - step as f64 / self.steps as f64).max(0.0);
        self.learning_rate * warm * decay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_overlaps_warmup_and_decay() {
        let c = PretrainConfig { steps: 1000, warmup_steps: 100, learning_rate: 1e-3, ..Default::default() };
        assert_eq!(c.learning_rate_at(0), 0.0);
        // Half-way up the ramp the decay already applies: 1e-3 * 0.5 * (1 - 50/1000).
        assert!((c.learning_rate_at(50) - 1e-3 * 0.5 * 0.95).abs() < 1e-12);
        assert!((c.learning_rate_at(100) - 1e-3 * 0.9).abs() < 1e-12);
        assert!((c.learning_rate_at(500) - 1e-3 * 0.5).abs() < 1e-12);
        assert_eq!(c.learning_rate_at(1000), 0.0);
    }

    #[test]
    fn rejects_bad_configs_by_field() {
        let c = PretrainConfig { batch_size: 10, grad_accumulation: 3, ..Default::default() };
        assert!(c.validate().unwrap_err().to_string().contains("not divisible"));
        let c = PretrainConfig { model: ModelSpec::Preset("huge".into()), ..Default::default() };
        assert!(c.validate().unwrap_err().to_string().contains("huge"));
        let c = PretrainConfig { max_seq_len: 1024, ..Default::default() };
        assert!(c.validate().unwrap_err().to_string().contains("max_position_embeddings"));
        let e = serde_json::from_str::<PretrainConfig>(r#"{"learning_rat": 1}"#).unwrap_err();
        assert!(e.to_string().contains("learning_rat"));
    }

    #[test]
    fn presets_give_the_paper_generators() {
        let c = PretrainConfig::default();
        let n = c.networks(30522).unwrap();
        assert_eq!((n.generator.hidden_size, n.discriminator.hidden_size), (64, 256));
    }
}
