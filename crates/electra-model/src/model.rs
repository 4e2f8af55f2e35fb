//! The networks: a bare encoder ([`ElectraModel`]), the discriminator, the generator, and the
//! pre-training module that owns the shared embeddings once.

use burn::prelude::*;

use crate::config::ElectraConfig;
use crate::layers::{DiscriminatorHead, Embeddings, Encoder, GeneratorHead, Pooler};
use crate::params::{ParamSink, ParamSource, RandomInit, join};
use crate::{Error, Result};

/// A bare encoder with its own embeddings: HuggingFace `ElectraModel` or `BertModel` (the latter
/// with its pooler when the checkpoint has one). Used for embeddings and fine-tuning.
#[derive(Module, Debug)]
pub struct ElectraModel<B: Backend> {
    /// Word, position and token-type embeddings.
    pub embeddings: Embeddings<B>,
    /// Projection and transformer layers.
    pub encoder: Encoder<B>,
    /// BERT's pooler, only when imported from a checkpoint that has one.
    pub pooler: Option<Pooler<B>>,
    /// The architecture.
    #[module(skip)]
    pub config: ElectraConfig,
}

impl<B: Backend> ElectraModel<B> {
    /// A randomly initialised encoder (BERT init, seeded).
    pub fn init(config: &ElectraConfig, seed: u64, device: &B::Device) -> Result<Self> {
        config.validate()?;
        Self::build(config, &mut RandomInit::new(config.initializer_range, seed), "", device)
    }

    /// Builds the encoder from `src`, its tensors named `prefix.embeddings...`,
    /// `prefix.encoder...` (HuggingFace names); a pooler only when `src` has one.
    pub fn build(
        config: &ElectraConfig,
        src: &mut impl ParamSource,
        prefix: &str,
        device: &B::Device,
    ) -> Result<Self> {
        let embeddings = Embeddings::build(config, src, &join(prefix, "embeddings"), device)?;
        let encoder = Encoder::build(config, src, prefix, device)?;
        let pooler = if src.contains(&join(prefix, "pooler.dense.weight")) {
            Some(Pooler::build(config, src, prefix, device)?)
        } else {
            None
        };
        Ok(Self { embeddings, encoder, pooler, config: config.clone() })
    }

    /// Hands every tensor to `sink` under the names [`ElectraModel::build`] reads.
    pub fn visit(&self, prefix: &str, sink: &mut impl ParamSink) {
        self.embeddings.visit(&join(prefix, "embeddings"), sink);
        self.encoder.visit(prefix, sink);
        if let Some(p) = &self.pooler {
            p.visit(prefix, sink);
        }
    }

    /// Final hidden states.
    ///
    /// # Shapes
    /// - `input_ids`, `token_type_ids`, `attention_mask`: `[batch, seq]`
    /// - output: `[batch, seq, hidden]`
    pub fn forward(
        &self,
        input_ids: Tensor<B, 2, Int>,
        token_type_ids: Tensor<B, 2, Int>,
        attention_mask: Tensor<B, 2, Int>,
    ) -> Tensor<B, 3> {
        self.encoder.forward(self.embeddings.forward(input_ids, token_type_ids), attention_mask)
    }

    /// [`ElectraModel::forward`] told whether `attention_mask` has a 0 (`padded`, which the
    /// host batch knows: [`crate::input::InputBatch::padded`]), so that the pass reads nothing
    /// back from the device ([`Encoder::forward_padded`]).
    pub fn forward_padded(
        &self,
        input_ids: Tensor<B, 2, Int>,
        token_type_ids: Tensor<B, 2, Int>,
        attention_mask: Tensor<B, 2, Int>,
        padded: bool,
    ) -> Tensor<B, 3> {
        self.encoder.forward_padded(self.embeddings.forward(input_ids, token_type_ids), attention_mask, padded)
    }
}

/// The output of a discriminator forward pass.
#[derive(Debug, Clone)]
pub struct DiscriminatorOutput<B: Backend> {
    /// `[batch, seq, hidden]` final hidden states.
    pub hidden: Tensor<B, 3>,
    /// `[batch, seq]` logits that each token was replaced, before the sigmoid
    /// ([`crate::input::sigmoid`] gives the probability).
    pub logits: Tensor<B, 2>,
}

/// A standalone discriminator: HuggingFace `ElectraForPreTraining`.
#[derive(Module, Debug)]
pub struct Discriminator<B: Backend> {
    /// The encoder.
    pub electra: ElectraModel<B>,
    /// The replaced-token-detection head.
    pub head: DiscriminatorHead<B>,
}

impl<B: Backend> Discriminator<B> {
    /// A randomly initialised discriminator.
    pub fn init(config: &ElectraConfig, seed: u64, device: &B::Device) -> Result<Self> {
        config.validate()?;
        let mut src = RandomInit::new(config.initializer_range, seed);
        Self::build(config, &mut src, "electra", device)
    }

