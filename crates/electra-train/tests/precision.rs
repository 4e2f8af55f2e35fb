//! Mixed-precision training (`PretrainConfig::precision`): a short run in bf16 or f16 tracks the
//! f32 run's loss curve, on the host path (batch chunks) and the device path; f16's loss scale
//! skips an overflowing step without touching the model. (f16 starts at PyTorch's scale of
//! 2^16, which overflows this model's first few steps: its curve starts a few steps late.)

#![allow(clippy::unwrap_used)]

use burn::backend::{Autodiff, Flex};
use electra_corrupt::SpecialIds;
use electra_model::{ElectraConfig, ElectraPreTraining, Precision};
use electra_train::data::HostBatch;
use electra_train::optim::{ElectraAdam, LossScale};
use electra_train::{ModelSpec, PretrainConfig, train_step};

type B = Autodiff<Flex>;

const VOCAB: usize = 200;
const SPECIAL: SpecialIds = SpecialIds { pad: 0, cls: 1, sep: 2, mask: 3, vocab_size: VOCAB };
const STEPS: u64 = 40;

fn config(precision: Precision, chunk: Option<usize>) -> PretrainConfig {
    let mut model = ElectraConfig::small();
    model.vocab_size = VOCAB;
    model.embedding_size = Some(32);
    model.hidden_size = 32;
    model.num_hidden_layers = 2;
    model.num_attention_heads = 2;
    model.intermediate_size = 64;
    model.max_position_embeddings = 32;
    model.hidden_dropout_prob = 0.0;
    model.attention_probs_dropout_prob = 0.0;
    PretrainConfig {
        model: ModelSpec::Custom(Box::new(model)),
        generator_size: 0.5,
        max_seq_len: 16,
        batch_size: 8,
        chunk_size: chunk,
        precision,
        warmup_steps: 0,
        learning_rate: 1e-3,
        // Low temperature: the samples follow the logits, not the noise, so that both runs
        // see almost the same replacements.
        temperature: 1e-3,
        ..PretrainConfig::default()
    }
}

/// Eight rows of 16 tokens (the last with padding), a different batch each step.
fn batch(step: u64) -> HostBatch {
    let (rows, seq) = (8, 16);
    let mut b = HostBatch { input_ids: vec![], token_type_ids: vec![], attention_mask: vec![], batch: rows, seq };
    for r in 0..rows {
        let len = if r == rows - 1 { 11 } else { seq };
        for j in 0..seq {
            let id = match j {
                0 => SPECIAL.cls,
                _ if j == len - 1 => SPECIAL.sep,
                _ if j >= len => SPECIAL.pad,
                // A repeating pattern the generator can learn, shifted by row and step.
                _ => 4 + ((r + j + step as usize % 3) % 40) as u32,
            };
            b.input_ids.push(id);
            b.token_type_ids.push(0);
            b.attention_mask.push(u32::from(j < len));
        }
    }
    b
}

/// The generator's MLM loss of every step of a run from the same start. (The discriminator's
/// loss of this tiny run swings with how often the generator's samples are right, in every
/// precision alike; the MLM curve is the smooth one to compare. The discriminator runs all the
/// same, and its gradients reach the shared embeddings.)
fn curve(config: &PretrainConfig) -> Vec<f64> {
    let device = Default::default();
    let model = ElectraPreTraining::<B>::init(&config.networks(VOCAB).unwrap(), 7, &device).unwrap();
    let mut optim = ElectraAdam::from_config(config).init::<B, ElectraPreTraining<B>>();
    let masker = electra_train::masker(config, SPECIAL, None).unwrap();
    let mut model = model;
    let mut losses = Vec::new();
    for step in 0..STEPS {
        let (next, mut outcome) = train_step(model, &mut optim, config, &masker, step, |_| Ok(batch(step))).unwrap();
        let (mlm, _disc) = outcome.losses().unwrap();
        losses.push(mlm);
        model = next;
    }
    losses
}

/// Mean over the last 10 steps (the curve's level once training has moved it).
fn tail(c: &[f64]) -> f64 {
    c[c.len() - 10..].iter().sum::<f64>() / 10.0
}

