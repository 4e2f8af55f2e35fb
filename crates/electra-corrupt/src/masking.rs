//! Host-side masking: which positions the generator predicts, and what it sees there.
//!
//! Follows the reference implementation's `mask()` (`pretrain_helpers.py`), with the deviations
//! listed on [`Masker`].

use std::ops::Range;

use rand::Rng;
use rand::seq::SliceRandom;

use crate::{Error, Result};

/// Probability that a chosen position becomes `[MASK]` under [`Scheme::Bert`].
const BERT_MASK_PROB: f64 = 0.8;
/// Probability that a chosen position becomes a random token under [`Scheme::Bert`]; the rest
/// (`1 - 0.8 - 0.1`) keep their original token.
const BERT_RANDOM_PROB: f64 = 0.1;

/// Ids of the special tokens, and the vocabulary size they must lie in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialIds {
    /// `[PAD]`.
    pub pad: u32,
    /// `[CLS]`.
    pub cls: u32,
    /// `[SEP]`.
    pub sep: u32,
    /// `[MASK]`.
    pub mask: u32,
    /// Number of ids in the vocabulary; every id, special or not, must be below it.
    pub vocab_size: usize,
}

impl SpecialIds {
    /// Whether `id` is one of `[PAD]`, `[CLS]`, `[SEP]`, `[MASK]`.
    #[must_use]
    pub fn is_special(&self, id: u32) -> bool {
        id == self.pad || id == self.cls || id == self.sep || id == self.mask
    }

    fn validate(&self) -> Result<()> {
        if self.vocab_size == 0 || self.vocab_size as u64 > u64::from(u32::MAX) + 1 {
            return Err(Error::InvalidVocabSize(self.vocab_size));
        }
        for (name, id) in [
            ("pad", self.pad),
            ("cls", self.cls),
            ("sep", self.sep),
            ("mask", self.mask),
        ] {
            if id as usize >= self.vocab_size {
                return Err(Error::SpecialIdOutOfVocab {
                    name,
                    id,
                    vocab_size: self.vocab_size,
                });
            }
        }
        Ok(())
    }

    /// The distinct special ids, ascending.
    fn sorted_distinct(&self) -> Vec<u32> {
        let mut ids = vec![self.pad, self.cls, self.sep, self.mask];
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// What the generator sees at a chosen position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scheme {
    /// ELECTRA (the reference code): `[MASK]` with probability
    /// [`MaskingConfig::mask_token_prob`] (0.85), otherwise the original token. No random tokens.
    #[default]
    Electra,
    /// BERT, for the MLM baseline: 80% `[MASK]`, 10% a uniformly random non-special token (it may
    /// equal the original), 10% the original. Ignores [`MaskingConfig::mask_token_prob`].
    Bert,
}

/// How many positions to choose per row, and how to corrupt them.
#[derive(Debug, Clone, PartialEq)]
pub struct MaskingConfig {
    /// Fraction of a row's real tokens to predict, in (0, 1). 0.15 for Small and Base, 0.25 for
    /// Large.
    pub mask_prob: f64,
    /// Under [`Scheme::Electra`], probability that a chosen position becomes `[MASK]`, in [0, 1].
    pub mask_token_prob: f64,
    /// The longest sequence the model takes; sets [`MaskingConfig::max_predictions`].
    pub max_seq_len: usize,
    /// Choose whole words (a token plus its following `##` pieces) instead of single tokens.
    pub whole_word: bool,
    /// What the generator sees at a chosen position.
    pub scheme: Scheme,
}

impl Default for MaskingConfig {
    /// The reference defaults: `mask_prob` 0.15, `mask_token_prob` 0.85, `max_seq_len` 128,
    /// token-level choice, [`Scheme::Electra`].
    fn default() -> Self {
        Self {
            mask_prob: 0.15,
            mask_token_prob: 0.85,
            max_seq_len: 128,
            whole_word: false,
            scheme: Scheme::Electra,
        }
    }
}

impl MaskingConfig {
    /// The per-row cap `N = int((mask_prob + 0.005) * max_seq_len)` (the reference's
    /// `max_predictions_per_seq`): 19 for 128 @ 0.15.
    #[must_use]
    pub fn max_predictions(&self) -> usize {
        // `as` truncates toward zero like Python's `int()` (and saturates instead of wrapping).
        ((self.mask_prob + 0.005) * self.max_seq_len as f64) as usize
    }

