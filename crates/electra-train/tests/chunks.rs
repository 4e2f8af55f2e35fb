//! Batch chunks (`PretrainConfig::chunk_size`): a chunked step does not depend on the number of
//! threads, and without randomness it computes the whole batch's step.

#![allow(clippy::unwrap_used)]

use burn::backend::{Autodiff, Flex};
use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use electra_corrupt::SpecialIds;
use electra_model::{ElectraConfig, ElectraPreTraining};
use electra_train::data::HostBatch;
use electra_train::optim::ElectraAdam;
use electra_train::{ModelSpec, Objective, PretrainConfig, train_step};

type B = Autodiff<Flex>;

const VOCAB: usize = 200;
const SPECIAL: SpecialIds = SpecialIds { pad: 0, cls: 1, sep: 2, mask: 3, vocab_size: VOCAB };

fn config(chunk: Option<usize>, dropout: f64) -> PretrainConfig {
    let mut model = ElectraConfig::small();
    model.vocab_size = VOCAB;
    model.embedding_size = Some(16);
    model.hidden_size = 16;
    model.num_hidden_layers = 2;
    model.num_attention_heads = 2;
    model.intermediate_size = 32;
    model.max_position_embeddings = 32;
    model.hidden_dropout_prob = dropout;
    model.attention_probs_dropout_prob = dropout;
    PretrainConfig {
        model: ModelSpec::Custom(Box::new(model)),
        generator_size: 0.5,
        max_seq_len: 16,
        batch_size: 6,
        grad_accumulation: 1,
        chunk_size: chunk,
        warmup_steps: 0,
        learning_rate: 1e-3,
        ..PretrainConfig::default()
    }
}

/// Six rows of 16 tokens; the last row has 5 padding positions.
fn batch() -> HostBatch {
    batch_with_last_len(11)
}

/// Six rows of 16 tokens; the last row has `last` real tokens (2: `[CLS] [SEP]`, nothing to mask).
fn batch_with_last_len(last: usize) -> HostBatch {
    let (rows, seq) = (6, 16);
    let mut b = HostBatch {
        input_ids: Vec::new(),
        token_type_ids: Vec::new(),
        attention_mask: Vec::new(),
        batch: rows,
        seq,
    };
    for r in 0..rows {
        let len = if r == rows - 1 { last } else { seq };
        for j in 0..seq {
            let id = match j {
                0 => SPECIAL.cls,
                _ if j == len - 1 => SPECIAL.sep,
                _ if j >= len => SPECIAL.pad,
                _ => 4 + ((r * 31 + j * 17) % (VOCAB - 4)) as u32,
            };
            b.input_ids.push(id);
            b.token_type_ids.push(0);
            b.attention_mask.push(u32::from(j < len));
        }
    }
    b
}

/// Every float parameter's values, in visiting order.
struct Values(Vec<f32>);

impl ModuleVisitor<B> for Values {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.0.extend(param.val().into_data().to_vec::<f32>().unwrap_or_default());
    }
}

/// Two optimiser steps from the same initialisation; returns the losses of each step, every
/// parameter value and the word table.
fn two_steps(config: &PretrainConfig) -> (Vec<(f64, f64)>, Vec<f32>, Vec<f32>) {
    two_steps_on(config, &batch())
}

fn two_steps_on(config: &PretrainConfig, host: &HostBatch) -> (Vec<(f64, f64)>, Vec<f32>, Vec<f32>) {
    let device = Default::default();
    let networks = config.networks(VOCAB).unwrap();
    let mut model = ElectraPreTraining::<B>::init(&networks, 7, &device).unwrap();
    let mut optim = ElectraAdam::from_config(config).init::<B, ElectraPreTraining<B>>();
    let masker = electra_train::masker(config, SPECIAL, None).unwrap();
    let mut losses = Vec::new();
    for step in 0..2 {
        let (next, mut outcome) = train_step(model, &mut optim, config, &masker, step, |_| Ok(host.clone())).unwrap();
        losses.push(outcome.losses().unwrap());
        model = next;
    }
    let table: Vec<f32> = model.embeddings.word_table().into_data().to_vec().unwrap();
    let mut values = Values(Vec::new());
    model.visit(&mut values);
    (losses, values.0, table)
}

fn with_threads<T: Send>(n: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap().install(f)
}

#[test]
fn a_chunked_step_does_not_depend_on_the_number_of_threads() {
    // Chunks of 2 and 1 rows, dropout on (host masks per chunk), ELECTRA objective (host sampling).
    for chunk in [1, 2, 4] {
        let c = config(Some(chunk), 0.1);
        let one = with_threads(1, || two_steps(&c));
        let three = with_threads(3, || two_steps(&c));
        assert_eq!(one.0, three.0, "chunk {chunk}: losses differ");
        assert!(one.1.len() > 1000 && one.1 == three.1, "chunk {chunk}: parameters differ");
        assert!(one.0.iter().all(|(m, d)| m.is_finite() && d.is_finite() && *m > 0.0 && *d > 0.0));
    }
}

