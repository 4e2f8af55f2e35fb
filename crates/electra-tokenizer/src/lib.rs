//! Tokenization and pre-training data for ELECTRA.
//!
//! - [`WordPieceTokenizer`]: BERT's uncased WordPiece pipeline on the `tokenizers` crate,
//!   loaded from a `vocab.txt`, a `tokenizer.json` or a model directory, checked against
//!   HuggingFace's Python `BertTokenizer` by a fixture (`tests/fixtures/`).
//! - [`packing`]: the reference ELECTRA example builder (`[CLS] A [SEP] (B [SEP])`), draw for
//!   draw the same as the reference Python for a seed.
//! - [`corpus`]: finding corpus files (text and JSON lines, optionally compressed) and reading
//!   them as documents.
//! - [`prepare()`]: the whole corpus to memory-mappable shards plus a `manifest.json`,
//!   on all cores, resumable; [`ShardReader`] reads them back.
//! - [`train_vocab`]: a new WordPiece vocabulary from a corpus.
//!
//! Architecture invariants: this crate does not depend on burn; it never prints (it logs with
//! `tracing` and reports progress through [`PrepareProgress`]); its output is deterministic for
//! a seed and independent of the number of threads.
//!
//! ```
//! use electra_tokenizer::{NormalizerOptions, Result, WordPieceTokenizer};
//!
//! fn main() -> Result<()> {
//!     // Usually `WordPieceTokenizer::from_dir("a/model/dir")?` (vocab.txt or tokenizer.json);
//!     // here a vocabulary of a few words, BERT uncased.
//!     let vocab: Vec<String> = "[PAD] [UNK] [CLS] [SEP] [MASK] the whale , at last ! a question passage"
//!         .split(' ')
//!         .map(String::from)
//!         .collect();
//!     let tok = WordPieceTokenizer::from_tokens(&vocab, NormalizerOptions::UNCASED, std::path::Path::new("vocab"))?;
//!     let enc = tok.encode("The whale, at last!")?;
//!     assert_eq!(enc.tokens, ["the", "whale", ",", "at", "last", "!"]);
//!     let input = tok.encode_pair("a question", Some("a passage"), 128)?;
//!     assert_eq!(input.input_ids[0], tok.special_tokens().cls);
//!     assert_eq!(input.token_type_ids.iter().filter(|&&t| t == 1).count(), 3);
//!     Ok(())
//! }
//! ```

pub mod cancel;
pub mod corpus;
pub mod dataset;
mod error;
mod fast;
pub mod packing;
pub mod prepare;
mod pyrandom;
mod tokenizer;
pub mod vocab;

pub use cancel::Cancel;
pub use dataset::{Dtype, Manifest, PrepareSettings, ShardInfo, ShardReader, Split, SplitCounts};
pub use error::{Error, Result};
pub use packing::{Example, ExampleBuilder};
pub use prepare::{NoProgress, PrepareConfig, PrepareProgress, prepare, prepare_until, prepare_with_tokenizer};
pub use pyrandom::PyRandom;
pub use tokenizer::{
    CONTINUING_SUBWORD_PREFIX, Encoding, MAX_INPUT_CHARS_PER_WORD, ModelInput, NormalizerOptions,
    SPECIAL_TOKEN_STRINGS, SpecialTokens, WordPieceTokenizer, read_vocab_txt,
    truncate_longest_first,
};
pub use vocab::{VocabTrainingConfig, train_vocab, train_vocab_with, write_vocab_txt};

/// The README's example, compiled (and run where it needs no files) as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
