//! SQuAD v1.1 and v2.0: reading the JSON, windowed features for the span head, and turning
//! start/end logits back into answer texts.
//!
//! Features follow BERT's `run_squad.py` / `transformers`' `squad.py`: `[CLS] question [SEP]
//! context-window [SEP]`, the question cut to `max_query_len` tokens, windows of the context
//! starting every `doc_stride` tokens, the answer's start/end token positions (0 = `[CLS]` when
//! the answer is not inside the window or the question is unanswerable). Unlike the reference,
//! answers are mapped through the tokenizer's byte offsets into the original context, so a
//! predicted span is an exact slice of the context.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use electra_tokenizer::{Encoding, ModelInput, WordPieceTokenizer};
use serde::Deserialize;

use super::io::read_bytes;
use crate::{Error, Result};

/// One gold answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SquadAnswer {
    /// The answer text.
    pub text: String,
    /// `answer_start` as in the file: a character (code point) offset into the context.
    pub char_start: usize,
    /// Byte range of the answer in the context, when the text was found there (at
    /// `char_start`, or else at its nearest occurrence).
    pub span: Option<(usize, usize)>,
}

/// One question on a context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SquadExample {
    /// The question id (`qas[].id`).
    pub id: String,
    /// The article title.
    pub title: String,
    /// The question.
    pub question: String,
    /// The paragraph (shared by the questions on it).
    pub context: Arc<str>,
    /// Gold answers (training files have one; dev files several; none when impossible).
    pub answers: Vec<SquadAnswer>,
    /// SQuAD 2.0: the question has no answer in the context.
    pub is_impossible: bool,
}

impl SquadExample {
    /// The first answer's byte range in the context, if it has one that was found.
    pub fn answer_span(&self) -> Option<(usize, usize)> {
        self.answers.first().and_then(|a| a.span)
    }
}

#[derive(Deserialize)]
struct FileJson {
    data: Vec<ArticleJson>,
}

#[derive(Deserialize)]
struct ArticleJson {
    #[serde(default)]
    title: String,
    paragraphs: Vec<ParagraphJson>,
}

#[derive(Deserialize)]
struct ParagraphJson {
    context: String,
    qas: Vec<QaJson>,
}

#[derive(Deserialize)]
struct QaJson {
    id: String,
    question: String,
    #[serde(default)]
    answers: Vec<AnswerJson>,
    #[serde(default)]
    is_impossible: bool,
}

#[derive(Deserialize)]
struct AnswerJson {
    text: String,
    answer_start: usize,
}

/// Byte offset of character `char_index` in `text` (the length for one past the end).
fn char_to_byte(text: &str, char_index: usize) -> Option<usize> {
    text.char_indices()
        .map(|(b, _)| b)
        .chain(std::iter::once(text.len()))
        .nth(char_index)
}

/// Where `answer` is in `context`: at `char_start`, or at the occurrence nearest to it.
fn locate(context: &str, answer: &str, char_start: usize) -> (Option<(usize, usize)>, bool) {
    if answer.is_empty() {
        return (None, false);
    }
    let at = char_to_byte(context, char_start);
    if let Some(b) = at
        && context[b..].starts_with(answer)
    {
        return (Some((b, b + answer.len())), true);
    }
    let target = at.unwrap_or(context.len());
    let nearest = context
        .match_indices(answer)
        .map(|(b, _)| b)
        .min_by_key(|b| b.abs_diff(target));
    (nearest.map(|b| (b, b + answer.len())), false)
}