#[test]
fn without_randomness_chunks_compute_the_whole_batch_step() {
    // The MLM objective has no sampling; without dropout nothing else is random, so chunks and
    // the whole batch see the same masking and must agree up to float summation order.
    let whole = PretrainConfig { objective: Objective::Mlm, ..config(None, 0.0) };
    let chunked = PretrainConfig { chunk_size: Some(2), ..whole.clone() };
    let uneven = PretrainConfig { chunk_size: Some(4), ..whole.clone() };
    let (a_loss, _, a) = two_steps(&whole);
    for c in [&chunked, &uneven] {
        let (b_loss, _, b) = two_steps(c);
        for ((am, _), (bm, _)) in a_loss.iter().zip(&b_loss) {
            assert!((am - bm).abs() < 1e-5 * am.abs().max(1.0), "mlm loss {am} vs {bm}");
        }
        let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        let moved = a.iter().map(|x| x.abs()).fold(0.0f32, f32::max);
        assert!(diff < 1e-5, "word table differs by {diff} (largest value {moved})");
    }
    // And the step did change the table (the comparison is not vacuous).
    let networks = whole.networks(VOCAB).unwrap();
    let init = ElectraPreTraining::<B>::init(&networks, 7, &Default::default()).unwrap();
    let before: Vec<f32> = init.embeddings.word_table().into_data().to_vec().unwrap();
    let change = before.iter().zip(&a).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(change > 1e-4, "two steps moved the table by only {change}");
}

#[test]
fn a_chunk_without_a_maskable_token_trains_with_the_others() {
    // The last row is `[CLS] [SEP]`: its chunk of one row has no masked position, so its MLM loss
    // is a constant; with the ELECTRA objective its discriminator loss still counts.
    let host = batch_with_last_len(2);
    for objective in [Objective::Mlm, Objective::Electra] {
        let c = PretrainConfig { objective, ..config(Some(1), 0.0) };
        let (losses, values, _) = two_steps_on(&c, &host);
        assert!(losses.iter().all(|(m, d)| m.is_finite() && d.is_finite() && *m > 0.0), "{objective:?}: {losses:?}");
        assert!(values.iter().all(|v| v.is_finite()), "{objective:?}: non-finite parameters");
    }
}

/// The device path (no chunks: sampling, replacement, labels, counts and clipping as tensor
/// operations, nothing read back within the step) against the host path (one chunk of the whole
/// batch: host sampling, replacement, labels and counts, clipping from the norm read back). At a
/// temperature of 1e-7 both samplers return the generator's argmax, so without dropout the two
/// steps must agree: losses, counts, gradient norm and the parameters after two steps.
#[test]
fn the_device_path_computes_the_host_paths_step() {
    let mut device = PretrainConfig { temperature: 1e-7, max_grad_norm: 0.05, ..config(None, 0.0) };
    device.objective = Objective::Electra;
    let host = PretrainConfig { chunk_size: Some(6), ..device.clone() };
    let run = |config: &PretrainConfig| {
        let networks = config.networks(VOCAB).unwrap();
        let mut model = ElectraPreTraining::<B>::init(&networks, 7, &Default::default()).unwrap();
        let mut optim = ElectraAdam::from_config(config).init::<B, ElectraPreTraining<B>>();
        let masker = electra_train::masker(config, SPECIAL, None).unwrap();
        let mut metrics = Vec::new();
        for step in 0..2 {
            let (next, mut outcome) = train_step(model, &mut optim, config, &masker, step, |_| Ok(batch())).unwrap();
            assert_eq!(outcome.is_read(), config.chunk_size.is_some(), "which path ran");
            metrics.push(outcome.metrics(step + 1, config.disc_weight).unwrap());
            model = next;
        }
        let table: Vec<f32> = model.embeddings.word_table().into_data().to_vec().unwrap();
        (metrics, table)
    };
    let (d, d_table) = run(&device);
    let (h, h_table) = run(&host);
    for (a, b) in d.iter().zip(&h) {
        let close = |x: f64, y: f64| (x - y).abs() <= 1e-5 * x.abs().max(1.0);
        assert!(close(a.mlm_loss, b.mlm_loss) && close(a.disc_loss, b.disc_loss), "losses: {a:?} vs {b:?}");
        assert!(close(a.grad_norm, b.grad_norm) && a.grad_norm > device.max_grad_norm, "norms: {a:?} vs {b:?}");
        assert_eq!(
            (a.gen_accuracy, a.disc_accuracy, a.replaced_fraction),
            (b.gen_accuracy, b.disc_accuracy, b.replaced_fraction),
            "counts"
        );
        assert!(a.replaced_fraction > 0.0, "nothing was replaced: {a:?}");
    }
    let diff = d_table.iter().zip(&h_table).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(diff < 1e-5, "word tables differ by {diff}");
}
