use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;

const PAD: u32 = 0;
const CLS: u32 = 101;
const SEP: u32 = 102;
const MASK: u32 = 103;
const VOCAB: usize = 1000;
/// First id of an ordinary (non-special) token in the test vocabulary.
const FIRST_WORD: u32 = 200;
/// Ids from here on are `##` continuations in the whole-word tests.
const FIRST_CONTINUATION: u32 = 600;
/// Absolute tolerance on the empirical fractions (each is > 5 standard deviations wide for the
/// number of draws used).
const FRACTION_TOL: f64 = 0.005;

fn special() -> SpecialIds {
    SpecialIds {
        pad: PAD,
        cls: CLS,
        sep: SEP,
        mask: MASK,
        vocab_size: VOCAB,
    }
}

fn is_special(id: u32) -> bool {
    matches!(id, PAD | CLS | SEP | MASK)
}

fn continuation_table() -> Vec<bool> {
    (0..VOCAB as u32)
        .map(|id| id >= FIRST_CONTINUATION)
        .collect()
}

/// Rows of `seq` tokens; row `r` has `lengths[r]` real tokens: `[CLS]`, words, `[SEP]`, then
/// padding. Rows of 3+ tokens carry a second `[SEP]` in the middle, rows of 6+ a `[MASK]` at
/// column 2, neither of which may be chosen.
fn make_batch(lengths: &[usize], seq: usize, rng: &mut impl Rng) -> (Vec<u32>, Vec<u32>) {
    let mut ids = vec![PAD; lengths.len() * seq];
    let mut mask = vec![0; lengths.len() * seq];
    for (row, &len) in lengths.iter().enumerate() {
        let row_ids = &mut ids[row * seq..(row + 1) * seq];
        let row_mask = &mut mask[row * seq..(row + 1) * seq];
        for col in 0..len {
            row_ids[col] = rng.random_range(FIRST_WORD..VOCAB as u32);
            row_mask[col] = 1;
        }
        if len > 0 {
            row_ids[0] = CLS;
            row_ids[len - 1] = SEP;
            row_ids[len / 2] = if len >= 3 { SEP } else { row_ids[len / 2] };
        }
        if len >= 6 {
            row_ids[2] = MASK;
        }
    }
    (ids, mask)
}

fn candidates_in_row(ids: &[u32], mask: &[u32]) -> usize {
    ids.iter()
        .zip(mask)
        .filter(|&(&id, &m)| m == 1 && !is_special(id))
        .count()
}

fn per_row_counts(masked: &MaskedBatch) -> Vec<usize> {
    let mut counts = vec![0; masked.batch];
    for &p in &masked.positions {
        counts[p as usize / masked.seq] += 1;
    }
    counts
}

#[test]
fn max_predictions_is_19_for_128_at_0_15() {
    let config = MaskingConfig::default();
    assert_eq!(config.max_predictions(), 19);
    let large = MaskingConfig {
        mask_prob: 0.25,
        max_seq_len: 512,
        ..MaskingConfig::default()
    };
    // int(0.255 * 512) = int(130.56)
    assert_eq!(large.max_predictions(), 130);
}

#[test]
fn num_to_predict_rounds_half_to_even_in_f32() {
    let config = MaskingConfig {
        max_seq_len: 256,
        ..MaskingConfig::default()
    };
    assert_eq!(config.max_predictions(), 39);
    // (num_real_tokens, expected): ties go to even; 190 * 0.15 is 28.500002 in f32, so 29.
    for (num_real, expected) in [
        (0, 1),
        (1, 1),
        (5, 1),
        (10, 2),
        (30, 4),
        (70, 10),
        (110, 16),
        (190, 29),
        (256, 38),
    ] {
        assert_eq!(
            config.num_to_predict(num_real),
            expected,
            "{num_real} tokens"
        );
    }
    // Capped by N.
    assert_eq!(MaskingConfig::default().num_to_predict(128), 19);
    assert_eq!(MaskingConfig::default().num_to_predict(1000), 19);
}

#[test]
fn count_matches_formula_on_known_rows() -> Result<()> {
    let seq = 128;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let (mut ids, mut mask) = make_batch(&[128, 30, 10, 2, 0, 5, 20], seq, &mut rng);
    // Last row: 20 real tokens (formula 3) but a single candidate.
    let last = &mut ids[6 * seq..6 * seq + 20];
    last.fill(MASK);
    last[0] = CLS;
    last[19] = SEP;
    last[7] = 500;
    mask[6 * seq..6 * seq + 20].fill(1);

    let masker = Masker::new(MaskingConfig::default(), special(), None)?;
    let masked = masker.mask(&ids, &mask, 7, seq, &mut rng)?;
    assert_eq!(per_row_counts(&masked), vec![19, 4, 2, 0, 0, 1, 1]);
    assert!(masked.positions.contains(&(6 * seq as u32 + 7)));
    Ok(())
}

