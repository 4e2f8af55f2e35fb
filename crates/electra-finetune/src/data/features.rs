//! Model inputs for sequence classification / regression and for token tagging.

use electra_tokenizer::{ModelInput, WordPieceTokenizer};

use super::{Label, TaggedSentence, TextExample};
use crate::{Error, Result};

/// Sentences whose words go to one call of the tokenizer's parallel batch encoder (tagging).
const TAGGING_SENTENCES_PER_BATCH: usize = 64;

/// One sequence(-pair) input with its label.
#[derive(Debug, Clone, PartialEq)]
pub struct TextFeature {
    /// `[CLS] a [SEP] (b [SEP])`, unpadded.
    pub input: ModelInput,
    /// The example's label (`None` when unlabelled).
    pub label: Option<Label>,
}

/// Tokenizes examples into `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]`, truncated to `max_len`
/// tokens with the "longest first" rule ([`WordPieceTokenizer::build_inputs`]). Output order is
/// input order.
///
/// # Errors
/// `max_len` is too small for the special tokens; tokenization failures.
pub fn text_features(
    tokenizer: &WordPieceTokenizer,
    examples: &[TextExample],
    max_len: usize,
) -> Result<Vec<TextFeature>> {
    // `encode_pair` takes the tokenizer's fast WordPiece path (ids only, exact by construction),
    // about 20x the throughput of the batch encoder that also builds token strings and offsets.
    examples
        .iter()
        .map(|example| {
            let input = tokenizer.encode_pair(&example.text_a, example.text_b.as_deref(), max_len)?;
            Ok(TextFeature { input, label: example.label })
        })
        .collect()
}

/// One tagged sentence as model input, labelled on each word's first sub-word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggingFeature {
    /// `[CLS] sub-words [SEP]`, token types all 0, at most `max_len` tokens.
    pub input: ModelInput,
    /// One entry per input position: the word's label on its first sub-word, `None` on
    /// `[CLS]`, `[SEP]` and continuation sub-words.
    pub labels: Vec<Option<usize>>,
    /// For each word of the sentence: the input position of its first sub-word, `None` when
    /// truncation cut the word off.
    pub word_starts: Vec<Option<usize>>,
}

/// Converts tagged sentences to inputs with first-sub-word labelling: each word is tokenized on
/// its own; a word that gives no token (only control characters) becomes `[UNK]` so that every
/// word has a position; sub-words beyond `max_len - 2` are cut (words cut entirely get no
/// position in [`TaggingFeature::word_starts`]).
///
/// # Errors
/// `max_len` < 3; tokenization failures.
pub fn tagging_features(
    tokenizer: &WordPieceTokenizer,
    sentences: &[TaggedSentence],
    max_len: usize,
) -> Result<Vec<TaggingFeature>> {
    if max_len < 3 {
        return Err(Error::Invalid(format!(
            "tagging max_len {max_len} leaves no room for a word between [CLS] and [SEP]"
        )));
    }
    let special = tokenizer.special_tokens();
    let mut out = Vec::with_capacity(sentences.len());
    let mut truncated = 0usize;
    for chunk in sentences.chunks(TAGGING_SENTENCES_PER_BATCH) {
        let words: Vec<&str> = chunk
            .iter()
            .flat_map(|s| s.words.iter().map(String::as_str))
            .collect();
        let mut encodings = tokenizer.encode_batch(&words)?.into_iter();
        for sentence in chunk {
            if sentence.words.len() != sentence.labels.len() {
                return Err(Error::Invalid(format!(
                    "{}: {} words but {} labels",
                    sentence.location,
                    sentence.words.len(),
                    sentence.labels.len()
                )));
            }
            let mut ids = vec![special.cls];
            let mut labels = vec![None];
            let mut word_starts = Vec::with_capacity(sentence.words.len());
            for &label in &sentence.labels {
                let mut pieces = encodings.next().map(|e| e.ids).unwrap_or_default();
                if pieces.is_empty() {
                    pieces.push(special.unk);
                }
                let room = (max_len - 1).saturating_sub(ids.len());
                if room == 0 {
                    word_starts.push(None);
                    continue;
                }
                word_starts.push(Some(ids.len()));
                for (k, &piece) in pieces.iter().take(room).enumerate() {
                    ids.push(piece);
                    labels.push((k == 0).then_some(label));
                }
            }
            if word_starts.iter().any(Option::is_none) {
                truncated += 1;
            }
            ids.push(special.sep);
            labels.push(None);
            let token_type_ids = vec![0; ids.len()];
            out.push(TaggingFeature {
                input: ModelInput {
                    input_ids: ids,
                    token_type_ids,
                },
                labels,
                word_starts,
            });
        }
    }
    if truncated > 0 {
        tracing::warn!(
            truncated,
            max_len,
            "sentences cut to max_len; their last words get the fallback label"
        );
    }
    Ok(out)
}

/// Word-level predictions from per-position predictions: each word takes the prediction at its
/// first sub-word; words cut off by truncation (or beyond `token_predictions`) take `fallback`
/// (normally the `"O"` label).
pub fn word_predictions(
    feature: &TaggingFeature,
    token_predictions: &[usize],
    fallback: usize,
) -> Vec<usize> {
    feature
        .word_starts
        .iter()
        .map(|p| {
            p.and_then(|p| token_predictions.get(p).copied())
                .unwrap_or(fallback)
        })
        .collect()
}
