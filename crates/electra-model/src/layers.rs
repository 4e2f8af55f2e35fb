//! The building blocks: shared embeddings, the post-LN BERT encoder, and the two heads.
//!
//! Field names follow the HuggingFace checkpoint (`word_embeddings`, `LayerNorm` ->
//! `layer_norm`, `embeddings_project`), so that [`crate::hf`] needs no per-module remapping.

use burn::module::Param;
use burn::nn::{Dropout, DropoutConfig, Embedding, LayerNorm, Linear};
use burn::prelude::*;
use burn::tensor::{Distribution, activation};

use crate::precision::{linear, matmul};
use crate::config::{Activation, ElectraConfig};
use crate::params::{
    ParamSink, ParamSource, build_embedding, build_layer_norm, build_linear, build_vector, join,
    visit_embedding, visit_layer_norm, visit_linear, visit_vector,
};
use crate::Result;

/// Additive attention bias for padded keys: 0 for real tokens, a large negative value for padding.
const MASKED_SCORE: f32 = -1.0e9;

/// Applies the configured activation.
pub fn activate<B: Backend, const D: usize>(act: Activation, x: Tensor<B, D>) -> Tensor<B, D> {
    match act {
        Activation::Gelu => activation::gelu(x),
        Activation::GeluTanh => activation::gelu_approximate(x),
        Activation::Relu => activation::relu(x),
        Activation::Silu => activation::silu(x),
    }
}

/// Word, position and token-type embeddings followed by LayerNorm and dropout. In pre-training
/// this module is owned once and shared by the generator and the discriminator.
#[derive(Module, Debug)]
pub struct Embeddings<B: Backend> {
    /// `[vocab, embedding]`; also the generator's tied output projection.
    pub word_embeddings: Embedding<B>,
    /// `[max_positions, embedding]`.
    pub position_embeddings: Embedding<B>,
    /// `[type_vocab, embedding]`.
    pub token_type_embeddings: Embedding<B>,
    /// HF `LayerNorm`.
    pub layer_norm: LayerNorm<B>,
    /// Embedding dropout.
    pub dropout: Dropout,
}

impl<B: Backend> Embeddings<B> {
    pub(crate) fn build(
        cfg: &ElectraConfig,
        src: &mut impl ParamSource,
        prefix: &str,
        device: &B::Device,
    ) -> Result<Self> {
        let e = cfg.embedding_size();
        Ok(Self {
            word_embeddings: build_embedding(src, &join(prefix, "word_embeddings"), cfg.vocab_size, e, device)?,
            position_embeddings: build_embedding(
                src,
                &join(prefix, "position_embeddings"),
                cfg.max_position_embeddings,
                e,
                device,
            )?,
            token_type_embeddings: build_embedding(
                src,
                &join(prefix, "token_type_embeddings"),
                cfg.type_vocab_size,
                e,
                device,
            )?,
            layer_norm: build_layer_norm(src, &join(prefix, "LayerNorm"), e, cfg.layer_norm_eps, device)?,
            dropout: DropoutConfig::new(cfg.hidden_dropout_prob).init(),
        })
    }

    pub(crate) fn visit(&self, prefix: &str, sink: &mut impl ParamSink) {
        visit_embedding(&self.word_embeddings, &join(prefix, "word_embeddings"), sink);
        visit_embedding(&self.position_embeddings, &join(prefix, "position_embeddings"), sink);
        visit_embedding(&self.token_type_embeddings, &join(prefix, "token_type_embeddings"), sink);
        visit_layer_norm(&self.layer_norm, &join(prefix, "LayerNorm"), sink);
    }

    /// Embeds a batch.
    ///
    /// # Shapes
    /// - `input_ids`, `token_type_ids`: `[batch, seq]`, `seq <= max_position_embeddings`
    /// - output: `[batch, seq, embedding]`
    pub fn forward(&self, input_ids: Tensor<B, 2, Int>, token_type_ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let [_, seq] = input_ids.dims();
        let device = input_ids.device();
        let positions = Tensor::<B, 1, Int>::arange(0..seq as i64, &device).unsqueeze::<2>(); // [1, seq]
        let x = self.word_embeddings.forward(input_ids)
            + self.position_embeddings.forward(positions)
            + self.token_type_embeddings.forward(token_type_ids); // [batch, seq, embedding]
        dropout(&self.dropout, self.layer_norm.forward(x))
    }