    /// The per-row count before capping by the number of candidates:
    /// `max(1, min(N, round(num_real_tokens * mask_prob)))`, where `num_real_tokens` counts
    /// `[CLS]` and `[SEP]` and `N` is [`MaskingConfig::max_predictions`].
    ///
    /// As in the reference (TensorFlow's `tf.round` on `float32`), the product is computed in
    /// `f32` and rounded half to even: 30 real tokens at 0.15 give 4, not 5.
    #[must_use]
    pub fn num_to_predict(&self, num_real_tokens: usize) -> usize {
        let product = num_real_tokens as f32 * self.mask_prob as f32;
        let rounded = product.round_ties_even() as usize;
        rounded.min(self.max_predictions()).max(1)
    }

    /// Checks the ranges of the fields.
    ///
    /// # Errors
    /// [`Error::InvalidMaskProb`], [`Error::InvalidMaskTokenProb`] or [`Error::ZeroMaxSeqLen`].
    pub fn validate(&self) -> Result<()> {
        if !(self.mask_prob > 0.0 && self.mask_prob < 1.0) {
            return Err(Error::InvalidMaskProb(self.mask_prob));
        }
        if !(0.0..=1.0).contains(&self.mask_token_prob) {
            return Err(Error::InvalidMaskTokenProb(self.mask_token_prob));
        }
        if self.max_seq_len == 0 {
            return Err(Error::ZeroMaxSeqLen);
        }
        Ok(())
    }
}

/// A masked batch: the generator's input and what it must predict.
///
/// All buffers are flat and row-major; a flat position `p` is row `p / seq`, column `p % seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskedBatch {
    /// Generator input, `[batch * seq]`: the original ids with the chosen positions corrupted.
    pub input_ids: Vec<u32>,
    /// The chosen flat positions, ascending, without duplicates.
    pub positions: Vec<u32>,
    /// The original ids at `positions` (the generator's targets), same length as `positions`.
    pub targets: Vec<u32>,
    /// Rows.
    pub batch: usize,
    /// Columns.
    pub seq: usize,
}

impl MaskedBatch {
    /// How many positions were chosen in the whole batch.
    #[must_use]
    pub fn num_predictions(&self) -> usize {
        self.positions.len()
    }
}

/// Chooses the positions to predict and builds the generator input.
///
/// Per row (section 2 of the method):
/// 1. Candidates are positions with attention mask 1 whose token is not `[CLS]`, `[SEP]`,
///    `[MASK]` or `[PAD]`.
/// 2. The count is [`MaskingConfig::num_to_predict`] of the row's real tokens (attention mask 1,
///    `[CLS]`/`[SEP]` included), but never more than the number of candidates (so 0 for a row
///    without candidates, e.g. an all-padding row).
/// 3. **Choice without replacement.** The count is drawn uniformly without replacement from the
///    candidates, so a row always gets exactly that count. The reference instead draws `N`
///    positions with replacement and de-duplicates, which can leave fewer; section 2 of the method
///    allows this documented difference.
/// 4. **Whole words** (`whole_word`): a candidate and the candidates that directly follow it and
///    are `##` continuations form one unit. Units are visited in a uniformly random order and
///    taken whole; a unit that would overshoot the count is skipped (as BERT's
///    `create_pretraining_data.py` does), so the row's count is at most the formula's, and less
///    when no remaining word fits. A word is never split. A continuation that follows a
///    non-candidate (e.g. right after `[CLS]`) starts its own unit.
/// 5. Each chosen position is then corrupted independently according to [`Scheme`].
///
/// Given the same RNG state the output is the same: the corruptor is deterministic given a seed.
#[derive(Debug, Clone)]
pub struct Masker {
    config: MaskingConfig,
    special: SpecialIds,
    is_continuation: Option<Vec<bool>>,
    /// Distinct special ids, ascending, for drawing BERT's random tokens.
    specials_sorted: Vec<u32>,
}

