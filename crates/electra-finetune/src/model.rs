//! Task models: the discriminator's encoder with a fine-tuning head, in HuggingFace layout.
//!
//! | head                     | forward                                              | HuggingFace class / tensors |
//! |--------------------------|------------------------------------------------------|-----------------------------|
//! | sequence, `linear`       | `[CLS]` -> dropout -> linear (the reference)          | exported exactly as `ElectraForSequenceClassification` (see [`TaskModel::export_tensors`]) |
//! | sequence, `hf`           | `[CLS]` -> dropout -> dense -> GELU -> dropout -> linear | `ElectraForSequenceClassification`: `classifier.dense`, `classifier.out_proj` |
//! | regression               | as sequence, one output, squared error               | the same, `num_labels = 1`, `problem_type = "regression"` |
//! | token                    | dropout -> per-token linear                           | `ElectraForTokenClassification`: `classifier` |
//! | span                     | per-token linear to (start, end)                      | `ElectraForQuestionAnswering`: `qa_outputs` |
//!
//! The reference's sequence head is a single linear layer on the `[CLS]` vector; HuggingFace's
//! `ElectraClassificationHead` adds a hidden dense layer with GELU. Both are available; the
//! reference's is the default for fresh heads, and a checkpoint with an HF head loads as one.

use std::path::Path;

use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::prelude::*;
use burn::tensor::TensorData;
use burn::tensor::activation;
use electra_model::hf::{self, TensorCollector, TensorMap};
use electra_model::input::to_host_f32;
use electra_model::layers::dropout;
use electra_model::precision::linear;
use electra_model::params::{Kind, ParamSink, ParamSource, RandomInit, build_linear, visit_linear};
use electra_model::{ElectraConfig, ElectraModel};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The task a head solves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum HeadKind {
    /// One label per sequence, from `labels`.
    Sequence {
        /// Label names, in output order.
        labels: Vec<String>,
    },
    /// One real value per sequence.
    Regression,
    /// One label per token (first sub-word of each word), from `labels`.
    Token {
        /// Label names, in output order.
        labels: Vec<String>,
    },
    /// Start and end logits per token (extractive QA).
    Span,
}

impl HeadKind {
    /// Number of outputs per sequence or token.
    pub fn outputs(&self) -> usize {
        match self {
            Self::Sequence { labels } | Self::Token { labels } => labels.len(),
            Self::Regression => 1,
            Self::Span => 2,
        }
    }

    /// The HuggingFace architecture this head is exported as.
    pub fn architecture(&self) -> &'static str {
        match self {
            Self::Sequence { .. } | Self::Regression => "ElectraForSequenceClassification",
            Self::Token { .. } => "ElectraForTokenClassification",
            Self::Span => "ElectraForQuestionAnswering",
        }
    }

    fn labels(&self) -> Option<&[String]> {
        match self {
            Self::Sequence { labels } | Self::Token { labels } => Some(labels),
            _ => None,
        }
    }
}

/// The form of a sequence-level head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeadStyle {
    /// `[CLS]` -> dropout -> linear, as the reference.
    #[default]
    Linear,
    /// HuggingFace's `ElectraClassificationHead`: dropout -> dense -> GELU -> dropout -> linear.
    Hf,
}

/// The encoder plus one task head.
#[derive(Module, Debug)]
pub struct TaskModel<B: Backend> {
    /// The pre-trained encoder (`electra.*`).
    pub electra: ElectraModel<B>,
    /// The hidden dense layer of an HF-style sequence head (`classifier.dense`).
    pub dense: Option<Linear<B>>,
    /// The output layer (`classifier.out_proj`, `classifier` or `qa_outputs`).
    pub output: Linear<B>,
    /// Dropout before the output layer(s).
    pub dropout: Dropout,
    /// What the head predicts.
    #[module(skip)]
    pub kind: HeadKind,
}

