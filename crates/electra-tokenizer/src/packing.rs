//! Packing tokenised lines into pre-training examples, exactly as ELECTRA's reference
//! `build_pretraining_dataset.py` (`ExampleBuilder`) does.
//!
//! Lines are accumulated until their token count reaches the *target length*; the example is
//! also closed at every document end. When an example is closed:
//!
//! 1. with probability 0.1 everything goes to segment A (the "all-A" path); otherwise A's
//!    target is `(target - 3) / 2`;
//! 2. each accumulated line goes to A if A is empty, or if it keeps A under its target, or —
//!    with probability 0.5 — if B is still empty and A is still under its target; every other
//!    line goes to B;
//! 3. A is truncated to `max_len - 2` tokens and B to `max_len - len(A) - 3`;
//! 4. the layout is `[CLS] A [SEP]` followed by `B [SEP]` when B is not empty;
//! 5. with probability 0.05 the *next* example's target is uniform in `[5, max_len]`,
//!    otherwise it is `max_len`.
//!
//! Tokens of a line beyond what fits are dropped, as in the reference. Random draws are made
//! in the reference's order from [`PyRandom`], a reimplementation of Python's `random`, so a
//! builder seeded with `s` yields the same examples as the reference code after
//! `random.seed(s)`.

use crate::error::{Error, Result};
use crate::pyrandom::PyRandom;

/// Probability that an example puts every line in segment A.
pub const ALL_A_PROB: f64 = 0.1;
/// Probability that a line overflowing A still goes to A while B is empty.
pub const OVERFLOW_TO_A_PROB: f64 = 0.5;
/// Probability that the next example gets a random (short) target length.
pub const SHORT_SEQ_PROB: f64 = 0.05;
/// Smallest random target length.
pub const MIN_RANDOM_TARGET: usize = 5;
/// A's target on the all-A path (the reference's "100000", i.e. unbounded).
const ALL_A_TARGET: usize = 100_000;

/// One pre-training example, unpadded: `[CLS] A [SEP]` or `[CLS] A [SEP] B [SEP]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Example {
    /// Token ids including `[CLS]` and `[SEP]`; at most `max_len` of them.
    pub input_ids: Vec<u32>,
    /// Index of the first token of segment B (token type 1); equals `input_ids.len()` when
    /// there is no B.
    pub segment_b_start: usize,
}

impl Example {
    /// Number of tokens (`[CLS]`/`[SEP]` included).
    pub fn len(&self) -> usize {
        self.input_ids.len()
    }

    /// Whether the example has no token (never true for a built example).
    pub fn is_empty(&self) -> bool {
        self.input_ids.is_empty()
    }

    /// Whether the example has a segment B.
    pub fn has_segment_b(&self) -> bool {
        self.segment_b_start < self.input_ids.len()
    }

    /// Token type ids: 0 up to and including the first `[SEP]`, 1 after.
    pub fn token_type_ids(&self) -> Vec<u32> {
        let mut t = vec![0u32; self.input_ids.len()];
        for v in t.iter_mut().skip(self.segment_b_start) {
            *v = 1;
        }
        t
    }

    /// `(input_ids, token_type_ids, attention_mask)` padded to `max_len` with `pad_id` (the
    /// reference pads with id 0, type 0, mask 0).
    pub fn padded(&self, max_len: usize, pad_id: u32) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
        let n = self.input_ids.len();
        let extra = max_len.saturating_sub(n);
        let mut ids = self.input_ids.clone();
        ids.extend(std::iter::repeat_n(pad_id, extra));
        let mut types = self.token_type_ids();
        types.extend(std::iter::repeat_n(0, extra));
        let mut mask = vec![1u32; n];
        mask.extend(std::iter::repeat_n(0, extra));
        (ids, types, mask)
    }
}

/// The streaming example builder.
///
/// Feed it the token ids of each non-blank line with [`add_line`](Self::add_line) and call
/// [`end_document`](Self::end_document) at every document boundary (and at the end of the
/// input); each call may return a finished [`Example`]. Deterministic for a seed.
///
/// Memory: the lines of the example being built, i.e. O(max_len + longest line).
#[derive(Debug, Clone)]
pub struct ExampleBuilder {
    max_len: usize,
    target_len: usize,
    cls: u32,
    sep: u32,
    current: Vec<Vec<u32>>,
    current_len: usize,
    rng: PyRandom,
}

