//! Tiny models and features for the unit tests.

use burn::prelude::*;
use electra_model::{ElectraConfig, ElectraModel};

use crate::model::{HeadKind, HeadStyle, TaskModel};
use crate::run::{Feature, Target};

/// A 1-layer, hidden-8 encoder config; `projection` gives it a smaller embedding (4) and so an
/// `embeddings_project` layer.
pub(crate) fn tiny_config(projection: bool) -> ElectraConfig {
    let mut c = ElectraConfig::small();
    c.vocab_size = 50;
    c.embedding_size = Some(if projection { 4 } else { 8 });
    c.hidden_size = 8;
    c.num_hidden_layers = 1;
    c.num_attention_heads = 2;
    c.intermediate_size = 16;
    c.max_position_embeddings = 16;
    c
}

/// A task model with a tiny encoder (seed 3) and a fresh head (seed 4).
pub(crate) fn tiny_model<B: Backend>(kind: HeadKind, style: HeadStyle, projection: bool) -> TaskModel<B> {
    let device = Default::default();
    let encoder = ElectraModel::init(&tiny_config(projection), 3, &device).unwrap_or_else(|e| panic!("{e}"));
    TaskModel::new(encoder, kind, style, 4, &device).unwrap_or_else(|e| panic!("{e}"))
}

/// Two labels, `a` and `b`.
pub(crate) fn two() -> Vec<String> {
    vec!["a".to_string(), "b".to_string()]
}

/// The four head kinds (two labels where labels apply).
pub(crate) fn kinds() -> [HeadKind; 4] {
    [HeadKind::Sequence { labels: two() }, HeadKind::Regression, HeadKind::Token { labels: two() }, HeadKind::Span]
}

/// Five examples of different lengths (so chunks pad differently) with targets of `kind`.
pub(crate) fn features(kind: &HeadKind) -> Vec<Feature> {
    (0..5)
        .map(|r| {
            let len = 4 + r;
            let input_ids: Vec<u32> = (0..len).map(|j| ((r * 7 + j * 3) % 45 + 5) as u32).collect();
            let target = match kind {
                HeadKind::Sequence { .. } => Target::Class(r % 2),
                HeadKind::Regression => Target::Value(r as f32 * 0.5 - 1.0),
                HeadKind::Token { .. } => Target::Tokens((0..len).map(|j| (j % 3 != 0).then_some((r + j) % 2)).collect()),
                HeadKind::Span => Target::Span { start: 1, end: 1 + r % 3 },
            };
            Feature { token_type_ids: vec![0; len], input_ids, target: Some(target) }
        })
        .collect()
}