    /// The word embedding table, `[vocab, embedding]`.
    pub fn word_table(&self) -> Tensor<B, 2> {
        self.word_embeddings.weight.val()
    }
}

/// Multi-head self-attention with its output projection, residual and LayerNorm (HF
/// `attention.self` + `attention.output`).
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    /// `attention.self.query`.
    pub query: Linear<B>,
    /// `attention.self.key`.
    pub key: Linear<B>,
    /// `attention.self.value`.
    pub value: Linear<B>,
    /// `attention.output.dense`.
    pub dense: Linear<B>,
    /// `attention.output.LayerNorm`.
    pub layer_norm: LayerNorm<B>,
    /// Dropout on attention probabilities.
    pub attention_dropout: Dropout,
    /// Dropout on the sublayer output.
    pub dropout: Dropout,
    /// Number of heads.
    pub num_heads: usize,
}

impl<B: Backend> Attention<B> {
    fn build(cfg: &ElectraConfig, src: &mut impl ParamSource, prefix: &str, device: &B::Device) -> Result<Self> {
        let h = cfg.hidden_size;
        Ok(Self {
            query: build_linear(src, &join(prefix, "self.query"), h, h, device)?,
            key: build_linear(src, &join(prefix, "self.key"), h, h, device)?,
            value: build_linear(src, &join(prefix, "self.value"), h, h, device)?,
            dense: build_linear(src, &join(prefix, "output.dense"), h, h, device)?,
            layer_norm: build_layer_norm(src, &join(prefix, "output.LayerNorm"), h, cfg.layer_norm_eps, device)?,
            attention_dropout: DropoutConfig::new(cfg.attention_probs_dropout_prob).init(),
            dropout: DropoutConfig::new(cfg.hidden_dropout_prob).init(),
            num_heads: cfg.num_attention_heads,
        })
    }

    fn visit(&self, prefix: &str, sink: &mut impl ParamSink) {
        visit_linear(&self.query, &join(prefix, "self.query"), sink);
        visit_linear(&self.key, &join(prefix, "self.key"), sink);
        visit_linear(&self.value, &join(prefix, "self.value"), sink);
        visit_linear(&self.dense, &join(prefix, "output.dense"), sink);
        visit_layer_norm(&self.layer_norm, &join(prefix, "output.LayerNorm"), sink);
    }