    pub(crate) fn build(
        config: &ElectraConfig,
        src: &mut impl ParamSource,
        prefix: &str,
        device: &B::Device,
    ) -> Result<Self> {
        Ok(Self {
            electra: ElectraModel::build(config, src, prefix, device)?,
            head: DiscriminatorHead::build(config, src, device)?,
        })
    }

    pub(crate) fn visit(&self, prefix: &str, sink: &mut impl ParamSink) {
        self.electra.visit(prefix, sink);
        self.head.visit(sink);
    }

    /// # Shapes
    /// - inputs: `[batch, seq]`
    /// - output: hidden `[batch, seq, hidden]`, logits `[batch, seq]`
    pub fn forward(
        &self,
        input_ids: Tensor<B, 2, Int>,
        token_type_ids: Tensor<B, 2, Int>,
        attention_mask: Tensor<B, 2, Int>,
    ) -> DiscriminatorOutput<B> {
        let hidden = self.electra.forward(input_ids, token_type_ids, attention_mask);
        let logits = self.head.forward(hidden.clone());
        DiscriminatorOutput { hidden, logits }
    }

    /// The architecture.
    pub fn config(&self) -> &ElectraConfig {
        &self.electra.config
    }
}

/// A standalone generator: HuggingFace `ElectraForMaskedLM` (or `BertForMaskedLM`).
#[derive(Module, Debug)]
pub struct Generator<B: Backend> {
    /// The encoder.
    pub electra: ElectraModel<B>,
    /// The masked-LM head, tied to `electra.embeddings.word_embeddings`.
    pub head: GeneratorHead<B>,
}

impl<B: Backend> Generator<B> {
    /// A randomly initialised generator.
    pub fn init(config: &ElectraConfig, seed: u64, device: &B::Device) -> Result<Self> {
        config.validate()?;
        let mut src = RandomInit::new(config.initializer_range, seed);
        let prefix = if config.is_bert() { "bert" } else { "electra" };
        Self::build(config, &mut src, prefix, device)
    }

    pub(crate) fn build(
        config: &ElectraConfig,
        src: &mut impl ParamSource,
        prefix: &str,
        device: &B::Device,
    ) -> Result<Self> {
        Ok(Self {
            electra: ElectraModel::build(config, src, prefix, device)?,
            head: GeneratorHead::build(config, src, device)?,
        })
    }

    pub(crate) fn visit(&self, prefix: &str, sink: &mut impl ParamSink) {
        self.electra.visit(prefix, sink);
        self.head.visit(&self.electra.config, sink);
    }

    /// Vocabulary logits at every position.
    ///
    /// # Shapes
    /// - inputs: `[batch, seq]`
    /// - output: `[batch, seq, vocab]`
    pub fn forward(
        &self,
        input_ids: Tensor<B, 2, Int>,
        token_type_ids: Tensor<B, 2, Int>,
        attention_mask: Tensor<B, 2, Int>,
    ) -> Tensor<B, 3> {
        let hidden = self.electra.forward(input_ids, token_type_ids, attention_mask);
        self.head.forward(hidden, self.electra.embeddings.word_table())
    }

    /// The architecture.
    pub fn config(&self) -> &ElectraConfig {
        &self.electra.config
    }
}

/// The architectures of the two networks trained together.
#[derive(Debug, Clone, PartialEq)]
pub struct PreTrainingConfig {
    /// The generator (usually narrower).
    pub generator: ElectraConfig,
    /// The discriminator.
    pub discriminator: ElectraConfig,
}

impl PreTrainingConfig {
    /// A discriminator and a generator `multiplier` times its width.
    pub fn new(discriminator: ElectraConfig, multiplier: f64) -> Result<Self> {
        let generator = discriminator.generator(multiplier)?;
        let c = Self { generator, discriminator };
        c.validate()?;
        Ok(c)
    }

    /// Both configs are valid and agree on everything the shared embeddings depend on.
    pub fn validate(&self) -> Result<()> {
        let (g, d) = (&self.generator, &self.discriminator);
        g.validate()?;
        d.validate()?;
        let shared = [
            ("vocab_size", g.vocab_size, d.vocab_size),
            ("embedding_size", g.embedding_size(), d.embedding_size()),
            ("max_position_embeddings", g.max_position_embeddings, d.max_position_embeddings),
            ("type_vocab_size", g.type_vocab_size, d.type_vocab_size),
        ];
        for (name, a, b) in shared {
            if a != b {
                return Err(Error::InvalidConfig(format!(
                    "generator and discriminator share embeddings but differ in {name} ({a} vs {b})"
                )));
            }
        }
        Ok(())
    }
}