impl ExampleBuilder {
    /// A builder for examples of at most `max_len` tokens, using `cls`/`sep` ids and random
    /// draws seeded with `seed` (as Python's `random.seed(seed)`).
    ///
    /// # Errors
    /// [`Error::Config`] when `max_len < 5` (the reference draws random targets in
    /// `[5, max_len]`) or does not fit in 32 bits.
    pub fn new(max_len: usize, cls: u32, sep: u32, seed: u64) -> Result<Self> {
        if max_len < MIN_RANDOM_TARGET || max_len > u32::MAX as usize {
            return Err(Error::Config(format!(
                "max_seq_len must be in [{MIN_RANDOM_TARGET}, {}], got {max_len}",
                u32::MAX
            )));
        }
        Ok(ExampleBuilder {
            max_len,
            target_len: max_len,
            cls,
            sep,
            current: Vec::new(),
            current_len: 0,
            rng: PyRandom::new(seed),
        })
    }

    /// The maximum example length.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The target length of the example being built (`max_len`, or a random length after the
    /// short-sequence draw).
    pub fn target_len(&self) -> usize {
        self.target_len
    }

    /// Adds the token ids of one line. Returns an example once the accumulated length reaches
    /// the target. A line without tokens changes nothing (in the reference it is an empty
    /// sentence that never affects the output or the random draws).
    pub fn add_line(&mut self, ids: &[u32]) -> Option<Example> {
        if ids.is_empty() {
            return None;
        }
        self.current.push(ids.to_vec());
        self.current_len += ids.len();
        if self.current_len >= self.target_len {
            Some(self.create_example())
        } else {
            None
        }
    }

    /// Marks a document boundary: closes the example being built, if it has any token.
    pub fn end_document(&mut self) -> Option<Example> {
        if self.current_len != 0 {
            Some(self.create_example())
        } else {
            None
        }
    }

    fn create_example(&mut self) -> Example {
        let first_target = if self.rng.random() < ALL_A_PROB {
            ALL_A_TARGET
        } else {
            // target >= 5 always (max_len >= 5, random targets >= 5)
            (self.target_len - 3) / 2
        };
        let mut a: Vec<u32> = Vec::with_capacity(self.max_len);
        let mut b: Vec<u32> = Vec::new();
        for sentence in std::mem::take(&mut self.current) {
            let to_a = a.is_empty()
                || a.len() + sentence.len() < first_target
                || (b.is_empty()
                    && a.len() < first_target
                    && self.rng.random() < OVERFLOW_TO_A_PROB);
            if to_a {
                a.extend_from_slice(&sentence);
            } else {
                b.extend_from_slice(&sentence);
            }
        }
        a.truncate(self.max_len - 2);
        b.truncate(self.max_len.saturating_sub(a.len() + 3));

        self.current_len = 0;
        self.target_len = if self.rng.random() < SHORT_SEQ_PROB {
            self.rng
                .randint(MIN_RANDOM_TARGET as u32, self.max_len as u32) as usize
        } else {
            self.max_len
        };

        let mut input_ids = Vec::with_capacity(a.len() + b.len() + 3);
        input_ids.push(self.cls);
        input_ids.extend_from_slice(&a);
        input_ids.push(self.sep);
        let segment_b_start = input_ids.len();
        if !b.is_empty() {
            input_ids.extend_from_slice(&b);
            input_ids.push(self.sep);
        }
        Example {
            input_ids,
            segment_b_start,
        }
    }
}