/// Reads a SQuAD v1.1 or v2.0 file (`data[].paragraphs[].context / qas[].id, question,
/// answers[{text, answer_start}], is_impossible`).
///
/// An answer whose text is not at its `answer_start` is looked up at its nearest occurrence in
/// the context; answers not found at all keep `span: None`. Both are counted in a warning.
///
/// # Errors
/// Unreadable file, malformed JSON or a missing field (with line and column), a duplicate
/// question id, or no question at all.
pub fn read_squad(path: &Path) -> Result<Vec<SquadExample>> {
    let bytes = read_bytes(path)?;
    let file: FileJson = serde_json::from_slice(&bytes).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    let mut examples = Vec::new();
    let mut ids = HashSet::new();
    let (mut moved, mut missing) = (0usize, 0usize);
    for article in file.data {
        for paragraph in article.paragraphs {
            let context: Arc<str> = Arc::from(paragraph.context);
            for qa in paragraph.qas {
                if !ids.insert(qa.id.clone()) {
                    return Err(Error::Invalid(format!(
                        "{}: duplicate question id {:?}",
                        path.display(),
                        qa.id
                    )));
                }
                let answers = qa
                    .answers
                    .into_iter()
                    .map(|a| {
                        let (span, exact) = locate(&context, &a.text, a.answer_start);
                        if span.is_none() {
                            missing += 1;
                            tracing::debug!(id = %qa.id, answer = %a.text, "answer text not in context");
                        } else if !exact {
                            moved += 1;
                        }
                        SquadAnswer {
                            text: a.text,
                            char_start: a.answer_start,
                            span,
                        }
                    })
                    .collect();
                examples.push(SquadExample {
                    id: qa.id,
                    title: article.title.clone(),
                    question: qa.question,
                    context: Arc::clone(&context),
                    answers,
                    is_impossible: qa.is_impossible,
                });
            }
        }
    }
    if examples.is_empty() {
        return Err(Error::EmptySplit {
            path: path.to_path_buf(),
            split: "question".to_owned(),
        });
    }
    if moved + missing > 0 {
        tracing::warn!(
            path = %path.display(),
            moved,
            missing,
            "answers not at their answer_start (moved to the nearest occurrence, or not found)"
        );
    }
    Ok(examples)
}

/// Window settings for [`squad_features`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SquadConfig {
    /// Tokens per feature, special tokens included (default 384).
    pub max_seq_len: usize,
    /// Tokens between the starts of consecutive context windows (default 128).
    pub doc_stride: usize,
    /// Question tokens kept (default 64).
    pub max_query_len: usize,
}

impl Default for SquadConfig {
    fn default() -> Self {
        Self {
            max_seq_len: 384,
            doc_stride: 128,
            max_query_len: 64,
        }
    }
}

/// One window of one example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SquadFeature {
    /// Index of the example in the slice given to [`squad_features`].
    pub example_index: usize,
    /// `[CLS] question [SEP] window [SEP]` and its token types (0, then 1 from the window on).
    pub input: ModelInput,
    /// For each input position: the byte range in the context of a window token, else `None`.
    pub context_spans: Vec<Option<(usize, usize)>>,
    /// For each input position: whether this window gives the token its most context (BERT's
    /// rule); only such positions may start a predicted answer.
    pub max_context: Vec<bool>,
    /// Answer start position (0: no answer in this window).
    pub start_position: usize,
    /// Answer end position, inclusive (0: no answer in this window).
    pub end_position: usize,
}

/// Token range `(first, last)` of the tokens overlapping the byte range `span`.
fn token_range(enc: &Encoding, span: (usize, usize)) -> Option<(usize, usize)> {
    let first = enc.offsets.iter().position(|&(_, e)| e > span.0)?;
    let last = enc.offsets.iter().rposition(|&(s, _)| s < span.1)?;
    (first <= last).then_some((first, last))
}

/// Whether window `current` gives token `pos` its maximum context (BERT's
/// `_check_is_max_context`: the larger of min(left, right) context + 0.01 × window length; the
/// first window wins ties).
fn is_max_context(windows: &[(usize, usize)], current: usize, pos: usize) -> bool {
    let mut best: Option<(usize, f64)> = None;
    for (i, &(start, len)) in windows.iter().enumerate() {
        if len == 0 || pos < start || pos >= start + len {
            continue;
        }
        let end = start + len - 1;
        let score = (pos - start).min(end - pos) as f64 + 0.01 * len as f64;
        if best.is_none_or(|(_, s)| score > s) {
            best = Some((i, score));
        }
    }
    best.is_some_and(|(i, _)| i == current)
}