/// The output tensor's name prefix for a head.
fn output_name(kind: &HeadKind, style: HeadStyle) -> &'static str {
    match (kind, style) {
        (HeadKind::Sequence { .. } | HeadKind::Regression, HeadStyle::Hf) => "classifier.out_proj",
        (HeadKind::Sequence { .. } | HeadKind::Regression, HeadStyle::Linear) => "classifier",
        (HeadKind::Token { .. }, _) => "classifier",
        (HeadKind::Span, _) => "qa_outputs",
    }
}

fn classifier_dropout(config: &ElectraConfig) -> f64 {
    config.extra.get("classifier_dropout").and_then(serde_json::Value::as_f64).unwrap_or(config.hidden_dropout_prob)
}

impl<B: Backend> TaskModel<B> {
    fn build_head(
        electra: ElectraModel<B>,
        kind: HeadKind,
        style: HeadStyle,
        src: &mut impl ParamSource,
        device: &B::Device,
    ) -> Result<Self> {
        let h = electra.config.hidden_size;
        let style = if matches!(kind, HeadKind::Token { .. } | HeadKind::Span) { HeadStyle::Linear } else { style };
        let dense = match style {
            HeadStyle::Hf => Some(build_linear(src, "classifier.dense", h, h, device)?),
            HeadStyle::Linear => None,
        };
        let output = build_linear(src, output_name(&kind, style), h, kind.outputs(), device)?;
        let dropout = DropoutConfig::new(classifier_dropout(&electra.config)).init();
        Ok(Self { electra, dense, output, dropout, kind })
    }

    /// A new head (BERT init with `seed`) on an encoder.
    pub fn new(electra: ElectraModel<B>, kind: HeadKind, style: HeadStyle, seed: u64, device: &B::Device) -> Result<Self> {
        if kind.outputs() == 0 {
            return Err(Error::Invalid("a classification head needs at least one label".into()));
        }
        let mut src = RandomInit::new(electra.config.initializer_range, seed);
        Self::build_head(electra, kind, style, &mut src, device)
    }

    /// Loads the encoder of any ELECTRA or BERT model directory (a pre-training discriminator, a
    /// bare encoder, a fine-tuned model) and puts a fresh head on it.
    pub fn from_pretrained(
        dir: &Path,
        kind: HeadKind,
        style: HeadStyle,
        seed: u64,
        device: &B::Device,
    ) -> Result<Self> {
        let electra = hf::load_encoder::<B>(dir, device)?;
        Self::new(electra, kind, style, seed, device)
    }

    /// Loads a fine-tuned model saved by [`TaskModel::save`] or by `transformers`
    /// (`ElectraForSequenceClassification`, `ElectraForTokenClassification`,
    /// `ElectraForQuestionAnswering`), taking the labels from `config.json`'s `id2label`.
    pub fn load(dir: &Path, device: &B::Device) -> Result<Self> {
        let config = hf::load_config(dir)?;
        let arch = config
            .extra
            .get("architectures")
            .and_then(|a| a.get(0))
            .and_then(|a| a.as_str())
            .unwrap_or_default()
            .to_string();
        let labels = labels_from_config(&config);
        let regression = config.extra.get("problem_type").and_then(|p| p.as_str()) == Some("regression")
            || (arch == "ElectraForSequenceClassification" && labels.len() == 1);
        let kind = match arch.as_str() {
            "ElectraForSequenceClassification" if regression => HeadKind::Regression,
            "ElectraForSequenceClassification" => HeadKind::Sequence { labels },
            "ElectraForTokenClassification" => HeadKind::Token { labels },
            "ElectraForQuestionAnswering" => HeadKind::Span,
            other => {
                return Err(Error::Invalid(format!(
                    "{}: architecture `{other}` is not a fine-tuned task model (expected ElectraForSequenceClassification, \
                     ElectraForTokenClassification or ElectraForQuestionAnswering)",
                    dir.join(hf::CONFIG_FILE).display()
                )));
            }
        };
        let mut map = TensorMap::read_dir(dir)?;
        let prefix = map.prefix().to_string();
        let electra = ElectraModel::build(&config, &mut map, &prefix, device)?;
        let style = if map.contains("classifier.dense.weight") { HeadStyle::Hf } else { HeadStyle::Linear };
        let model = Self::build_head(electra, kind, style, &mut map, device)?;
        map.report_unused("the task model");
        Ok(model)
    }