impl Masker {
    /// Checks the configuration and builds a masker.
    ///
    /// `is_continuation[id]` says whether vocabulary entry `id` is a `##` word piece; it is needed
    /// only when `config.whole_word` is set (and ignored otherwise).
    ///
    /// # Errors
    /// Any error of [`MaskingConfig::validate`]; [`Error::InvalidVocabSize`] or
    /// [`Error::SpecialIdOutOfVocab`] for bad special ids; [`Error::MissingContinuationTable`] or
    /// [`Error::ContinuationTableLength`] for whole-word masking without a table of `vocab_size`
    /// entries; [`Error::NoRandomToken`] for [`Scheme::Bert`] over a vocabulary of specials only.
    pub fn new(
        config: MaskingConfig,
        special: SpecialIds,
        is_continuation: Option<Vec<bool>>,
    ) -> Result<Self> {
        config.validate()?;
        special.validate()?;
        if config.whole_word {
            match &is_continuation {
                None => return Err(Error::MissingContinuationTable),
                Some(table) if table.len() != special.vocab_size => {
                    return Err(Error::ContinuationTableLength {
                        expected: special.vocab_size,
                        got: table.len(),
                    });
                }
                Some(_) => {}
            }
        }
        let specials_sorted = special.sorted_distinct();
        if config.scheme == Scheme::Bert && specials_sorted.len() >= special.vocab_size {
            return Err(Error::NoRandomToken);
        }
        // Kept only when used: its presence is what selects whole-word choice.
        let is_continuation = is_continuation.filter(|_| config.whole_word);
        Ok(Self {
            config,
            special,
            is_continuation,
            specials_sorted,
        })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &MaskingConfig {
        &self.config
    }

    /// The special ids.
    #[must_use]
    pub fn special(&self) -> &SpecialIds {
        &self.special
    }

    /// Masks one batch of `batch` rows of `seq` tokens.
    ///
    /// `input_ids` and `attention_mask` are flat, row-major `[batch * seq]` buffers; the attention
    /// mask holds 1 for real tokens and 0 for padding. See [`Masker`] for the procedure.
    ///
    /// # Errors
    /// [`Error::ShapeOverflow`] when `batch * seq` does not fit in `u32`;
    /// [`Error::LengthMismatch`] when a buffer is not `batch * seq` long;
    /// [`Error::SequenceTooLong`] when `seq > max_seq_len`; [`Error::TokenOutOfVocab`] for an id
    /// not below `vocab_size`; [`Error::InvalidAttentionMask`] for a mask value other than 0 or 1.
    pub fn mask<R: Rng + ?Sized>(
        &self,
        input_ids: &[u32],
        attention_mask: &[u32],
        batch: usize,
        seq: usize,
        rng: &mut R,
    ) -> Result<MaskedBatch> {
        self.mask_by_row(input_ids, attention_mask, batch, seq, &mut One(rng))
    }

    /// [`Masker::mask`] with one random stream per row: row `r` draws only from `rngs[r]`, so a
    /// row's masking does not depend on which other rows share its batch (data-parallel ranks
    /// and batch chunks see the same masks as one whole batch).
    ///
    /// # Errors
    /// As [`Masker::mask`], and [`Error::LengthMismatch`] when `rngs` does not have `batch`
    /// streams.
    pub fn mask_rows<R: Rng>(
        &self,
        input_ids: &[u32],
        attention_mask: &[u32],
        batch: usize,
        seq: usize,
        rngs: &mut [R],
    ) -> Result<MaskedBatch> {
        if rngs.len() != batch {
            return Err(Error::LengthMismatch { name: "rngs", got: rngs.len(), expected: batch });
        }
        self.mask_by_row(input_ids, attention_mask, batch, seq, &mut Many(rngs))
    }

    fn mask_by_row<S: RowStreams>(
        &self,
        input_ids: &[u32],
        attention_mask: &[u32],
        batch: usize,
        seq: usize,
        streams: &mut S,
    ) -> Result<MaskedBatch> {
        self.check_inputs(input_ids, attention_mask, batch, seq)?;

        let mut corrupted = input_ids.to_vec();
        let mut positions = Vec::new();
        let mut targets = Vec::new();
        let mut chosen = Vec::new();
        for row in 0..batch {
            let rng = streams.row(row);
            let start = row * seq;
            let ids = &input_ids[start..start + seq];
            let mask = &attention_mask[start..start + seq];
            self.choose_row(ids, mask, rng, &mut chosen);
            for &col in &chosen {
                let flat = start + col;
                let original = input_ids[flat];
                // `check_inputs` ensured batch * seq <= u32::MAX.
                positions.push(flat as u32);
                targets.push(original);
                corrupted[flat] = self.corrupt(original, rng);
            }
        }
        tracing::debug!(batch, seq, predictions = positions.len(), "masked a batch");
        Ok(MaskedBatch {
            input_ids: corrupted,
            positions,
            targets,
            batch,
            seq,
        })
    }

    fn check_inputs(
        &self,
        input_ids: &[u32],
        attention_mask: &[u32],
        batch: usize,
        seq: usize,
    ) -> Result<()> {
        let total = batch
            .checked_mul(seq)
            .filter(|&total| total <= u32::MAX as usize)
            .ok_or(Error::ShapeOverflow { batch, seq })?;
        for (name, len) in [
            ("input_ids", input_ids.len()),
            ("attention_mask", attention_mask.len()),
        ] {
            if len != total {
                return Err(Error::LengthMismatch {
                    name,
                    expected: total,
                    got: len,
                });
            }
        }
        if seq > self.config.max_seq_len {
            return Err(Error::SequenceTooLong {
                seq,
                max_seq_len: self.config.max_seq_len,
            });
        }
        let vocab_size = self.special.vocab_size;
        if let Some((position, &id)) = input_ids
            .iter()
            .enumerate()
            .find(|&(_, &id)| id as usize >= vocab_size)
        {
            return Err(Error::TokenOutOfVocab {
                id,
                position,
                vocab_size,
            });
        }
        if let Some((position, &value)) = attention_mask
            .iter()
            .enumerate()
            .find(|&(_, &value)| value > 1)
        {
            return Err(Error::InvalidAttentionMask { value, position });
        }
        Ok(())
    }

    /// Fills `chosen` with the row's chosen columns, ascending.
    fn choose_row<R: Rng + ?Sized>(
        &self,
        ids: &[u32],
        mask: &[u32],
        rng: &mut R,
        chosen: &mut Vec<usize>,
    ) {
        chosen.clear();
        let num_real = mask.iter().filter(|&&m| m == 1).count();
        let candidates: Vec<usize> = (0..ids.len())
            .filter(|&col| mask[col] == 1 && !self.special.is_special(ids[col]))
            .collect();
        if candidates.is_empty() {
            return;
        }
        let count = self.config.num_to_predict(num_real).min(candidates.len());
        match &self.is_continuation {
            Some(is_continuation) => {
                let mut units = word_units(ids, &candidates, is_continuation);
                units.shuffle(rng);
                for unit in units {
                    if chosen.len() >= count {
                        break;
                    }
                    if chosen.len() + unit.len() > count {
                        continue;
                    }
                    chosen.extend(candidates[unit].iter().copied());
                }
            }
            None => {
                let picked = rand::seq::index::sample(rng, candidates.len(), count);
                chosen.extend(picked.iter().map(|i| candidates[i]));
            }
        }
        chosen.sort_unstable();
    }

    /// What the generator sees at a chosen position holding `original`.
    fn corrupt<R: Rng + ?Sized>(&self, original: u32, rng: &mut R) -> u32 {
        match self.config.scheme {
            Scheme::Electra => {
                if rng.random::<f64>() < self.config.mask_token_prob {
                    self.special.mask
                } else {
                    original
                }
            }
            Scheme::Bert => {
                let draw = rng.random::<f64>();
                if draw < BERT_MASK_PROB {
                    self.special.mask
                } else if draw < BERT_MASK_PROB + BERT_RANDOM_PROB {
                    self.random_token(rng)
                } else {
                    original
                }
            }
        }
    }

    /// A uniformly random non-special id.
    fn random_token<R: Rng + ?Sized>(&self, rng: &mut R) -> u32 {
        // `new` ensured at least one non-special id exists.
        let non_special = self.special.vocab_size as u64 - self.specials_sorted.len() as u64;
        let mut id = rng.random_range(0..non_special);
        // Map [0, non_special) onto the ids that skip the (ascending) specials.
        for &special in &self.specials_sorted {
            if id >= u64::from(special) {
                id += 1;
            }
        }
        // id < vocab_size <= 2^32.
        id as u32
    }
}

/// Groups the (ascending) candidate columns into words: ranges into `candidates`. A candidate
/// joins the previous unit when it directly follows it and is a `##` continuation.
fn word_units(ids: &[u32], candidates: &[usize], is_continuation: &[bool]) -> Vec<Range<usize>> {
    let mut units: Vec<Range<usize>> = Vec::new();
    for (k, &col) in candidates.iter().enumerate() {
        let continues = k > 0
            && candidates[k - 1] + 1 == col
            && is_continuation
                .get(ids[col] as usize)
                .copied()
                .unwrap_or(false);
        match units.last_mut() {
            Some(unit) if continues => unit.end = k + 1,
            _ => units.push(k..k + 1),
        }
    }
    units
}

#[cfg(test)]
mod tests;

/// The random stream(s) [`Masker`] draws a batch's rows from.
trait RowStreams {
    type R: Rng + ?Sized;
    fn row(&mut self, row: usize) -> &mut Self::R;
}

/// One stream for every row.
struct One<'a, R: Rng + ?Sized>(&'a mut R);

impl<R: Rng + ?Sized> RowStreams for One<'_, R> {
    type R = R;
    fn row(&mut self, _row: usize) -> &mut R {
        self.0
    }
}

/// A stream per row.
struct Many<'a, R: Rng>(&'a mut [R]);

impl<R: Rng> RowStreams for Many<'_, R> {
    type R = R;
    fn row(&mut self, row: usize) -> &mut R {
        &mut self.0[row]
    }
}