/// Converts examples to windowed features.
///
/// With `training`, examples with an answer that could not be found in the context are left
/// out (counted in a warning), as `transformers` does; positions use the first answer. Every
/// other example gives at least one feature.
///
/// # Errors
/// `doc_stride` is 0, or `max_seq_len` leaves no room for the context after the question and 3
/// special tokens; tokenization failures.
pub fn squad_features(
    tokenizer: &WordPieceTokenizer,
    examples: &[SquadExample],
    config: &SquadConfig,
    training: bool,
) -> Result<Vec<SquadFeature>> {
    if config.doc_stride == 0 {
        return Err(Error::Invalid("squad doc_stride must be at least 1".into()));
    }
    let mut features = Vec::new();
    let mut cached: Option<(Arc<str>, Encoding)> = None;
    let mut skipped = 0usize;
    for (example_index, ex) in examples.iter().enumerate() {
        let answerable = !ex.is_impossible && !ex.answers.is_empty();
        if training && answerable && ex.answer_span().is_none() {
            skipped += 1;
            continue;
        }
        let mut question = tokenizer.encode_ids(&ex.question)?;
        question.truncate(config.max_query_len);
        let room = config
            .max_seq_len
            .checked_sub(question.len() + 3)
            .filter(|r| *r > 0)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "squad max_seq_len {} leaves no room for the context after a {}-token question",
                    config.max_seq_len,
                    question.len()
                ))
            })?;
        let context = match &cached {
            Some((ctx, enc)) if Arc::ptr_eq(ctx, &ex.context) => enc,
            _ => {
                let enc = tokenizer.encode(&ex.context)?;
                &cached.insert((Arc::clone(&ex.context), enc)).1
            }
        };
        let n = context.len();
        let mut windows = Vec::new();
        let mut start = 0usize;
        loop {
            let len = (n - start).min(room);
            windows.push((start, len));
            if start + len >= n {
                break;
            }
            start += len.min(config.doc_stride);
        }
        let answer = if answerable {
            ex.answer_span().and_then(|span| token_range(context, span))
        } else {
            None
        };
        let offset = question.len() + 2;
        for (w, &(start, len)) in windows.iter().enumerate() {
            let input = tokenizer.build_inputs(
                &question,
                Some(&context.ids[start..start + len]),
                config.max_seq_len,
            )?;
            let total = input.len();
            let mut context_spans = vec![None; total];
            let mut max_context = vec![false; total];
            for i in 0..len {
                context_spans[offset + i] = Some(context.offsets[start + i]);
                max_context[offset + i] = is_max_context(&windows, w, start + i);
            }
            let (start_position, end_position) = match answer {
                Some((a, b)) if a >= start && b < start + len => {
                    (a - start + offset, b - start + offset)
                }
                _ => (0, 0),
            };
            features.push(SquadFeature {
                example_index,
                input,
                context_spans,
                max_context,
                start_position,
                end_position,
            });
        }
    }
    if skipped > 0 {
        tracing::warn!(
            skipped,
            "training examples without a locatable answer left out"
        );
    }
    Ok(features)
}

/// Settings for [`squad_predictions`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SquadPostConfig {
    /// Candidates kept per start and end (default 20).
    pub n_best: usize,
    /// Longest answer in tokens (default 30).
    pub max_answer_len: usize,
    /// SQuAD 2.0: answer `""` when the null score minus the best span's score exceeds
    /// `null_threshold` (default 0).
    pub null_threshold: f32,
    /// SQuAD 2.0 mode (null answers allowed).
    pub version_2: bool,
}

impl Default for SquadPostConfig {
    fn default() -> Self {
        Self {
            n_best: 20,
            max_answer_len: 30,
            null_threshold: 0.0,
            version_2: false,
        }
    }
}

/// Indices of the `n` largest values, largest first (ties in index order).
fn top_indices(values: &[f32], n: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    idx.truncate(n);
    idx
}