    /// Sets every dropout probability of the encoder and the head to `p` (and records it in the
    /// config that [`TaskModel::save`] writes). Pre-training runs may have used no dropout; the
    /// paper fine-tunes with 0.1.
    pub fn with_dropout(mut self, p: f64) -> Self {
        let d = || DropoutConfig::new(p).init();
        self.dropout = d();
        self.electra.embeddings.dropout = d();
        for layer in &mut self.electra.encoder.layers {
            layer.attention.attention_dropout = d();
            layer.attention.dropout = d();
            layer.dropout = d();
        }
        self.electra.config.hidden_dropout_prob = p;
        self.electra.config.attention_probs_dropout_prob = p;
        self.electra.config.extra.remove("classifier_dropout");
        self
    }

    /// The head's form.
    pub fn style(&self) -> HeadStyle {
        if self.dense.is_some() { HeadStyle::Hf } else { HeadStyle::Linear }
    }

    /// Final hidden states of the encoder.
    pub fn hidden(
        &self,
        input_ids: Tensor<B, 2, Int>,
        token_type_ids: Tensor<B, 2, Int>,
        attention_mask: Tensor<B, 2, Int>,
    ) -> Tensor<B, 3> {
        self.electra.forward(input_ids, token_type_ids, attention_mask)
    }

    /// Sequence-level outputs `[batch, outputs]` (sequence and regression heads).
    pub fn forward_sequence(
        &self,
        input_ids: Tensor<B, 2, Int>,
        token_type_ids: Tensor<B, 2, Int>,
        attention_mask: Tensor<B, 2, Int>,
    ) -> Tensor<B, 2> {
        let hidden = self.hidden(input_ids, token_type_ids, attention_mask);
        let [b, _, h] = hidden.dims();
        let mut x = hidden.slice([0..b, 0..1, 0..h]).reshape([b, h]);
        x = dropout(&self.dropout, x);
        if let Some(dense) = &self.dense {
            x = dropout(&self.dropout, activation::gelu(linear(dense, x)));
        }
        linear(&self.output, x)
    }

    /// Token-level outputs `[batch, seq, outputs]` (token heads: label logits; span heads:
    /// start and end logits).
    pub fn forward_tokens(
        &self,
        input_ids: Tensor<B, 2, Int>,
        token_type_ids: Tensor<B, 2, Int>,
        attention_mask: Tensor<B, 2, Int>,
    ) -> Tensor<B, 3> {
        let hidden = self.hidden(input_ids, token_type_ids, attention_mask);
        let x = if matches!(self.kind, HeadKind::Span) { hidden } else { dropout(&self.dropout, hidden) };
        linear(&self.output, x)
    }

    /// The tensors as HuggingFace writes this architecture. A reference (`linear`) sequence head
    /// has no HF counterpart, so it is written as an exactly equivalent `ElectraClassificationHead`:
    /// with `z = W x + b` the head's logits, the dense layer computes `(z_0, -z_0, z_1, -z_1, ...,
    /// 0, ...)` and the output layer `gelu(z_j) - gelu(-z_j) = z_j` (exact GELU is
    /// `t Φ(t)`, so `gelu(t) - gelu(-t) = t (Φ(t) + Φ(-t)) = t`). This needs
    /// `hidden_size >= 2 * outputs`.
    pub fn export_tensors(&self) -> Result<TensorCollector> {
        let mut c = TensorCollector::default();
        self.electra.visit("electra", &mut c);
        let is_sequence = matches!(self.kind, HeadKind::Sequence { .. } | HeadKind::Regression);
        match (&self.dense, is_sequence) {
            (Some(dense), _) => {
                visit_linear(dense, "classifier.dense", &mut c);
                visit_linear(&self.output, "classifier.out_proj", &mut c);
            }
            (None, true) => self.put_linear_as_hf(&mut c)?,
            (None, false) => visit_linear(&self.output, output_name(&self.kind, HeadStyle::Linear), &mut c),
        }
        Ok(c)
    }

