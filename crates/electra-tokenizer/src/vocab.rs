//! Training a WordPiece vocabulary on a corpus with the `tokenizers` crate's trainer.
//!
//! The trainer is the one behind HuggingFace's `BertWordPieceTokenizer.train`: BPE merges over
//! words split by BERT's normaliser and pre-tokenizer, converted to WordPiece with the `##`
//! prefix. The vocabulary starts with the special tokens at fixed ids:
//! `[PAD]` = 0, `[UNK]` = 1, `[CLS]` = 2, `[SEP]` = 3, `[MASK]` = 4 (BERT's released
//! vocabulary has them at 0, 100-103 instead; nothing in this project assumes either layout —
//! ids are always looked up with [`crate::SpecialTokens`]). Then come the single characters,
//! then the merged pieces in merge order.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use tokenizers::models::wordpiece::{WordPiece, WordPieceTrainer};
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper,
    TokenizerImpl,
};

use crate::corpus::{DocumentReader, resolve_inputs};
use crate::error::{Error, Result};
use crate::tokenizer::{NormalizerOptions, SPECIAL_TOKEN_STRINGS, WordPieceTokenizer};

/// Options of [`train_vocab_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VocabTrainingConfig {
    /// Target vocabulary size, special tokens included.
    pub vocab_size: usize,
    /// Normalisation applied before counting words.
    pub normalizer: NormalizerOptions,
    /// Pieces seen fewer times are not merged (HuggingFace's default: 2).
    pub min_frequency: u64,
    /// Keep at most this many distinct characters (HuggingFace's default: 1000).
    pub limit_alphabet: Option<usize>,
    /// Fail on unreadable lines instead of skipping them.
    pub strict: bool,
}

impl VocabTrainingConfig {
    /// HuggingFace `BertWordPieceTokenizer.train` defaults for `vocab_size` entries.
    pub fn new(vocab_size: usize, lowercase: bool) -> Self {
        VocabTrainingConfig {
            vocab_size,
            normalizer: NormalizerOptions {
                lowercase,
                strip_accents: None,
            },
            min_frequency: 2,
            limit_alphabet: Some(1000),
            strict: false,
        }
    }
}

/// Trains a vocabulary of about `vocab_size` entries on `inputs` (files, directories or globs,
/// as in [`crate::corpus::resolve_inputs`]). Returns the tokens in id order.
///
/// # Errors
/// As [`train_vocab_with`].
pub fn train_vocab<P: AsRef<Path>>(
    inputs: &[P],
    vocab_size: usize,
    lowercase: bool,
) -> Result<Vec<String>> {
    train_vocab_with(inputs, &VocabTrainingConfig::new(vocab_size, lowercase))
}

type TrainingTokenizer = TokenizerImpl<
    WordPiece,
    NormalizerWrapper,
    PreTokenizerWrapper,
    PostProcessorWrapper,
    DecoderWrapper,
>;

/// [`train_vocab`] with every option.
///
/// # Errors
/// [`Error::Config`] for a size smaller than the special tokens; unreadable inputs;
/// [`Error::NoUsableText`] when the corpus has no text.
pub fn train_vocab_with<P: AsRef<Path>>(
    inputs: &[P],
    config: &VocabTrainingConfig,
) -> Result<Vec<String>> {
    if config.vocab_size <= SPECIAL_TOKEN_STRINGS.len() {
        return Err(Error::Config(format!(
            "vocab_size must exceed the {} special tokens, got {}",
            SPECIAL_TOKEN_STRINGS.len(),
            config.vocab_size
        )));
    }
    let files = resolve_inputs(inputs)?;
    let names = files
        .iter()
        .map(|f| f.path.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let mut trainer = WordPieceTrainer::builder()
        .vocab_size(config.vocab_size)
        .min_frequency(config.min_frequency)
        .show_progress(false)
        .special_tokens(
            SPECIAL_TOKEN_STRINGS
                .iter()
                .map(|t| AddedToken::from(*t, true))
                .collect(),
        )
        .continuing_subword_prefix(crate::tokenizer::CONTINUING_SUBWORD_PREFIX.to_owned())
        .build();
    if let Some(limit) = config.limit_alphabet {
        trainer.set_limit_alphabet(Some(limit));
    }
    let mut tk: TrainingTokenizer = TokenizerImpl::new(WordPiece::default());
    tk.with_normalizer(Some(tokenizers::normalizers::bert::BertNormalizer::new(
        true,
        true,
        config.normalizer.strip_accents,
        config.normalizer.lowercase,
    )))
    .with_pre_tokenizer(Some(tokenizers::pre_tokenizers::bert::BertPreTokenizer));

    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let mut reader = DocumentReader::new(files, config.strict);
    let mut lines_seen = 0u64;
    {
        let lines = std::iter::from_fn(|| match reader.next_document() {
            Ok(Some(doc)) => Some(doc.lines),
            Ok(None) => None,
            Err(e) => {
                if let Ok(mut slot) = first_error.lock() {
                    slot.get_or_insert(e);
                }
                None
            }
        })
        .flatten()
        .inspect(|_| lines_seen += 1);
        tk.train(&mut trainer, lines)
            .map_err(|e| Error::tokenizer(None, e))?;
    }
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e);
    }
    if lines_seen == 0 {
        return Err(Error::NoUsableText(names));
    }
    let model = tk.get_model();
    let vocab = tokenizers::Model::get_vocab(model);
    let mut tokens = vec![String::new(); vocab.len()];
    for (token, id) in vocab {
        match tokens.get_mut(id as usize) {
            Some(slot) => *slot = token,
            None => {
                return Err(Error::Internal(format!(
                    "trained vocabulary has a gap before id {id}"
                )));
            }
        }
    }
    for (i, special) in SPECIAL_TOKEN_STRINGS.iter().enumerate() {
        if tokens.get(i).map(String::as_str) != Some(*special) {
            return Err(Error::Internal(format!(
                "trained vocabulary has {:?} at id {i}, expected {special}",
                tokens.get(i)
            )));
        }
    }
    // Validate (no empty or duplicate entry) by building a tokenizer from it.
    WordPieceTokenizer::from_tokens(
        &tokens,
        config.normalizer,
        Path::new("<trained vocabulary>"),
    )?;
    tracing::info!(
        size = tokens.len(),
        lines = lines_seen,
        "trained a wordpiece vocabulary"
    );
    Ok(tokens)
}

/// Writes `tokens` as a `vocab.txt` (one per line, in id order).
///
/// # Errors
/// I/O errors; [`Error::Config`] for a token containing a line break.
pub fn write_vocab_txt(path: &Path, tokens: &[String]) -> Result<()> {
    let mut out = Vec::with_capacity(tokens.len() * 8);
    for (i, t) in tokens.iter().enumerate() {
        if t.contains(['\n', '\r']) {
            return Err(Error::Config(format!("token {i} contains a line break")));
        }
        out.extend_from_slice(t.as_bytes());
        out.push(b'\n');
    }
    let mut f = std::fs::File::create(path).map_err(|e| Error::io("failed to create", path, e))?;
    f.write_all(&out)
        .map_err(|e| Error::io("failed to write", path, e))
}
