//! [`ElectraConfig`]: the architecture of one network, read from a HuggingFace `config.json` as is.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The architecture of one BERT-style encoder (an ELECTRA generator, an ELECTRA discriminator, or a
/// BERT model).
///
/// Deserialises a HuggingFace `config.json` of `model_type` `electra` or `bert` unchanged; fields
/// this crate does not use are kept in [`ElectraConfig::extra`] and written back on export.
/// BERT configs have no `embedding_size`: it defaults to `hidden_size`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ElectraConfig {
    /// `electra` or `bert`: decides the tensor names on export.
    #[serde(default = "default_model_type")]
    pub model_type: String,
    /// Number of WordPiece ids.
    pub vocab_size: usize,
    /// Width of the (shared) embeddings; `None` means `hidden_size` (BERT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_size: Option<usize>,
    /// Width of the encoder.
    pub hidden_size: usize,
    /// Number of transformer layers.
    pub num_hidden_layers: usize,
    /// Number of attention heads; must divide `hidden_size`.
    pub num_attention_heads: usize,
    /// Width of the feed-forward sublayer.
    pub intermediate_size: usize,
    /// Activation of the feed-forward sublayer and heads (`gelu` is the exact erf form).
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Dropout on embeddings and sublayer outputs.
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    /// Dropout on attention probabilities.
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
    /// Number of learned positions.
    #[serde(default = "default_positions")]
    pub max_position_embeddings: usize,
    /// Number of segment (token type) ids.
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    /// Standard deviation of the truncated-normal initialisation.
    #[serde(default = "default_init_range")]
    pub initializer_range: f64,
    /// LayerNorm epsilon.
    #[serde(default = "default_ln_eps")]
    pub layer_norm_eps: f64,
    /// Padding id.
    #[serde(default)]
    pub pad_token_id: usize,
    /// Only `absolute` is supported.
    #[serde(default = "default_position_type")]
    pub position_embedding_type: String,
    /// Every other field of the `config.json`, preserved for export.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn default_model_type() -> String {
    "electra".into()
}
fn default_act() -> String {
    "gelu".into()
}
fn default_dropout() -> f64 {
    0.1
}
fn default_positions() -> usize {
    512
}
fn default_type_vocab() -> usize {
    2
}
fn default_init_range() -> f64 {
    0.02
}
fn default_ln_eps() -> f64 {
    1e-12
}
fn default_position_type() -> String {
    "absolute".into()
}

/// The activation functions a config may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Exact GELU, `x * Φ(x)` (`gelu`).
    Gelu,
    /// Tanh-approximated GELU (`gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`).
    GeluTanh,
    /// `relu`.
    Relu,
    /// `silu` / `swish`.
    Silu,
}

impl Activation {
    /// Parses a HuggingFace `hidden_act` name.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "gelu" => Ok(Self::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(Self::GeluTanh),
            "relu" => Ok(Self::Relu),
            "silu" | "swish" => Ok(Self::Silu),
            other => Err(Error::InvalidConfig(format!(
                "hidden_act `{other}` is not supported (use gelu, gelu_new, relu or silu)"
            ))),
        }
    }
}

impl ElectraConfig {
    fn preset(embedding: usize, hidden: usize, layers: usize) -> Self {
        Self {
            model_type: default_model_type(),
            vocab_size: 30522,
            embedding_size: Some(embedding),
            hidden_size: hidden,
            num_hidden_layers: layers,
            num_attention_heads: (hidden / 64).max(1),
            intermediate_size: 4 * hidden,
            hidden_act: default_act(),
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            initializer_range: 0.02,
            layer_norm_eps: 1e-12,
            pad_token_id: 0,
            position_embedding_type: default_position_type(),
            extra: serde_json::Map::new(),
        }
    }

    /// ELECTRA-Small discriminator: 12 layers, hidden 256, 4 heads, FFN 1024, embeddings 128.
    pub fn small() -> Self {
        Self::preset(128, 256, 12)
    }

    /// ELECTRA-Base discriminator: 12 layers, hidden 768, 12 heads, FFN 3072, embeddings 768.
    pub fn base() -> Self {
        Self::preset(768, 768, 12)
    }

    /// ELECTRA-Large discriminator: 24 layers, hidden 1024, 16 heads, FFN 4096, embeddings 1024.
    pub fn large() -> Self {
        Self::preset(1024, 1024, 24)
    }

    /// A generator for this discriminator, `multiplier` times its width (paper: 1/4 for Small and
    /// Large, 1/3 for Base). Same depth, vocabulary, embeddings and positions;
    /// heads = max(1, hidden / 64) and FFN = 4 x hidden, as in the reference.
    pub fn generator(&self, multiplier: f64) -> Result<Self> {
        if !(multiplier > 0.0 && multiplier <= 1.0) {
            return Err(Error::InvalidConfig(format!(
                "generator size multiplier must be in (0, 1], got {multiplier}"
            )));
        }
        let hidden = ((self.hidden_size as f64) * multiplier).round() as usize;
        let mut g = self.clone();
        g.embedding_size = Some(self.embedding_size());
        g.hidden_size = hidden;
        g.num_attention_heads = (hidden / 64).max(1);
        g.intermediate_size = 4 * hidden;
        g.validate()?;
        Ok(g)
    }

    /// The embedding width (`embedding_size`, or `hidden_size` when absent).
    pub fn embedding_size(&self) -> usize {
        self.embedding_size.unwrap_or(self.hidden_size)
    }

    /// Whether the encoder starts with an `embeddings_project` linear layer.
    pub fn has_projection(&self) -> bool {
        self.embedding_size() != self.hidden_size
    }

    /// The parsed activation.
    pub fn activation(&self) -> Result<Activation> {
        Activation::parse(&self.hidden_act)
    }