    fn put_linear_as_hf(&self, c: &mut TensorCollector) -> Result<()> {
        let h = self.electra.config.hidden_size;
        let n = self.kind.outputs();
        if h < 2 * n {
            return Err(Error::Invalid(format!(
                "cannot export a linear head with {n} outputs as ElectraForSequenceClassification with hidden size {h} (needs >= {})",
                2 * n
            )));
        }
        // burn layout: weight [in, out].
        let w = to_host_f32(self.output.weight.val());
        let b = self.output.bias.as_ref().map(|b| to_host_f32(b.val())).unwrap_or_else(|| vec![0.0; n]);
        let mut dense_w = vec![0.0f32; h * h];
        let mut dense_b = vec![0.0f32; h];
        let mut out_w = vec![0.0f32; h * n];
        for j in 0..n {
            for i in 0..h {
                dense_w[i * h + 2 * j] = w[i * n + j];
                dense_w[i * h + 2 * j + 1] = -w[i * n + j];
            }
            dense_b[2 * j] = b[j];
            dense_b[2 * j + 1] = -b[j];
            out_w[(2 * j) * n + j] = 1.0;
            out_w[(2 * j + 1) * n + j] = -1.0;
        }
        c.put("classifier.dense.weight", TensorData::new(dense_w, [h, h]), Kind::Dense);
        c.put("classifier.dense.bias", TensorData::new(dense_b, [h]), Kind::Bias);
        c.put("classifier.out_proj.weight", TensorData::new(out_w, [h, n]), Kind::Dense);
        c.put("classifier.out_proj.bias", TensorData::new(vec![0.0f32; n], [n]), Kind::Bias);
        Ok(())
    }

    /// The `config.json` of the exported model: the encoder's config plus `num_labels`,
    /// `id2label`/`label2id` and, for regression, `problem_type`.
    pub fn export_config(&self) -> ElectraConfig {
        let mut config = self.electra.config.clone();
        let n = self.kind.outputs();
        let labels: Vec<String> = match self.kind.labels() {
            Some(l) => l.to_vec(),
            None => (0..n).map(|i| format!("LABEL_{i}")).collect(),
        };
        let id2label: serde_json::Map<String, serde_json::Value> =
            labels.iter().enumerate().map(|(i, l)| (i.to_string(), l.clone().into())).collect();
        let label2id: serde_json::Map<String, serde_json::Value> =
            labels.iter().enumerate().map(|(i, l)| (l.clone(), i.into())).collect();
        config.extra.insert("num_labels".into(), n.into());
        config.extra.insert("id2label".into(), id2label.into());
        config.extra.insert("label2id".into(), label2id.into());
        match self.kind {
            HeadKind::Regression => {
                config.extra.insert("problem_type".into(), "regression".into());
            }
            HeadKind::Sequence { .. } => {
                config.extra.insert("problem_type".into(), "single_label_classification".into());
            }
            _ => {
                config.extra.remove("problem_type");
            }
        }
        config.extra.remove("architectures");
        config
    }

    /// Writes the model as a HuggingFace directory (`config.json`, `model.safetensors`, written
    /// atomically).
    pub fn save(&self, dir: &Path) -> Result<()> {
        hf::save_dir(dir, &self.export_config(), self.kind.architecture(), &self.export_tensors()?)?;
        Ok(())
    }
}


/// Labels from `id2label` in id order (`LABEL_i` when absent).
fn labels_from_config(config: &ElectraConfig) -> Vec<String> {
    let Some(map) = config.extra.get("id2label").and_then(|m| m.as_object()) else {
        let n = config.extra.get("num_labels").and_then(serde_json::Value::as_u64).unwrap_or(2) as usize;
        return (0..n).map(|i| format!("LABEL_{i}")).collect();
    };
    let mut pairs: Vec<(usize, String)> = map
        .iter()
        .filter_map(|(k, v)| Some((k.parse().ok()?, v.as_str()?.to_string())))
        .collect();
    pairs.sort();
    pairs.into_iter().map(|(_, l)| l).collect()
}