/// Packs whole documents (each a list of tokenised lines) with one builder; a convenience
/// over [`ExampleBuilder`] for tests and small inputs.
///
/// # Errors
/// As [`ExampleBuilder::new`].
pub fn pack_documents<D, L>(
    documents: D,
    max_len: usize,
    cls: u32,
    sep: u32,
    seed: u64,
) -> Result<Vec<Example>>
where
    D: IntoIterator,
    D::Item: IntoIterator<Item = L>,
    L: AsRef<[u32]>,
{
    let mut builder = ExampleBuilder::new(max_len, cls, sep, seed)?;
    let mut out = Vec::new();
    for doc in documents {
        for line in doc {
            out.extend(builder.add_line(line.as_ref()));
        }
        out.extend(builder.end_document());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLS: u32 = 101;
    const SEP: u32 = 102;

    /// A document of `n_lines` lines of `line_len` distinct tokens each.
    fn doc(start: u32, n_lines: usize, line_len: usize) -> Vec<Vec<u32>> {
        (0..n_lines)
            .map(|l| {
                (0..line_len)
                    .map(|t| start + (l * line_len + t) as u32)
                    .collect()
            })
            .collect()
    }

    fn check_layout(ex: &Example, max_len: usize) {
        assert!(ex.len() <= max_len, "length {} > {max_len}", ex.len());
        assert_eq!(ex.input_ids[0], CLS);
        assert_eq!(ex.input_ids[ex.segment_b_start - 1], SEP);
        let seps: Vec<usize> = ex
            .input_ids
            .iter()
            .enumerate()
            .filter(|(_, t)| **t == SEP)
            .map(|(i, _)| i)
            .collect();
        if ex.has_segment_b() {
            assert_eq!(seps, vec![ex.segment_b_start - 1, ex.len() - 1]);
        } else {
            assert_eq!(seps, vec![ex.len() - 1]);
            assert_eq!(ex.segment_b_start, ex.len());
        }
        assert!(!ex.input_ids[1..].contains(&CLS));
        let types = ex.token_type_ids();
        for (i, t) in types.iter().enumerate() {
            assert_eq!(*t, u32::from(i >= ex.segment_b_start));
        }
    }

    fn corpus() -> Vec<Vec<Vec<u32>>> {
        (0..60)
            .map(|d| {
                doc(
                    1000 + d * 10_000,
                    3 + (d as usize % 17),
                    4 + (d as usize * 7 % 23),
                )
            })
            .collect()
    }

    #[test]
    fn every_example_has_the_reference_layout() {
        for max_len in [5usize, 16, 128] {
            let examples = pack_documents(corpus(), max_len, CLS, SEP, 3).expect("valid");
            assert!(!examples.is_empty());
            for ex in &examples {
                check_layout(ex, max_len);
            }
        }
    }

    #[test]
    fn a_b_split_follows_lines_and_segment_ids() {
        // Four lines of 10 tokens, max_len 64: A's target is (64-3)/2 = 30, so unless the
        // all-A draw fires, A = lines 1-2 (20 < 30), line 3 overflows (30 < 30 is false):
        // it goes to A only with the 0.5 draw; line 4 follows B if B started.
        let lines = doc(1, 4, 10);
        let mut seen_two_segments = false;
        for seed in 0..50u64 {
            let ex = pack_documents([lines.clone()], 64, CLS, SEP, seed).expect("valid");
            assert_eq!(ex.len(), 1);
            let ex = &ex[0];
            check_layout(ex, 64);
            // every content token appears once, in order
            let content: Vec<u32> = ex
                .input_ids
                .iter()
                .copied()
                .filter(|t| *t != CLS && *t != SEP)
                .collect();
            assert_eq!(content, (1..=40).collect::<Vec<u32>>());
            if ex.has_segment_b() {
                seen_two_segments = true;
                let a_len = ex.segment_b_start - 2;
                assert!(a_len == 20 || a_len == 30, "a has {a_len} tokens");
                let types = ex.token_type_ids();
                assert_eq!(types.iter().filter(|t| **t == 1).count(), 40 - a_len + 1);
            }
        }
        assert!(seen_two_segments);
    }

    #[test]
    fn deterministic_for_a_seed_and_different_across_seeds() {
        let a = pack_documents(corpus(), 64, CLS, SEP, 42).expect("valid");
        let b = pack_documents(corpus(), 64, CLS, SEP, 42).expect("valid");
        let c = pack_documents(corpus(), 64, CLS, SEP, 43).expect("valid");
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn examples_never_cross_documents() {
        let examples = pack_documents(corpus(), 128, CLS, SEP, 9).expect("valid");
        for ex in examples {
            let docs: std::collections::HashSet<u32> = ex
                .input_ids
                .iter()
                .filter(|t| **t >= 1000)
                .map(|t| (t - 1000) / 10_000)
                .collect();
            assert_eq!(docs.len(), 1, "{:?}", ex.input_ids);
        }
    }

    #[test]
    fn short_sequence_path_sets_a_random_target() {
        // Long single-line documents: every example hits its target; over many examples some
        // must be short (target < max_len) with probability 0.05 each.
        let max_len = 128;
        let mut builder = ExampleBuilder::new(max_len, CLS, SEP, 1).expect("valid");
        let mut targets = Vec::new();
        let mut lengths = Vec::new();
        for d in 0..400u32 {
            targets.push(builder.target_len());
            let line: Vec<u32> = (0..3).map(|t| 1000 + d * 10 + t).collect();
            let mut done = None;
            for _ in 0..200 {
                if let Some(ex) = builder.add_line(&line) {
                    done = Some(ex);
                    break;
                }
            }
            let ex = done.expect("an example closes once the target is reached");
            check_layout(&ex, max_len);
            lengths.push(ex.len());
            assert!(builder.end_document().is_none(), "the builder was flushed");
        }
        let short: Vec<usize> = targets.iter().copied().filter(|t| *t < max_len).collect();
        assert!(!short.is_empty(), "no short target in 400 examples");
        assert!(short.len() < 60, "{} short targets", short.len());
        assert!(
            short
                .iter()
                .all(|t| (MIN_RANDOM_TARGET..=max_len).contains(t))
        );
        for (t, len) in targets.iter().zip(&lengths) {
            if *t < max_len {
                // content = ceil(t / 3) * 3 tokens (+2 or +3 specials), less than max
                let content = t.div_ceil(3) * 3;
                let (lo, hi) = ((content + 2).min(max_len - 1), (content + 3).min(max_len));
                assert!((lo..=hi).contains(len), "target {t} len {len}");
            } else {
                assert!(*len >= max_len - 1);
            }
        }
    }

    #[test]
    fn all_a_path_puts_every_line_in_segment_a() {
        // Many short lines; on the all-A path (p = 0.1) the example has no B although the
        // content far exceeds A's normal target.
        let lines = doc(1000, 20, 10); // 200 tokens
        let mut all_a = 0;
        let mut two = 0;
        for seed in 0..200u64 {
            let ex = pack_documents([lines.clone()], 128, CLS, SEP, seed).expect("valid");
            let first = &ex[0];
            check_layout(first, 128);
            if first.has_segment_b() {
                two += 1;
            } else {
                all_a += 1;
                assert_eq!(first.len(), 128);
                assert_eq!(
                    first.input_ids[1..127],
                    (1000..1126).collect::<Vec<u32>>()[..]
                );
            }
        }
        assert!((5..=45).contains(&all_a), "{all_a} all-A examples in 200");
        assert!(two > 100);
    }

    #[test]
    fn long_line_is_truncated_to_max_len() {
        let line: Vec<u32> = (1000..11_000).collect();
        let ex = pack_documents([vec![line]], 32, CLS, SEP, 0).expect("valid");
        assert_eq!(ex.len(), 1);
        assert_eq!(ex[0].len(), 32);
        assert!(!ex[0].has_segment_b());
        assert_eq!(
            ex[0].input_ids[1..31],
            (1000..1030).collect::<Vec<u32>>()[..]
        );
    }

    #[test]
    fn empty_lines_and_documents_yield_nothing() {
        let mut b = ExampleBuilder::new(16, CLS, SEP, 0).expect("valid");
        assert!(b.add_line(&[]).is_none());
        assert!(b.end_document().is_none());
        assert!(b.add_line(&[5, 6]).is_none());
        let ex = b
            .end_document()
            .expect("a short document still makes an example");
        assert_eq!(ex.input_ids, vec![CLS, 5, 6, SEP]);
        assert!(ExampleBuilder::new(4, CLS, SEP, 0).is_err());
    }

    #[test]
    fn padded_matches_the_reference_layout() {
        let ex = Example {
            input_ids: vec![CLS, 7, SEP, 8, SEP],
            segment_b_start: 3,
        };
        let (ids, types, mask) = ex.padded(8, 0);
        assert_eq!(ids, vec![CLS, 7, SEP, 8, SEP, 0, 0, 0]);
        assert_eq!(types, vec![0, 0, 0, 1, 1, 0, 0, 0]);
        assert_eq!(mask, vec![1, 1, 1, 1, 1, 0, 0, 0]);
    }
}