#[track_caller]
fn assert_tracks(reference: &[f64], half: &[f64], what: &str) {
    // Step 0 sees the same weights: only the products' rounding differs.
    let first = (half[0] - reference[0]).abs() / reference[0];
    assert!(first < 0.02, "{what}: step-0 loss {} vs f32 {}", half[0], reference[0]);
    // Training moves both curves by far more than they differ.
    let (drop, gap) = (reference[0] - tail(reference), (tail(half) - tail(reference)).abs());
    eprintln!("{what}: f32 {:.4} -> {:.4}, half {:.4} -> {:.4}", reference[0], tail(reference), half[0], tail(half));
    eprintln!("  f32  {:?}\n  half {:?}", reference.iter().map(|x| (x * 10.0).round() / 10.0).collect::<Vec<_>>(), half.iter().map(|x| (x * 10.0).round() / 10.0).collect::<Vec<_>>());
    assert!(drop > 0.2 * reference[0], "{what}: the f32 run did not learn ({reference:?})");
    assert!(gap < 0.1 * drop, "{what}: final level {} vs f32 {} (drop {drop})", tail(half), tail(reference));
    assert!(half != reference, "{what}: identical to f32: no half-precision product ran");
}

#[test]
fn bf16_and_f16_training_track_f32_on_both_paths() {
    for chunk in [Some(4), None] {
        let reference = curve(&config(Precision::F32, chunk));
        for precision in [Precision::Bf16, Precision::F16] {
            let half = curve(&config(precision, chunk));
            assert_tracks(&reference, &half, &format!("{precision}, chunks {chunk:?}"));
        }
    }
}

#[test]
fn an_f16_step_that_overflows_is_skipped_and_halves_the_scale() {
    let config = config(Precision::F16, None);
    let device = Default::default();
    let model = ElectraPreTraining::<B>::init(&config.networks(VOCAB).unwrap(), 7, &device).unwrap();
    let mut optim = ElectraAdam::from_config(&config).init::<B, ElectraPreTraining<B>>();
    let masker = electra_train::masker(&config, SPECIAL, None).unwrap();
    let before: Vec<f32> = model.embeddings.word_table().into_data().to_vec().unwrap();
    // A scale that makes the scaled loss overflow f32.
    optim.loss_scale = Some(LossScale { scale: 1e38, good_steps: 5 });
    let (model, mut outcome) = train_step(model, &mut optim, &config, &masker, 0, |_| Ok(batch(0))).unwrap();
    let after: Vec<f32> = model.embeddings.word_table().into_data().to_vec().unwrap();
    assert!(before == after, "an overflowing step must not update the model");
    assert_eq!(optim.loss_scale, Some(LossScale { scale: 5e37, good_steps: 0 }));
    let m = outcome.metrics(1, config.disc_weight).unwrap();
    assert_eq!(m.loss_scale, Some(1e38));
    assert!(m.loss.is_finite(), "the losses themselves are unscaled");
    // The next step, at a sane scale, trains.
    optim.loss_scale = Some(LossScale { scale: 256.0, good_steps: 0 });
    let (model, _) = train_step(model, &mut optim, &config, &masker, 1, |_| Ok(batch(1))).unwrap();
    let trained: Vec<f32> = model.embeddings.word_table().into_data().to_vec().unwrap();
    assert!(before != trained, "a finite step must update the model");
    assert_eq!(optim.loss_scale, Some(LossScale { scale: 256.0, good_steps: 1 }));
}

#[test]
fn the_loss_scale_grows_after_a_run_of_finite_steps_and_never_drops_below_one() {
    let mut s = LossScale::default();
    for _ in 0..LossScale::GROWTH_INTERVAL - 1 {
        assert!(s.update(1.0));
    }
    assert_eq!(s.scale, LossScale::INITIAL);
    assert!(s.update(1.0));
    assert_eq!(s, LossScale { scale: 2.0 * LossScale::INITIAL, good_steps: 0 });
    assert!(!s.update(f64::INFINITY));
    assert!(!s.update(f64::NAN));
    assert_eq!(s, LossScale { scale: LossScale::INITIAL / 2.0, good_steps: 0 });
    let mut tiny = LossScale { scale: 1.0, good_steps: 0 };
    assert!(!tiny.update(f64::INFINITY));
    assert_eq!(tiny.scale, 1.0);
}