#[test]
fn masking_respects_specials_padding_and_formula() -> Result<()> {
    let seq = 64;
    let batch = 16;
    let masker = Masker::new(
        MaskingConfig {
            max_seq_len: seq,
            ..MaskingConfig::default()
        },
        special(),
        None,
    )?;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for _ in 0..50 {
        let lengths: Vec<usize> = (0..batch).map(|_| rng.random_range(0..=seq)).collect();
        let (ids, mask) = make_batch(&lengths, seq, &mut rng);
        let masked = masker.mask(&ids, &mask, batch, seq, &mut rng)?;

        // Positions sorted, unique, on real non-special tokens; targets are the originals.
        assert!(masked.positions.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(masked.targets.len(), masked.positions.len());
        for (&p, &target) in masked.positions.iter().zip(&masked.targets) {
            let p = p as usize;
            assert_eq!(mask[p], 1, "chose padding at {p}");
            assert!(!is_special(ids[p]), "chose special {} at {p}", ids[p]);
            assert_eq!(target, ids[p]);
        }
        // Nothing else changes.
        for (flat, (&before, &after)) in ids.iter().zip(&masked.input_ids).enumerate() {
            if masked.positions.binary_search(&(flat as u32)).is_err() {
                assert_eq!(before, after, "unchosen position {flat} changed");
            }
        }
        // Per-row count.
        let counts = per_row_counts(&masked);
        for row in 0..batch {
            let range = row * seq..(row + 1) * seq;
            let cands = candidates_in_row(&ids[range.clone()], &mask[range]);
            let expected = masker.config().num_to_predict(lengths[row]).min(cands);
            assert_eq!(
                counts[row], expected,
                "row {row} of length {}",
                lengths[row]
            );
        }
    }
    Ok(())
}

/// Masks `rounds` full batches of 32 x 128 and returns (originals, masked) pairs at the chosen
/// positions.
fn chosen_pairs(masker: &Masker, rounds: usize, seed: u64) -> Result<Vec<(u32, u32)>> {
    let (batch, seq) = (32, 128);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pairs = Vec::new();
    for _ in 0..rounds {
        let (ids, mask) = make_batch(&vec![seq; batch], seq, &mut rng);
        let masked = masker.mask(&ids, &mask, batch, seq, &mut rng)?;
        for (&p, &target) in masked.positions.iter().zip(&masked.targets) {
            pairs.push((target, masked.input_ids[p as usize]));
        }
    }
    Ok(pairs)
}

#[test]
fn electra_scheme_masks_85_percent_and_keeps_the_rest() -> Result<()> {
    let masker = Masker::new(MaskingConfig::default(), special(), None)?;
    let pairs = chosen_pairs(&masker, 200, 11)?;
    assert_eq!(pairs.len(), 200 * 32 * 19);
    let masked = pairs.iter().filter(|&&(_, seen)| seen == MASK).count();
    let kept = pairs.iter().filter(|&&(orig, seen)| seen == orig).count();
    // No random replacements under the ELECTRA scheme.
    assert_eq!(masked + kept, pairs.len());
    let fraction = masked as f64 / pairs.len() as f64;
    assert!(
        (fraction - 0.85).abs() < FRACTION_TOL,
        "[MASK] fraction {fraction}"
    );
    Ok(())
}

#[test]
fn bert_scheme_converges_to_80_10_10() -> Result<()> {
    let config = MaskingConfig {
        scheme: Scheme::Bert,
        ..MaskingConfig::default()
    };
    let masker = Masker::new(config, special(), None)?;
    let pairs = chosen_pairs(&masker, 200, 12)?;
    let total = pairs.len() as f64;
    let masked = pairs.iter().filter(|&&(_, seen)| seen == MASK).count() as f64;
    let kept = pairs.iter().filter(|&&(orig, seen)| seen == orig).count() as f64;
    let random: Vec<u32> = pairs
        .iter()
        .filter(|&&(orig, seen)| seen != orig && seen != MASK)
        .map(|&(_, seen)| seen)
        .collect();
    assert!(
        random
            .iter()
            .all(|&id| !is_special(id) && (id as usize) < VOCAB)
    );
    // A random draw equals the original with probability 1/996: the expected fractions are
    // 0.1 - 0.1/996 and 0.1 + 0.1/996, well inside the tolerance of 0.1.
    for (name, value, expected) in [
        ("mask", masked / total, 0.8),
        ("random", random.len() as f64 / total, 0.1),
        ("kept", kept / total, 0.1),
    ] {
        assert!(
            (value - expected).abs() < FRACTION_TOL,
            "{name} fraction {value}, expected {expected}"
        );
    }
    Ok(())
}

#[test]
fn bert_random_tokens_cover_the_non_special_ids() -> Result<()> {
    // Vocabulary of 6 with 4 specials at scattered ids: random tokens must be exactly {1, 4}.
    let special = SpecialIds {
        pad: 0,
        cls: 2,
        sep: 3,
        mask: 5,
        vocab_size: 6,
    };
    let config = MaskingConfig {
        scheme: Scheme::Bert,
        ..MaskingConfig::default()
    };
    let masker = Masker::new(config, special, None)?;
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut seen = [0usize; 6];
    for _ in 0..2000 {
        seen[masker.random_token(&mut rng) as usize] += 1;
    }
    assert_eq!(seen[0] + seen[2] + seen[3] + seen[5], 0, "{seen:?}");
    assert!(seen[1] > 800 && seen[4] > 800, "{seen:?}");
    Ok(())
}

#[test]
fn chosen_positions_are_uniform_over_candidates() -> Result<()> {
    let (batch, seq) = (32, 128);
    let masker = Masker::new(MaskingConfig::default(), special(), None)?;
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let rounds = 200;
    let mut hits = vec![0usize; seq];
    let (ids, mask) = make_batch(&vec![seq; batch], seq, &mut rng);
    for _ in 0..rounds {
        let masked = masker.mask(&ids, &mask, batch, seq, &mut rng)?;
        for &p in &masked.positions {
            hits[p as usize % seq] += 1;
        }
    }
    // Every row: 124 candidates (128 minus [CLS], two [SEP], one [MASK]), 19 chosen.
    let rows = (rounds * batch) as f64;
    let expected = 19.0 / 124.0;
    for (col, &h) in hits.iter().enumerate() {
        let freq = h as f64 / rows;
        if is_special(ids[col]) {
            assert_eq!(h, 0, "special column {col} chosen");
        } else {
            // sd ~ 0.0045 per column; 0.025 is > 5 sd.
            assert!((freq - expected).abs() < 0.025, "column {col}: {freq}");
        }
    }
    Ok(())
}

#[test]
fn same_seed_same_output_different_seed_different() -> Result<()> {
    let (batch, seq) = (8, 128);
    let masker = Masker::new(MaskingConfig::default(), special(), None)?;
    let (ids, mask) = make_batch(&vec![seq; batch], seq, &mut ChaCha8Rng::seed_from_u64(0));
    let run = |seed| {
        masker.mask(
            &ids,
            &mask,
            batch,
            seq,
            &mut ChaCha8Rng::seed_from_u64(seed),
        )
    };
    let first = run(42)?;
    assert_eq!(first, run(42)?);
    let other = run(43)?;
    assert_ne!(first.positions, other.positions);
    assert_ne!(first.input_ids, other.input_ids);
    Ok(())
}

/// Rows of words: a start id below `FIRST_CONTINUATION` followed by 0-3 continuation ids.
fn make_word_batch(batch: usize, seq: usize, rng: &mut impl Rng) -> (Vec<u32>, Vec<u32>) {
    let mut ids = vec![PAD; batch * seq];
    let mut mask = vec![0; batch * seq];
    for row in 0..batch {
        let len = rng.random_range(seq / 2..=seq);
        let row_ids = &mut ids[row * seq..row * seq + len];
        let mut col = 1;
        while col < len - 1 {
            row_ids[col] = rng.random_range(FIRST_WORD..FIRST_CONTINUATION);
            col += 1;
            for _ in 0..rng.random_range(0..=3) {
                if col < len - 1 {
                    row_ids[col] = rng.random_range(FIRST_CONTINUATION..VOCAB as u32);
                    col += 1;
                }
            }
        }
        row_ids[0] = CLS;
        row_ids[len - 1] = SEP;
        mask[row * seq..row * seq + len].fill(1);
    }
    (ids, mask)
}

#[test]
fn whole_word_never_splits_a_word() -> Result<()> {
    let (batch, seq) = (16, 128);
    let config = MaskingConfig {
        whole_word: true,
        ..MaskingConfig::default()
    };
    let masker = Masker::new(config, special(), Some(continuation_table()))?;
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut multi_piece_words_chosen = 0;
    let mut chosen_total = 0;
    let mut formula_total = 0;
    for _ in 0..50 {
        let (ids, mask) = make_word_batch(batch, seq, &mut rng);
        let masked = masker.mask(&ids, &mask, batch, seq, &mut rng)?;
        let is_chosen = |flat: usize| masked.positions.binary_search(&(flat as u32)).is_ok();
        let counts = per_row_counts(&masked);
        for (row, &count) in counts.iter().enumerate() {
            let start = row * seq;
            let real = mask[start..start + seq].iter().filter(|&&m| m == 1).count();
            let formula = masker.config().num_to_predict(real);
            assert!(count <= formula, "row {row}: {count} > {formula}");
            chosen_total += count;
            formula_total += formula;
            // Walk the words: [start, end) where the pieces after `start` are continuations.
            let mut col = 1;
            while col < real - 1 {
                let mut end = col + 1;
                while end < real - 1 && ids[start + end] >= FIRST_CONTINUATION {
                    end += 1;
                }
                let picked = (col..end).filter(|&c| is_chosen(start + c)).count();
                assert!(
                    picked == 0 || picked == end - col,
                    "row {row}: word {col}..{end} split ({picked} pieces chosen)"
                );
                if picked > 1 {
                    multi_piece_words_chosen += 1;
                }
                col = end;
            }
        }
    }
    assert!(multi_piece_words_chosen > 100, "{multi_piece_words_chosen}");
    // Skipping words that overshoot loses little: over 97% of the formula's count is reached.
    assert!(
        chosen_total as f64 > 0.97 * formula_total as f64,
        "{chosen_total} of {formula_total}"
    );
    Ok(())
}

#[test]
fn whole_word_with_single_piece_words_matches_the_formula() -> Result<()> {
    let (batch, seq) = (8, 128);
    let config = MaskingConfig {
        whole_word: true,
        ..MaskingConfig::default()
    };
    let masker = Masker::new(config, special(), Some(continuation_table()))?;
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let (mut ids, mask) = make_batch(&vec![seq; batch], seq, &mut rng);
    for id in &mut ids {
        if *id >= FIRST_CONTINUATION {
            *id -= FIRST_CONTINUATION - FIRST_WORD;
        }
    }
    let masked = masker.mask(&ids, &mask, batch, seq, &mut rng)?;
    assert_eq!(per_row_counts(&masked), vec![19; batch]);
    Ok(())
}

#[test]
fn word_units_group_continuations_after_candidates_only() {
    let table = continuation_table();
    // cols:   0    1    2    3    4    5    6    7
    let ids = [CLS, 650, 300, 610, 620, MASK, 630, SEP];
    let candidates = [1, 2, 3, 4, 6];
    // 650 after [CLS] and 630 after [MASK] start their own units.
    let units = word_units(&ids, &candidates, &table);
    assert_eq!(units, vec![0..1, 1..4, 4..5]);
}

#[test]
fn empty_batch_gives_empty_output() -> Result<()> {
    let masker = Masker::new(MaskingConfig::default(), special(), None)?;
    let masked = masker.mask(&[], &[], 0, 128, &mut ChaCha8Rng::seed_from_u64(0))?;
    assert!(masked.input_ids.is_empty() && masked.positions.is_empty());
    Ok(())
}

#[test]
fn bad_configuration_is_an_error() {
    let with_prob = |mask_prob| MaskingConfig {
        mask_prob,
        ..MaskingConfig::default()
    };
    for p in [0.0, 1.0, -0.1, 1.5, f64::NAN] {
        assert!(
            matches!(
                Masker::new(with_prob(p), special(), None),
                Err(Error::InvalidMaskProb(_))
            ),
            "mask_prob {p}"
        );
    }
    let config = MaskingConfig {
        mask_token_prob: 1.1,
        ..MaskingConfig::default()
    };
    assert!(matches!(
        Masker::new(config, special(), None),
        Err(Error::InvalidMaskTokenProb(_))
    ));
    let config = MaskingConfig {
        max_seq_len: 0,
        ..MaskingConfig::default()
    };
    assert_eq!(
        Masker::new(config, special(), None).err(),
        Some(Error::ZeroMaxSeqLen)
    );
    let bad_mask = SpecialIds {
        mask: VOCAB as u32,
        ..special()
    };
    assert!(matches!(
        Masker::new(MaskingConfig::default(), bad_mask, None),
        Err(Error::SpecialIdOutOfVocab { name: "mask", .. })
    ));
    let empty = SpecialIds {
        vocab_size: 0,
        ..special()
    };
    assert!(matches!(
        Masker::new(MaskingConfig::default(), empty, None),
        Err(Error::InvalidVocabSize(0))
    ));
    let whole_word = MaskingConfig {
        whole_word: true,
        ..MaskingConfig::default()
    };
    assert_eq!(
        Masker::new(whole_word.clone(), special(), None).err(),
        Some(Error::MissingContinuationTable)
    );
    assert_eq!(
        Masker::new(whole_word, special(), Some(vec![false; 10])).err(),
        Some(Error::ContinuationTableLength {
            expected: VOCAB,
            got: 10
        })
    );
    let only_specials = SpecialIds {
        pad: 0,
        cls: 1,
        sep: 2,
        mask: 3,
        vocab_size: 4,
    };
    let bert = MaskingConfig {
        scheme: Scheme::Bert,
        ..MaskingConfig::default()
    };
    assert_eq!(
        Masker::new(bert.clone(), only_specials, None).err(),
        Some(Error::NoRandomToken)
    );
    // The ELECTRA scheme draws no random tokens, so it accepts that vocabulary.
    assert!(Masker::new(MaskingConfig::default(), only_specials, None).is_ok());
}

#[test]
fn bad_batch_is_an_error() -> Result<()> {
    let masker = Masker::new(MaskingConfig::default(), special(), None)?;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let (ids, mask) = make_batch(&[10, 10], 16, &mut rng);
    assert_eq!(
        masker.mask(&ids, &mask, 3, 16, &mut rng).err(),
        Some(Error::LengthMismatch {
            name: "input_ids",
            expected: 48,
            got: 32
        })
    );
    assert_eq!(
        masker.mask(&ids, &mask[..31], 2, 16, &mut rng).err(),
        Some(Error::LengthMismatch {
            name: "attention_mask",
            expected: 32,
            got: 31
        })
    );
    assert!(matches!(
        masker.mask(&ids, &mask, usize::MAX, 2, &mut rng),
        Err(Error::ShapeOverflow { .. })
    ));
    let long = vec![1; 2 * 129];
    assert_eq!(
        masker.mask(&long, &long, 2, 129, &mut rng).err(),
        Some(Error::SequenceTooLong {
            seq: 129,
            max_seq_len: 128
        })
    );
    let mut out_of_vocab = ids.clone();
    out_of_vocab[20] = VOCAB as u32;
    assert_eq!(
        masker.mask(&out_of_vocab, &mask, 2, 16, &mut rng).err(),
        Some(Error::TokenOutOfVocab {
            id: VOCAB as u32,
            position: 20,
            vocab_size: VOCAB
        })
    );
    let mut bad_mask = mask.clone();
    bad_mask[3] = 2;
    assert_eq!(
        masker.mask(&ids, &bad_mask, 2, 16, &mut rng).err(),
        Some(Error::InvalidAttentionMask {
            value: 2,
            position: 3
        })
    );
    Ok(())
}

/// With a stream per row, a row's masking is the same whether it is masked in the whole batch
/// or in any part of it (data-parallel ranks and batch chunks rely on this).
#[test]
fn per_row_streams_make_a_rows_masking_independent_of_its_batch() -> Result<()> {
    let masker = Masker::new(MaskingConfig::default(), special(), None)?;
    let seq = 40;
    let lengths = [40, 17, 33, 8, 25];
    let (ids, mask) = make_batch(&lengths, seq, &mut ChaCha8Rng::seed_from_u64(3));
    let streams = |rows: std::ops::Range<usize>| -> Vec<ChaCha8Rng> {
        rows.map(|r| ChaCha8Rng::seed_from_u64(100 + r as u64)).collect()
    };
    let whole = masker.mask_rows(&ids, &mask, 5, seq, &mut streams(0..5))?;
    let mut parts = Vec::new();
    for rows in [0..2, 2..3, 3..5] {
        let (lo, hi) = (rows.start * seq, rows.end * seq);
        let part = masker.mask_rows(&ids[lo..hi], &mask[lo..hi], rows.len(), seq, &mut streams(rows.clone()))?;
        parts.extend(part.positions.iter().map(|&p| p + lo as u32).zip(part.targets));
        assert_eq!(&part.input_ids[..], &whole.input_ids[lo..hi]);
    }
    let whole_pairs: Vec<(u32, u32)> = whole.positions.iter().copied().zip(whole.targets.iter().copied()).collect();
    assert_eq!(parts, whole_pairs);
    assert!(!whole.positions.is_empty());
    assert!(masker.mask_rows(&ids, &mask, 5, seq, &mut streams(0..4)).is_err(), "a stream short");
    Ok(())
}