    /// `LN(x + dropout(dense(attention(x))))`.
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, hidden]`
    /// - `mask_bias`: `[batch, 1, 1, seq]`, 0 for real keys and a large negative value for padding
    /// - output: `[batch, seq, hidden]`
    pub fn forward(&self, x: Tensor<B, 3>, mask_bias: Tensor<B, 4>) -> Tensor<B, 3> {
        let [batch, seq, hidden] = x.dims();
        self.forward_flat(x.reshape([batch * seq, hidden]), batch, Some(mask_bias)).reshape([batch, seq, hidden])
    }

    /// [`Self::forward`] on the tokens as rows: every projection is one 2-D matrix multiply, so
    /// its weight gradient is one product over all tokens instead of one per sequence plus a sum.
    /// The `1/sqrt(head_dim)` scale is applied to the queries (`[tokens, hidden]`) rather than to
    /// the scores (`[batch, heads, seq, seq]`, twice as large at seq 128 with 4 heads of 64); for
    /// power-of-two head sizes the two are bit-identical. `None`: no padded key anywhere.
    ///
    /// # Shapes
    /// - `x`: `[batch * seq, hidden]`, `mask_bias`: broadcastable to `[batch, heads, seq, seq]`
    /// - output: `[batch * seq, hidden]`
    fn forward_flat(&self, x: Tensor<B, 2>, batch: usize, mask_bias: Option<Tensor<B, 4>>) -> Tensor<B, 2> {
        let [tokens, hidden] = x.dims();
        let seq = tokens / batch.max(1);
        let heads = self.num_heads;
        let head_dim = hidden / heads;
        // [batch, heads, seq, head_dim]; with one head a free reshape, otherwise a strided view
        // (burn's flex matmul reads strided operands without copying them).
        let split = |t: Tensor<B, 2>| {
            if heads == 1 {
                t.reshape([batch, 1, seq, head_dim])
            } else {
                t.reshape([batch, seq, heads, head_dim]).swap_dims(1, 2)
            }
        };
        let q = split(linear(&self.query, x.clone()).mul_scalar(1.0 / (head_dim as f64).sqrt()));
        let k = split(linear(&self.key, x.clone()));
        let v = split(linear(&self.value, x.clone()));
        let scores = matmul(q, k.swap_dims(2, 3)); // [batch, heads, seq, seq]
        let scores = match mask_bias {
            Some(bias) => scores + bias,
            None => scores,
        };
        let probs = dropout(&self.attention_dropout, activation::softmax(scores, 3));
        let context = matmul(probs, v); // [batch, heads, seq, head_dim]
        let context = if heads == 1 { context } else { context.swap_dims(1, 2) }.reshape([tokens, hidden]);
        self.layer_norm.forward(x + dropout(&self.dropout, linear(&self.dense, context)))
    }
}

/// `Dropout::forward` with the `1 / keep` scale folded into the mask: `x * (mask / keep)`
/// instead of `(x * mask) / keep`, bit-identical (the mask is 0 or 1) with the same random draws,
/// but one tracked operation instead of two (one pass fewer forward and backward). Identity at
/// inference (no autodiff) and for `prob = 0`, as `Dropout`. Inside
/// [`crate::parallel::with_host_rng`] the mask comes from that host stream (a batch chunk's
/// own), otherwise from the backend's generator.
pub fn dropout<B: Backend, const D: usize>(d: &Dropout, x: Tensor<B, D>) -> Tensor<B, D> {
    if d.prob == 0.0 || !B::ad_enabled(&x.device()) {
        return x;
    }
    let keep = 1.0 - d.prob;
    let mask = match crate::parallel::host_dropout_mask(x.shape().num_elements(), keep) {
        // Inside a batch chunk (`parallel::with_host_rng`): the chunk's own host stream.
        Some(host) => Tensor::from_data(TensorData::new(host, x.shape()), &x.device()),
        None => x.random_like(Distribution::Bernoulli(keep)).mul_scalar(1.0 / keep),
    };
    x * mask
}

/// One post-LN transformer layer: attention, then `LN(x + dropout(W2 act(W1 x)))`.
#[derive(Module, Debug)]
pub struct Layer<B: Backend> {
    /// The attention sublayer.
    pub attention: Attention<B>,
    /// `intermediate.dense`: hidden -> FFN.
    pub intermediate: Linear<B>,
    /// `output.dense`: FFN -> hidden.
    pub output: Linear<B>,
    /// `output.LayerNorm`.
    pub layer_norm: LayerNorm<B>,
    /// Dropout on the FFN output.
    pub dropout: Dropout,
    /// The FFN activation.
    #[module(skip)]
    pub activation: Activation,
}

impl<B: Backend> Layer<B> {
    fn build(cfg: &ElectraConfig, src: &mut impl ParamSource, prefix: &str, device: &B::Device) -> Result<Self> {
        let (h, f) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Self {
            attention: Attention::build(cfg, src, &join(prefix, "attention"), device)?,
            intermediate: build_linear(src, &join(prefix, "intermediate.dense"), h, f, device)?,
            output: build_linear(src, &join(prefix, "output.dense"), f, h, device)?,
            layer_norm: build_layer_norm(src, &join(prefix, "output.LayerNorm"), h, cfg.layer_norm_eps, device)?,
            dropout: DropoutConfig::new(cfg.hidden_dropout_prob).init(),
            activation: cfg.activation()?,
        })
    }

    fn visit(&self, prefix: &str, sink: &mut impl ParamSink) {
        self.attention.visit(&join(prefix, "attention"), sink);
        visit_linear(&self.intermediate, &join(prefix, "intermediate.dense"), sink);
        visit_linear(&self.output, &join(prefix, "output.dense"), sink);
        visit_layer_norm(&self.layer_norm, &join(prefix, "output.LayerNorm"), sink);
    }

    /// # Shapes
    /// - `x`: `[batch, seq, hidden]`, `mask_bias`: `[batch, 1, 1, seq]`
    /// - output: `[batch, seq, hidden]`
    pub fn forward(&self, x: Tensor<B, 3>, mask_bias: Tensor<B, 4>) -> Tensor<B, 3> {
        let [batch, seq, hidden] = x.dims();
        self.forward_flat(x.reshape([batch * seq, hidden]), batch, Some(mask_bias)).reshape([batch, seq, hidden])
    }

    /// [`Self::forward`] on `[batch * seq, hidden]` rows (see [`Attention::forward_flat`]).
    fn forward_flat(&self, x: Tensor<B, 2>, batch: usize, mask_bias: Option<Tensor<B, 4>>) -> Tensor<B, 2> {
        let x = self.attention.forward_flat(x, batch, mask_bias);
        let h = activate(self.activation, linear(&self.intermediate, x.clone())); // [batch * seq, ffn]
        self.layer_norm.forward(x + dropout(&self.dropout, linear(&self.output, h)))
    }
}

/// Everything of a network after the (possibly shared) embeddings: the optional
/// `embeddings_project` and the stack of layers (HF `encoder.layer.{i}`).
#[derive(Module, Debug)]
pub struct Encoder<B: Backend> {
    /// `embeddings_project`: embedding -> hidden, present when they differ.
    pub embeddings_project: Option<Linear<B>>,
    /// `encoder.layer`.
    pub layers: Vec<Layer<B>>,
}

impl<B: Backend> Encoder<B> {
    /// `prefix` is the model prefix (`electra`, `bert` or empty).
    pub(crate) fn build(
        cfg: &ElectraConfig,
        src: &mut impl ParamSource,
        prefix: &str,
        device: &B::Device,
    ) -> Result<Self> {
        let embeddings_project = if cfg.has_projection() {
            Some(build_linear(
                src,
                &join(prefix, "embeddings_project"),
                cfg.embedding_size(),
                cfg.hidden_size,
                device,
            )?)
        } else {
            None
        };
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Layer::build(cfg, src, &join(prefix, &format!("encoder.layer.{i}")), device))
            .collect::<Result<_>>()?;
        Ok(Self { embeddings_project, layers })
    }

    pub(crate) fn visit(&self, prefix: &str, sink: &mut impl ParamSink) {
        if let Some(p) = &self.embeddings_project {
            visit_linear(p, &join(prefix, "embeddings_project"), sink);
        }
        for (i, layer) in self.layers.iter().enumerate() {
            layer.visit(&join(prefix, &format!("encoder.layer.{i}")), sink);
        }
    }

    /// Runs the encoder on embedded tokens.
    ///
    /// # Shapes
    /// - `embedded`: `[batch, seq, embedding]`
    /// - `attention_mask`: `[batch, seq]`, 1 for real tokens and 0 for padding
    /// - output: `[batch, seq, hidden]`
    ///
    /// Whether the batch has padding is read from the device (one read, which waits for the
    /// device); [`Encoder::forward_padded`] takes it from the caller, who usually has the host
    /// mask at hand.
    pub fn forward(&self, embedded: Tensor<B, 3>, attention_mask: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let [batch, seq, _] = embedded.dims();
        let padded = batch * seq > 0 && attention_mask.clone().min().into_scalar().elem::<i64>() == 0;
        self.forward_padded(embedded, attention_mask, padded)
    }

    /// [`Encoder::forward`] told whether `attention_mask` has a 0 (`padded`), so that the pass
    /// reads nothing back from the device. A `false` for a padded batch lets every token attend
    /// to padding; a `true` for an unpadded one only costs an addition of zeros per layer.
    pub fn forward_padded(&self, embedded: Tensor<B, 3>, attention_mask: Tensor<B, 2, Int>, padded: bool) -> Tensor<B, 3> {
        let [batch, seq, embedding] = embedded.dims();
        let embedded = embedded.reshape([batch * seq, embedding]);
        let mut x = match &self.embeddings_project {
            Some(p) => linear(p, embedded),
            None => embedded,
        }; // [batch * seq, hidden]
        // Without padding the bias is all zeros and is skipped (as transformers does for SDPA
        // attention). With padding it is materialised once at the scores' full shape, so that
        // every layer adds it with a plain same-shape addition: burn-flex runs this broadcast
        // pattern (`[batch, 1, 1, seq]` onto `[batch, heads, seq, seq]`) element by element.
        let heads = self.layers.first().map_or(1, |l| l.attention.num_heads);
        let mask_bias = padded.then(|| mask_bias(attention_mask).repeat_dim(2, seq).repeat_dim(1, heads));
        for layer in &self.layers {
            x = layer.forward_flat(x, batch, mask_bias.clone());
        }
        let hidden = x.dims()[1];
        x.reshape([batch, seq, hidden])
    }
}

/// `[batch, seq]` 1/0 mask -> `[batch, 1, 1, seq]` additive bias.
fn mask_bias<B: Backend>(attention_mask: Tensor<B, 2, Int>) -> Tensor<B, 4> {
    let [batch, seq] = attention_mask.dims();
    (attention_mask.float().neg() + 1.0)
        .mul_scalar(MASKED_SCORE)
        .reshape([batch, 1, 1, seq])
}

/// The discriminator's replaced-token-detection head: dense -> activation -> dense to one logit
/// (HF `discriminator_predictions`).
#[derive(Module, Debug)]
pub struct DiscriminatorHead<B: Backend> {
    /// `discriminator_predictions.dense`: hidden -> hidden.
    pub dense: Linear<B>,
    /// `discriminator_predictions.dense_prediction`: hidden -> 1.
    pub dense_prediction: Linear<B>,
    /// The activation.
    #[module(skip)]
    pub activation: Activation,
}

impl<B: Backend> DiscriminatorHead<B> {
    pub(crate) fn build(cfg: &ElectraConfig, src: &mut impl ParamSource, device: &B::Device) -> Result<Self> {
        let h = cfg.hidden_size;
        Ok(Self {
            dense: build_linear(src, "discriminator_predictions.dense", h, h, device)?,
            dense_prediction: build_linear(src, "discriminator_predictions.dense_prediction", h, 1, device)?,
            activation: cfg.activation()?,
        })
    }

    pub(crate) fn visit(&self, sink: &mut impl ParamSink) {
        visit_linear(&self.dense, "discriminator_predictions.dense", sink);
        visit_linear(&self.dense_prediction, "discriminator_predictions.dense_prediction", sink);
    }

    /// # Shapes
    /// - `hidden`: `[batch, seq, hidden]`
    /// - output: `[batch, seq]` logits of "replaced"
    pub fn forward(&self, hidden: Tensor<B, 3>) -> Tensor<B, 2> {
        let [batch, seq, width] = hidden.dims();
        let h = activate(self.activation, linear(&self.dense, hidden.reshape([batch * seq, width])));
        linear(&self.dense_prediction, h).reshape([batch, seq])
    }
}

/// Names of the generator head's tensors in the two checkpoint families.
pub(crate) struct GeneratorNames {
    pub dense: &'static str,
    pub layer_norm: &'static str,
    pub bias: &'static str,
}

pub(crate) const ELECTRA_GENERATOR_NAMES: GeneratorNames = GeneratorNames {
    dense: "generator_predictions.dense",
    layer_norm: "generator_predictions.LayerNorm",
    bias: "generator_lm_head.bias",
};

pub(crate) const BERT_GENERATOR_NAMES: GeneratorNames = GeneratorNames {
    dense: "cls.predictions.transform.dense",
    layer_norm: "cls.predictions.transform.LayerNorm",
    bias: "cls.predictions.bias",
};

/// The generator's masked-LM head: dense (hidden -> embedding) -> activation -> LayerNorm ->
/// matmul with the shared word embeddings (tied, read in `forward`) + output bias.
/// (HF `generator_predictions` + `generator_lm_head`, or BERT's `cls.predictions`.)
#[derive(Module, Debug)]
pub struct GeneratorHead<B: Backend> {
    /// hidden -> embedding.
    pub dense: Linear<B>,
    /// LayerNorm over the embedding width.
    pub layer_norm: LayerNorm<B>,
    /// Output bias, `[vocab]`.
    pub bias: Param<Tensor<B, 1>>,
    /// The activation.
    #[module(skip)]
    pub activation: Activation,
}

impl<B: Backend> GeneratorHead<B> {
    pub(crate) fn build(cfg: &ElectraConfig, src: &mut impl ParamSource, device: &B::Device) -> Result<Self> {
        let names = if cfg.is_bert() { BERT_GENERATOR_NAMES } else { ELECTRA_GENERATOR_NAMES };
        let e = cfg.embedding_size();
        Ok(Self {
            dense: build_linear(src, names.dense, cfg.hidden_size, e, device)?,
            layer_norm: build_layer_norm(src, names.layer_norm, e, cfg.layer_norm_eps, device)?,
            bias: build_vector(src, names.bias, cfg.vocab_size, device)?,
            // HF's ElectraGeneratorPredictions hard-codes exact GELU; BERT's transform uses hidden_act.
            activation: if cfg.is_bert() { cfg.activation()? } else { Activation::Gelu },
        })
    }

    pub(crate) fn visit(&self, cfg: &ElectraConfig, sink: &mut impl ParamSink) {
        let names = if cfg.is_bert() { BERT_GENERATOR_NAMES } else { ELECTRA_GENERATOR_NAMES };
        visit_linear(&self.dense, names.dense, sink);
        visit_layer_norm(&self.layer_norm, names.layer_norm, sink);
        visit_vector(&self.bias, names.bias, sink);
    }

    /// The transformed hidden states before the vocabulary projection.
    ///
    /// # Shapes
    /// - `hidden`: `[..., hidden]`, output `[..., embedding]`
    pub fn transform<const D: usize>(&self, hidden: Tensor<B, D>) -> Tensor<B, D> {
        self.layer_norm.forward(activate(self.activation, linear(&self.dense, hidden)))
    }

    /// Vocabulary logits for a flat set of positions.
    ///
    /// # Shapes
    /// - `hidden`: `[n, hidden]`, `word_table`: `[vocab, embedding]`
    /// - output: `[n, vocab]`
    pub fn logits_flat(&self, hidden: Tensor<B, 2>, word_table: Tensor<B, 2>) -> Tensor<B, 2> {
        matmul(self.transform(hidden), word_table.transpose()) + self.bias.val().unsqueeze::<2>()
    }

    /// Vocabulary logits at every position.
    ///
    /// # Shapes
    /// - `hidden`: `[batch, seq, hidden]`, `word_table`: `[vocab, embedding]`
    /// - output: `[batch, seq, vocab]`
    pub fn forward(&self, hidden: Tensor<B, 3>, word_table: Tensor<B, 2>) -> Tensor<B, 3> {
        let [batch, seq, h] = hidden.dims();
        let vocab = word_table.dims()[0];
        self.logits_flat(hidden.reshape([batch * seq, h]), word_table)
            .reshape([batch, seq, vocab])
    }
}

/// BERT's pooler (`pooler.dense`, tanh over `[CLS]`). Kept only so that a `BertModel` imports and
/// exports without losing tensors; ELECTRA has no pooler and fine-tuning does not use it.
#[derive(Module, Debug)]
pub struct Pooler<B: Backend> {
    /// `pooler.dense`.
    pub dense: Linear<B>,
}

impl<B: Backend> Pooler<B> {
    pub(crate) fn build(cfg: &ElectraConfig, src: &mut impl ParamSource, prefix: &str, device: &B::Device) -> Result<Self> {
        let h = cfg.hidden_size;
        Ok(Self { dense: build_linear(src, &join(prefix, "pooler.dense"), h, h, device)? })
    }

    pub(crate) fn visit(&self, prefix: &str, sink: &mut impl ParamSink) {
        visit_linear(&self.dense, &join(prefix, "pooler.dense"), sink);
    }
}