    /// Whether tensors are named in BERT's scheme (`bert.`, `cls.predictions.`).
    pub fn is_bert(&self) -> bool {
        self.model_type == "bert"
    }

    /// Rejects configs no model can be built from.
    pub fn validate(&self) -> Result<()> {
        let sizes = [
            ("vocab_size", self.vocab_size),
            ("embedding_size", self.embedding_size()),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ];
        for (name, value) in sizes {
            if value == 0 {
                return Err(Error::InvalidConfig(format!("{name} must be positive")));
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(Error::InvalidConfig(format!(
                "hidden_size {} is not divisible by num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            )));
        }
        for (name, p) in [
            ("hidden_dropout_prob", self.hidden_dropout_prob),
            ("attention_probs_dropout_prob", self.attention_probs_dropout_prob),
        ] {
            if !(0.0..1.0).contains(&p) {
                return Err(Error::InvalidConfig(format!("{name} must be in [0, 1), got {p}")));
            }
        }
        if !(self.layer_norm_eps > 0.0) {
            return Err(Error::InvalidConfig("layer_norm_eps must be positive".into()));
        }
        if self.pad_token_id >= self.vocab_size {
            return Err(Error::InvalidConfig(format!(
                "pad_token_id {} is outside the vocabulary of {}",
                self.pad_token_id, self.vocab_size
            )));
        }
        if self.position_embedding_type != "absolute" {
            return Err(Error::InvalidConfig(format!(
                "position_embedding_type `{}` is not supported (only `absolute`)",
                self.position_embedding_type
            )));
        }
        if !matches!(self.model_type.as_str(), "electra" | "bert") {
            return Err(Error::InvalidConfig(format!(
                "model_type `{}` is not supported (electra or bert)",
                self.model_type
            )));
        }
        self.activation()?;
        Ok(())
    }

    /// Reads and validates a HuggingFace `config.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let config: Self = serde_json::from_str(&text)
            .map_err(|source| Error::Json { path: path.to_path_buf(), source })?;
        config.validate().map_err(|e| match e {
            Error::InvalidConfig(m) => Error::InvalidConfig(format!("{}: {m}", path.display())),
            other => other,
        })?;
        Ok(config)
    }

    /// The config as `config.json` text for the given HuggingFace architecture name.
    pub fn to_json(&self, architecture: &str) -> String {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            map.insert("architectures".into(), serde_json::json!([architecture]));
            if !self.is_bert() {
                map.insert("embedding_size".into(), self.embedding_size().into());
            }
            map.entry("torch_dtype").or_insert_with(|| "float32".into());
        }
        serde_json::to_string_pretty(&value).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_follow_the_paper_table() {
        let s = ElectraConfig::small();
        assert_eq!((s.embedding_size(), s.hidden_size, s.num_attention_heads), (128, 256, 4));
        assert_eq!(s.intermediate_size, 1024);
        let g = s.generator(0.25).unwrap();
        assert_eq!((g.hidden_size, g.num_attention_heads, g.intermediate_size), (64, 1, 256));
        assert_eq!(g.embedding_size(), 128);
        let b = ElectraConfig::base().generator(1.0 / 3.0).unwrap();
        assert_eq!((b.hidden_size, b.num_attention_heads), (256, 4));
        let l = ElectraConfig::large();
        assert_eq!((l.num_hidden_layers, l.num_attention_heads), (24, 16));
        assert_eq!(l.generator(0.25).unwrap().hidden_size, 256);
    }

    #[test]
    fn reads_a_huggingface_config_and_keeps_unknown_fields() {
        let json = r#"{"architectures":["ElectraForPreTraining"],"attention_probs_dropout_prob":0.1,
            "embedding_size":128,"hidden_act":"gelu","hidden_dropout_prob":0.1,"hidden_size":256,
            "initializer_range":0.02,"intermediate_size":1024,"layer_norm_eps":1e-12,
            "max_position_embeddings":512,"model_type":"electra","num_attention_heads":4,
            "num_hidden_layers":12,"pad_token_id":0,"type_vocab_size":2,"vocab_size":30522,
            "summary_type":"first"}"#;
        let c: ElectraConfig = serde_json::from_str(json).unwrap();
        c.validate().unwrap();
        assert_eq!(c.embedding_size(), 128);
        assert_eq!(c.extra["summary_type"], "first");
        let back: ElectraConfig =
            serde_json::from_str(&c.to_json("ElectraForPreTraining")).unwrap();
        assert_eq!(back.extra["architectures"][0], "ElectraForPreTraining");
        assert_eq!(back.hidden_size, 256);
    }

    #[test]
    fn bert_config_defaults_embedding_to_hidden() {
        let json = r#"{"model_type":"bert","vocab_size":99,"hidden_size":32,"num_hidden_layers":2,
            "num_attention_heads":2,"intermediate_size":64}"#;
        let c: ElectraConfig = serde_json::from_str(json).unwrap();
        c.validate().unwrap();
        assert_eq!(c.embedding_size(), 32);
        assert!(!c.has_projection());
    }

    #[test]
    fn rejects_invalid_configs() {
        let mut c = ElectraConfig::small();
        c.num_attention_heads = 3;
        assert!(c.validate().unwrap_err().to_string().contains("not divisible"));
        let mut c = ElectraConfig::small();
        c.hidden_size = 0;
        assert!(c.validate().unwrap_err().to_string().contains("hidden_size must be positive"));
        let mut c = ElectraConfig::small();
        c.hidden_act = "mish".into();
        assert!(c.validate().unwrap_err().to_string().contains("mish"));
        assert!(ElectraConfig::small().generator(0.0).is_err());
    }
}
