//! CoNLL-style token files (CoNLL-2003: `word POS chunk NER` per line): whitespace-separated
//! columns, the word first and the label last, a blank line ends a sentence, `-DOCSTART-` lines
//! are skipped. Every token line of a file must have the same number of columns.

use std::collections::BTreeSet;
use std::path::Path;

use super::Split;
use super::io::{lines, location, read_bytes};
use crate::{Error, Result};

/// A sentence of words with one label index per word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedSentence {
    /// The words, as in the file.
    pub words: Vec<String>,
    /// Label index (into [`TaggingTask::labels`]) of each word.
    pub labels: Vec<usize>,
    /// `"file:line"` of the first word.
    pub location: String,
}

/// A token-tagging task (NER, chunking, POS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggingTask {
    /// Task name (the train file's directory name).
    pub name: String,
    /// Label names: `"O"` first when present, then the others sorted.
    pub labels: Vec<String>,
    /// Training sentences (never empty).
    pub train: Vec<TaggedSentence>,
    /// Dev sentences (never empty).
    pub dev: Vec<TaggedSentence>,
    /// Test sentences (may be empty).
    pub test: Vec<TaggedSentence>,
}

impl TaggingTask {
    /// Index of the `"O"` label, if the task has one.
    pub fn outside_label(&self) -> Option<usize> {
        self.labels.iter().position(|l| l == "O")
    }
}

/// One sentence as read from a CoNLL file, labels still as strings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConllSentence {
    /// The words (first column).
    pub words: Vec<String>,
    /// The labels (last column).
    pub labels: Vec<String>,
    /// The 1-based line of each word.
    pub lines: Vec<u64>,
}

/// Reads a CoNLL file as sentences of words and label strings.
///
/// # Errors
/// Unreadable file, invalid UTF-8, a token line with fewer than 2 columns or with a different
/// number of columns than the file's first token line (file:line, expected and found).
pub fn read_conll(path: &Path) -> Result<Vec<ConllSentence>> {
    let bytes = read_bytes(path)?;
    let mut sentences = Vec::new();
    let mut current = ConllSentence::default();
    let mut columns: Option<usize> = None;
    for (line, text) in lines(path, &bytes)? {
        let fields: Vec<&str> = text.split_whitespace().collect();
        if fields.is_empty() || fields[0] == "-DOCSTART-" {
            if !current.words.is_empty() {
                sentences.push(std::mem::take(&mut current));
            }
            continue;
        }
        let expected = *columns.get_or_insert(fields.len());
        if fields.len() < 2 || fields.len() != expected {
            return Err(Error::Columns {
                path: path.to_path_buf(),
                line,
                expected: expected.max(2),
                found: fields.len(),
            });
        }
        current.words.push(fields[0].to_owned());
        current.labels.push(fields[fields.len() - 1].to_owned());
        current.lines.push(line);
    }
    if !current.words.is_empty() {
        sentences.push(current);
    }
    Ok(sentences)
}

fn resolve(path: &Path, raw: Vec<ConllSentence>, labels: &[String]) -> Result<Vec<TaggedSentence>> {
    raw.into_iter()
        .map(|s| {
            let ids = s
                .labels
                .iter()
                .zip(&s.lines)
                .map(|(label, &line)| {
                    labels
                        .iter()
                        .position(|l| l == label)
                        .ok_or_else(|| Error::UnknownLabel {
                            path: path.to_path_buf(),
                            line,
                            label: label.clone(),
                            known: labels.to_vec(),
                        })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(TaggedSentence {
                location: location(path, s.lines.first().copied().unwrap_or(0)),
                words: s.words,
                labels: ids,
            })
        })
        .collect()
}

/// Loads a tagging task from CoNLL files. The label set is the training file's (`"O"` first,
/// the rest sorted); a dev or test label outside it is an error.
///
/// # Errors
/// As [`read_conll`], plus an unknown label in dev/test (file:line, label and the known set)
/// and an empty train or dev file.
pub fn load_conll(train: &Path, dev: &Path, test: Option<&Path>) -> Result<TaggingTask> {
    let raw_train = read_conll(train)?;
    if raw_train.is_empty() {
        return Err(Error::EmptySplit {
            path: train.to_path_buf(),
            split: Split::Train.as_str().to_owned(),
        });
    }
    let set: BTreeSet<&str> = raw_train
        .iter()
        .flat_map(|s| s.labels.iter().map(String::as_str))
        .collect();
    let mut labels: Vec<String> = Vec::with_capacity(set.len());
    if set.contains("O") {
        labels.push("O".to_owned());
    }
    labels.extend(set.iter().filter(|l| **l != "O").map(|l| (*l).to_owned()));
    let raw_dev = read_conll(dev)?;
    if raw_dev.is_empty() {
        return Err(Error::EmptySplit {
            path: dev.to_path_buf(),
            split: Split::Dev.as_str().to_owned(),
        });
    }
    let train_sentences = resolve(train, raw_train, &labels)?;
    let dev_sentences = resolve(dev, raw_dev, &labels)?;
    let test_sentences = match test {
        Some(test) => resolve(test, read_conll(test)?, &labels)?,
        None => Vec::new(),
    };
    let name = train
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "conll".to_owned());
    tracing::info!(
        task = %name,
        train = train_sentences.len(),
        dev = dev_sentences.len(),
        test = test_sentences.len(),
        labels = labels.len(),
        "loaded tagging task"
    );
    Ok(TaggingTask {
        name,
        labels,
        train: train_sentences,
        dev: dev_sentences,
        test: test_sentences,
    })
}
