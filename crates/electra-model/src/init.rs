//! Starting points for continued pre-training: a HuggingFace checkpoint loaded into
//! [`ElectraPreTraining`] instead of random weights.
//!
//! What a checkpoint directory can hold, and what each gives:
//!
//! | `--init DIR` holds                                          | discriminator                        | generator |
//! |-------------------------------------------------------------|--------------------------------------|-----------|
//! | `discriminator/` and `generator/` (what an `electra pretrain` run exports) | both networks from the checkpoint | from `generator/` |
//! | an `ElectraForPreTraining` directory                         | encoder and RTD head                 | a second directory, else derived |
//! | an encoder alone (`ElectraModel`, `BertModel`, `BertForMaskedLM`, `ElectraForMaskedLM`, ...) | encoder from it, RTD head fresh | a second directory, else derived |
//!
//! A *derived* generator is a fresh (seeded, BERT-initialised) network at `size` times the
//! discriminator's width, sharing the checkpoint's embeddings (with an `embeddings_project` when
//! the widths differ, as ELECTRA-Small does). The shared embeddings are always the
//! discriminator's: the released pairs hold identical copies.
//!
//! A BERT checkpoint becomes an ELECTRA model (`model_type` `electra`): the encoder's tensor
//! names are the same, and only the ELECTRA layout can hold a generator narrower than its
//! embeddings. A BERT pooler, unused by pre-training, is dropped (an `info` log says so).

use std::path::{Path, PathBuf};

use burn::prelude::*;

use crate::config::ElectraConfig;
use crate::hf::{CONFIG_FILE, TensorMap, load_config, load_generator};
use crate::layers::DiscriminatorHead;
use crate::model::{Discriminator, ElectraModel, ElectraPreTraining, Generator, PreTrainingConfig};
use crate::params::{ParamSource, RandomInit};
use crate::{Error, Result};

/// The subdirectory of a run's export holding the discriminator.
pub const DISCRIMINATOR_DIR: &str = "discriminator";
/// The subdirectory of a run's export holding the generator.
pub const GENERATOR_DIR: &str = "generator";
/// A tensor only a discriminator (`ElectraForPreTraining`) has.
const RTD_HEAD_TENSOR: &str = "discriminator_predictions.dense.weight";

/// Where the networks of a continued pre-training come from (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct InitSource {
    /// The directory the discriminator (or encoder) is read from; its tokenizer files are the
    /// run's vocabulary.
    pub discriminator: PathBuf,
    /// The directory the generator is read from; `None` derives a fresh one.
    pub generator: Option<PathBuf>,
}

/// What the discriminator was built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitKind {
    /// A discriminator checkpoint: encoder and replaced-token-detection head.
    Discriminator,
    /// An encoder alone: the replaced-token-detection head is fresh.
    Encoder,
}

impl InitSource {
    /// Resolves `dir` (and an optional separate generator directory): a model directory with a
    /// `config.json`, or a run export with `discriminator/` (and `generator/`, used unless
    /// `generator` is given).
    ///
    /// # Errors
    /// [`Error::NotAModel`] when `dir` (or `generator`) holds neither.
    pub fn resolve(dir: &Path, generator: Option<&Path>) -> Result<Self> {
        let explicit = match generator {
            Some(g) if g.join(CONFIG_FILE).is_file() => Some(g.to_path_buf()),
            Some(g) => return Err(Error::NotAModel(g.to_path_buf())),
            None => None,
        };
        if dir.join(CONFIG_FILE).is_file() {
            return Ok(Self { discriminator: dir.to_path_buf(), generator: explicit });
        }
        let disc = dir.join(DISCRIMINATOR_DIR);
        if disc.join(CONFIG_FILE).is_file() {
            let gen_dir = dir.join(GENERATOR_DIR);
            let generator = explicit.or_else(|| gen_dir.join(CONFIG_FILE).is_file().then_some(gen_dir));
            return Ok(Self { discriminator: disc, generator });
        }
        Err(Error::NotAModel(dir.to_path_buf()))
    }

    /// The architectures of both networks, from the configs alone (no weights read): the
    /// discriminator's as an ELECTRA config, the generator's from its directory or derived at
    /// `generator_size` times the discriminator's width.
    ///
    /// # Errors
    /// Unreadable or invalid configs; a generator that cannot share the discriminator's
    /// embeddings (the error names both files).
    pub fn networks(&self, generator_size: f64) -> Result<PreTrainingConfig> {
        let discriminator = as_electra(load_config(&self.discriminator)?);
        let generator = match &self.generator {
            Some(dir) => load_config(dir)?,
            None => discriminator.generator(generator_size)?,
        };
        let networks = PreTrainingConfig { generator, discriminator };
        networks.validate().map_err(|e| match (&self.generator, e) {
            (Some(g), Error::InvalidConfig(m)) => Error::InvalidConfig(format!(
                "{} and {}: {m}",
                self.discriminator.join(CONFIG_FILE).display(),
                g.join(CONFIG_FILE).display()
            )),
            (_, e) => e,
        })?;
        Ok(networks)
    }

    /// Loads both networks into the pre-training module. Fresh parts (a replaced-token-detection
    /// head over an encoder, a derived generator) are initialised from `seed`.
    ///
    /// # Errors
    /// As [`InitSource::networks`], and missing or mis-shaped tensors (naming the file).
    pub fn load<B: Backend>(
        &self,
        generator_size: f64,
        seed: u64,
        device: &B::Device,
    ) -> Result<(ElectraPreTraining<B>, InitKind)> {
        let networks = self.networks(generator_size)?;
        let config = &networks.discriminator;
        let mut map = TensorMap::read_dir(&self.discriminator)?;
        let prefix = map.prefix().to_string();
        let mut electra = ElectraModel::build(config, &mut map, &prefix, device)?;
        if electra.pooler.take().is_some() {
            tracing::info!(dir = %self.discriminator.display(), "the checkpoint's pooler is not part of pre-training: dropped");
        }
        let (head, kind) = if map.contains(RTD_HEAD_TENSOR) {
            (DiscriminatorHead::build(config, &mut map, device)?, InitKind::Discriminator)
        } else {
            let mut fresh = RandomInit::new(config.initializer_range, seed);
            (DiscriminatorHead::build(config, &mut fresh, device)?, InitKind::Encoder)
        };
        map.report_unused("the discriminator of the pre-training module");
        let discriminator = Discriminator { electra, head };
        let generator = match &self.generator {
            Some(dir) => load_generator(dir, device)?,
            // A different stream from the head's, so the two fresh parts are independent.
            None => Generator::init(&networks.generator, seed.wrapping_add(0x9e37_79b9_7f4a_7c15), device)?,
        };
        tracing::info!(
            discriminator = %self.discriminator.display(),
            generator = %self.generator.as_ref().map_or_else(|| "derived".to_string(), |g| g.display().to_string()),
            kind = ?kind,
            "initialised from a checkpoint"
        );
        Ok((ElectraPreTraining::from_parts(generator, discriminator)?, kind))
    }
}

/// `config` in the ELECTRA layout (a BERT config's encoder tensors have the same names).
fn as_electra(mut config: ElectraConfig) -> ElectraConfig {
    if config.is_bert() {
        config.model_type = "electra".into();
        // Keep the architecture list from claiming a BERT class on export.
        config.extra.remove("architectures");
    }
    config
}