/// Generator and discriminator trained together. The embeddings (word, position, token type and
/// their LayerNorm) are owned here once and handed to both networks in `forward`; each network
/// keeps its own `embeddings_project`.
#[derive(Module, Debug)]
pub struct ElectraPreTraining<B: Backend> {
    /// The shared embeddings.
    pub embeddings: Embeddings<B>,
    /// The generator's encoder.
    pub generator: Encoder<B>,
    /// The generator's MLM head (tied to `embeddings.word_embeddings`).
    pub generator_head: GeneratorHead<B>,
    /// The discriminator's encoder.
    pub discriminator: Encoder<B>,
    /// The replaced-token-detection head.
    pub discriminator_head: DiscriminatorHead<B>,
    /// Generator architecture.
    #[module(skip)]
    pub generator_config: ElectraConfig,
    /// Discriminator architecture.
    #[module(skip)]
    pub discriminator_config: ElectraConfig,
}

impl<B: Backend> ElectraPreTraining<B> {
    /// Randomly initialised networks (BERT init, seeded).
    pub fn init(config: &PreTrainingConfig, seed: u64, device: &B::Device) -> Result<Self> {
        config.validate()?;
        let d = &config.discriminator;
        let mut src = RandomInit::new(d.initializer_range, seed);
        Ok(Self {
            embeddings: Embeddings::build(d, &mut src, "embeddings", device)?,
            generator: Encoder::build(&config.generator, &mut src, "", device)?,
            generator_head: GeneratorHead::build(&config.generator, &mut src, device)?,
            discriminator: Encoder::build(d, &mut src, "", device)?,
            discriminator_head: DiscriminatorHead::build(d, &mut src, device)?,
            generator_config: config.generator.clone(),
            discriminator_config: d.clone(),
        })
    }

    /// Joins a standalone generator and discriminator, taking the shared embeddings from the
    /// discriminator (the released checkpoints hold identical copies).
    pub fn from_parts(generator: Generator<B>, discriminator: Discriminator<B>) -> Result<Self> {
        let config = PreTrainingConfig {
            generator: generator.electra.config.clone(),
            discriminator: discriminator.electra.config.clone(),
        };
        config.validate()?;
        Ok(Self {
            embeddings: discriminator.electra.embeddings,
            generator: generator.electra.encoder,
            generator_head: generator.head,
            discriminator: discriminator.electra.encoder,
            discriminator_head: discriminator.head,
            generator_config: config.generator,
            discriminator_config: config.discriminator,
        })
    }

    /// Standalone copies of both networks, each with its own copy of the shared embeddings (the
    /// HuggingFace layout), for export and inference.
    pub fn to_parts(&self) -> (Generator<B>, Discriminator<B>) {
        let generator = Generator {
            electra: ElectraModel {
                embeddings: self.embeddings.clone(),
                encoder: self.generator.clone(),
                pooler: None,
                config: self.generator_config.clone(),
            },
            head: self.generator_head.clone(),
        };
        let discriminator = Discriminator {
            electra: ElectraModel {
                embeddings: self.embeddings.clone(),
                encoder: self.discriminator.clone(),
                pooler: None,
                config: self.discriminator_config.clone(),
            },
            head: self.discriminator_head.clone(),
        };
        (generator, discriminator)
    }

    /// The generator's final hidden states. `padded`: whether `attention_mask` has a 0 (the
    /// host batch knows; see [`Encoder::forward_padded`]), so that nothing is read back from the
    /// device.
    ///
    /// # Shapes
    /// - inputs: `[batch, seq]`; output `[batch, seq, generator_hidden]`
    pub fn generator_hidden(
        &self,
        input_ids: Tensor<B, 2, Int>,
        token_type_ids: Tensor<B, 2, Int>,
        attention_mask: Tensor<B, 2, Int>,
        padded: bool,
    ) -> Tensor<B, 3> {
        self.generator.forward_padded(self.embeddings.forward(input_ids, token_type_ids), attention_mask, padded)
    }

    /// Generator logits at selected positions only (the reference computes the vocabulary
    /// projection only where tokens were masked).
    ///
    /// # Shapes
    /// - `hidden`: `[batch, seq, generator_hidden]`
    /// - `flat_positions`: `[n]`, indices into the flattened `batch * seq` positions
    /// - output: `[n, vocab]`
    pub fn generator_logits_at(&self, hidden: Tensor<B, 3>, flat_positions: Tensor<B, 1, Int>) -> Tensor<B, 2> {
        let [batch, seq, h] = hidden.dims();
        let picked = hidden.reshape([batch * seq, h]).select(0, flat_positions); // [n, generator_hidden]
        self.generator_head.logits_flat(picked, self.embeddings.word_table())
    }

    /// Discriminator logits; `padded` as in [`ElectraPreTraining::generator_hidden`].
    ///
    /// # Shapes
    /// - inputs: `[batch, seq]`; output `[batch, seq]`
    pub fn discriminator_logits(
        &self,
        input_ids: Tensor<B, 2, Int>,
        token_type_ids: Tensor<B, 2, Int>,
        attention_mask: Tensor<B, 2, Int>,
        padded: bool,
    ) -> Tensor<B, 2> {
        let embedded = self.embeddings.forward(input_ids, token_type_ids);
        let hidden = self.discriminator.forward_padded(embedded, attention_mask, padded);
        self.discriminator_head.forward(hidden)
    }
}
