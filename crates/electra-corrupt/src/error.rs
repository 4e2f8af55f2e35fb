//! The crate's error type.

/// Everything that can go wrong while corrupting a batch.
///
/// Every variant describes bad input (a configuration or a buffer that does not fit); the crate
/// never panics on such input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// `mask_prob` is not in the open interval (0, 1).
    #[error("mask_prob must lie in (0, 1), got {0}")]
    InvalidMaskProb(f64),
    /// `mask_token_prob` is not in the closed interval [0, 1].
    #[error("mask_token_prob must lie in [0, 1], got {0}")]
    InvalidMaskTokenProb(f64),
    /// `max_seq_len` is zero.
    #[error("max_seq_len must be at least 1")]
    ZeroMaxSeqLen,
    /// The vocabulary is empty or has more ids than fit in a `u32`.
    #[error("vocab_size must lie in [1, 2^32], got {0}")]
    InvalidVocabSize(usize),
    /// A special token id is not below `vocab_size`.
    #[error("special token {name} has id {id}, outside the vocabulary of {vocab_size} tokens")]
    SpecialIdOutOfVocab {
        /// Which special token (`pad`, `cls`, `sep` or `mask`).
        name: &'static str,
        /// Its id.
        id: u32,
        /// The vocabulary size.
        vocab_size: usize,
    },
    /// The BERT scheme needs a non-special token to draw random replacements from.
    #[error("the bert scheme needs at least one non-special token in the vocabulary")]
    NoRandomToken,
    /// Whole-word masking was asked for without a continuation table.
    #[error("whole-word masking needs the per-token continuation table")]
    MissingContinuationTable,
    /// The continuation table does not have one entry per vocabulary id.
    #[error("continuation table has {got} entries, expected vocab_size = {expected}")]
    ContinuationTableLength {
        /// `vocab_size`.
        expected: usize,
        /// The table's length.
        got: usize,
    },
    /// `batch * seq` overflows, or does not fit in the `u32` flat positions.
    #[error("batch {batch} x seq {seq} does not fit in u32 flat positions")]
    ShapeOverflow {
        /// Rows.
        batch: usize,
        /// Columns.
        seq: usize,
    },
    /// A buffer's length is not `batch * seq`.
    #[error("{name} has {got} elements, expected batch * seq = {expected}")]
    LengthMismatch {
        /// Which buffer.
        name: &'static str,
        /// `batch * seq`.
        expected: usize,
        /// Its length.
        got: usize,
    },
    /// The batch's sequence length exceeds the configured `max_seq_len`.
    #[error("sequence length {seq} exceeds max_seq_len {max_seq_len}")]
    SequenceTooLong {
        /// The batch's sequence length.
        seq: usize,
        /// The configured maximum.
        max_seq_len: usize,
    },
    /// An input id is not below `vocab_size`.
    #[error(
        "token id {id} at flat position {position} is outside the vocabulary of {vocab_size} tokens"
    )]
    TokenOutOfVocab {
        /// The offending id.
        id: u32,
        /// Its flat (row-major) position.
        position: usize,
        /// The vocabulary size.
        vocab_size: usize,
    },
    /// An attention-mask entry is neither 0 nor 1.
    #[error("attention mask value {value} at flat position {position} is not 0 or 1")]
    InvalidAttentionMask {
        /// The offending value.
        value: u32,
        /// Its flat (row-major) position.
        position: usize,
    },
    /// `positions` and `samples` differ in length.
    #[error("positions has {positions} entries but samples has {samples}")]
    PositionsSamplesMismatch {
        /// `positions.len()`.
        positions: usize,
        /// `samples.len()`.
        samples: usize,
    },
    /// A position does not index into the id buffer.
    #[error("position {position} is outside the buffer of {len} tokens")]
    PositionOutOfRange {
        /// The offending position.
        position: u32,
        /// The buffer's length.
        len: usize,
    },
    /// The sampling temperature is not a finite positive number.
    #[error("temperature must be finite and positive, got {0}")]
    InvalidTemperature(f64),
    /// The logits have no vocabulary column to sample from.
    #[error("cannot sample from logits with an empty vocabulary dimension")]
    EmptyVocabulary,
    /// A sampled id read back from the device is negative or too large for `u32`.
    #[error("token id {0} read back from the device does not fit in u32")]
    InvalidTokenId(i64),
    /// A row of logits handed to the host sampler is not a distribution (NaN or all -inf).
    #[error("row {row} of the logits has no finite probability mass (NaN or -inf logits)")]
    NonFiniteLogits {
        /// The row.
        row: usize,
    },
    /// The host sampler got a buffer whose length is not a multiple of the vocabulary size.
    #[error("logits buffer of {len} values is not rows x vocab = {vocab}")]
    LogitsShape {
        /// The buffer's length.
        len: usize,
        /// The vocabulary size.
        vocab: usize,
    },
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
