//! One corruption step end to end on the Flex backend: mask, sample from stand-in generator
//! logits, replace, label.

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use electra_corrupt::{
    Masker, MaskingConfig, Result, SpecialIds, ids_from_tensor, replace_tokens, sample_tokens,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const VOCAB: usize = 50;
const SPECIAL: SpecialIds = SpecialIds {
    pad: 0,
    cls: 1,
    sep: 2,
    mask: 3,
    vocab_size: VOCAB,
};

/// Logits `[n, VOCAB]` with a margin of 50 on `peaks[i]` in row `i`.
fn peaked_logits(peaks: &[u32]) -> Tensor<Flex, 2> {
    let mut flat = vec![0.0f32; peaks.len() * VOCAB];
    for (row, &peak) in peaks.iter().enumerate() {
        flat[row * VOCAB + peak as usize] = 50.0;
    }
    Tensor::from_data(
        TensorData::new(flat, [peaks.len(), VOCAB]),
        &Default::default(),
    )
}

#[test]
fn a_perfect_generator_yields_no_replaced_labels_and_a_wrong_one_all() -> Result<()> {
    let (batch, seq) = (4, 32);
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let mut ids: Vec<u32> = (0..batch * seq)
        .map(|_| rng.random_range(4..VOCAB as u32))
        .collect();
    let mut attention = vec![1; batch * seq];
    for row in 0..batch {
        ids[row * seq] = SPECIAL.cls;
        ids[row * seq + seq - 1] = SPECIAL.sep;
    }
    // Row 3 is half padding.
    ids[3 * seq + 16..].fill(SPECIAL.pad);
    attention[3 * seq + 16..].fill(0);

    let masker = Masker::new(
        MaskingConfig {
            max_seq_len: seq,
            ..MaskingConfig::default()
        },
        SPECIAL,
        None,
    )?;
    let masked = masker.mask(&ids, &attention, batch, seq, &mut rng)?;
    // round(32 * 0.15) = 5 for full rows, N = int(0.155 * 32) = 4; round(16 * 0.15) = 2.
    assert_eq!(masked.num_predictions(), 3 * 4 + 2);

    // A generator that always predicts the original: nothing is labelled replaced.
    let samples = ids_from_tensor(sample_tokens(peaked_logits(&masked.targets), 1.0)?)?;
    assert_eq!(samples, masked.targets);
    let (disc_input, labels) = replace_tokens(&ids, &masked.positions, &samples)?;
    assert_eq!(disc_input, ids);
    assert!(labels.iter().all(|&l| l == 0));

    // A generator that always predicts a different token: exactly the chosen positions are 1.
    let wrong: Vec<u32> = masked
        .targets
        .iter()
        .map(|&t| if t == 4 { 5 } else { 4 })
        .collect();
    let samples = ids_from_tensor(sample_tokens(peaked_logits(&wrong), 1.0)?)?;
    let (disc_input, labels) = replace_tokens(&ids, &masked.positions, &samples)?;
    for (flat, &label) in labels.iter().enumerate() {
        let chosen = masked.positions.binary_search(&(flat as u32)).is_ok();
        assert_eq!(label, u32::from(chosen), "position {flat}");
        if !chosen {
            assert_eq!(disc_input[flat], ids[flat]);
        }
    }
    Ok(())
}