/// Turns per-feature start/end logits into one answer per question id.
///
/// For every feature, the `n_best` best starts and ends are paired; a pair counts when both are
/// context tokens, the start has its maximum context in this window, end ≥ start and the span
/// has at most `max_answer_len` tokens. The best pair over all of an example's features (by
/// start + end logit) gives the answer, sliced from the original context. In SQuAD 2.0 mode
/// the null score is the smallest `start[0] + end[0]` over the features, and `""` is answered
/// when `null - best > null_threshold`; an example with no valid pair answers `""`.
///
/// `start_logits[i]` and `end_logits[i]` belong to `features[i]` and must cover at least its
/// input length (longer, padded rows are fine).
///
/// # Errors
/// The logits do not match the features in number or length, or a feature names an example
/// outside `examples`.
pub fn squad_predictions<S: AsRef<[f32]>>(
    examples: &[SquadExample],
    features: &[SquadFeature],
    start_logits: &[S],
    end_logits: &[S],
    config: &SquadPostConfig,
) -> Result<BTreeMap<String, String>> {
    if start_logits.len() != features.len() || end_logits.len() != features.len() {
        return Err(Error::Invalid(format!(
            "squad predictions: {} features but {} start and {} end logit rows",
            features.len(),
            start_logits.len(),
            end_logits.len()
        )));
    }
    let mut by_example: Vec<Vec<usize>> = vec![Vec::new(); examples.len()];
    for (i, f) in features.iter().enumerate() {
        let n = f.input.len();
        if n == 0 || f.context_spans.len() != n || f.max_context.len() != n {
            return Err(Error::Invalid(format!(
                "squad predictions: feature {i} has {n} tokens, {} context spans and {} max-context flags",
                f.context_spans.len(),
                f.max_context.len()
            )));
        }
        if start_logits[i].as_ref().len() < n || end_logits[i].as_ref().len() < n {
            return Err(Error::Invalid(format!(
                "squad predictions: feature {i} has {n} tokens but {} start and {} end logits",
                start_logits[i].as_ref().len(),
                end_logits[i].as_ref().len()
            )));
        }
        by_example
            .get_mut(f.example_index)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "squad predictions: feature {i} names example {} of {}",
                    f.example_index,
                    examples.len()
                ))
            })?
            .push(i);
    }
    let mut predictions = BTreeMap::new();
    for (example, feature_ids) in examples.iter().zip(&by_example) {
        let mut null_score = f32::INFINITY;
        // (score, feature, start, end)
        let mut best: Option<(f32, usize, usize, usize)> = None;
        for &fi in feature_ids {
            let f = &features[fi];
            let n = f.input.len();
            let start = &start_logits[fi].as_ref()[..n];
            let end = &end_logits[fi].as_ref()[..n];
            null_score = null_score.min(start[0] + end[0]);
            let ends = top_indices(end, config.n_best);
            for s in top_indices(start, config.n_best) {
                if f.context_spans[s].is_none() || !f.max_context[s] {
                    continue;
                }
                for &e in &ends {
                    if f.context_spans[e].is_none() || e < s || e - s + 1 > config.max_answer_len {
                        continue;
                    }
                    let score = start[s] + end[e];
                    // strictly greater: the first of equal candidates wins, as a stable sort does
                    if best.is_none_or(|(b, ..)| score > b) {
                        best = Some((score, fi, s, e));
                    }
                }
            }
        }
        let text = match best {
            Some((score, fi, s, e))
                if !(config.version_2 && null_score - score > config.null_threshold) =>
            {
                let f = &features[fi];
                match (f.context_spans[s], f.context_spans[e]) {
                    (Some((a, _)), Some((_, b))) => {
                        example.context.get(a..b).unwrap_or("").to_owned()
                    }
                    _ => String::new(),
                }
            }
            _ => String::new(),
        };
        predictions.insert(example.id.clone(), text);
    }
    Ok(predictions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_offsets_become_byte_offsets() {
        let ctx = "Zoë went to Köln.";
        assert_eq!(locate(ctx, "Köln", 12), (Some((13, 18)), true));
        // wrong answer_start: nearest occurrence
        assert_eq!(locate(ctx, "Köln", 2), (Some((13, 18)), false));
        assert_eq!(locate(ctx, "Paris", 0), (None, false));
        assert_eq!(char_to_byte(ctx, 17), Some(ctx.len()));
        assert_eq!(char_to_byte(ctx, 18), None);
    }

    #[test]
    fn max_context_prefers_the_centred_window() {
        // windows of 4 tokens every 2: [0,4) [2,6) [4,8)
        let w = [(0, 4), (2, 4), (4, 4)];
        assert!(is_max_context(&w, 0, 0));
        assert!(is_max_context(&w, 0, 1));
        // token 2: window 0 min(2,1)=1, window 1 min(0,3)=0 -> window 0
        assert!(is_max_context(&w, 0, 2));
        assert!(!is_max_context(&w, 1, 2));
        // token 3: window 0 min(3,0)=0, window 1 min(1,2)=1 -> window 1
        assert!(is_max_context(&w, 1, 3));
        assert!(!is_max_context(&w, 0, 3));
    }

    #[test]
    fn top_indices_are_stable() {
        assert_eq!(top_indices(&[1.0, 3.0, 3.0, 0.5], 3), vec![1, 2, 0]);
    }
}
