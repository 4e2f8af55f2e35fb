//! GLUE tasks in the layout of the official download (`train.tsv`, `dev.tsv`, `test.tsv`; MNLI
//! `dev_matched.tsv`, `dev_mismatched.tsv`, `test_matched.tsv`, `test_mismatched.tsv`).
//!
//! Columns follow HuggingFace `transformers`' GLUE processors, found by header name (the
//! header is the first line of every file except CoLA's train and dev, which have no header
//! and four columns: source, label, original label, sentence). Files are read without quoting.
//! Test files are read as unlabelled examples when present (a test file that has the label
//! column is read with its labels).

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use super::generic::{RawExample, to_examples};
use super::io::{Row, location, read_tsv};
use super::{Split, TaskKind, TextExample, TextTask};
use crate::metrics::MetricKind;
use crate::{Error, Result};

/// The GLUE tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GlueTask {
    /// CoLA: acceptability, Matthews correlation.
    Cola,
    /// SST-2: sentiment, accuracy.
    Sst2,
    /// MRPC: paraphrase, accuracy and F1.
    Mrpc,
    /// STS-B: similarity score 0-5 (regression), Spearman and Pearson.
    Stsb,
    /// QQP: duplicate questions, accuracy and F1.
    Qqp,
    /// MNLI: entailment, 3 classes; dev = matched, plus mismatched as an extra dev set.
    Mnli,
    /// MNLI evaluated on the mismatched dev (and test) set.
    MnliMismatched,
    /// QNLI: question-answer entailment.
    Qnli,
    /// RTE: entailment.
    Rte,
    /// WNLI: Winograd entailment.
    Wnli,
}

impl GlueTask {
    /// Every task, in the GLUE order.
    pub const ALL: [GlueTask; 10] = [
        GlueTask::Cola,
        GlueTask::Sst2,
        GlueTask::Mrpc,
        GlueTask::Stsb,
        GlueTask::Qqp,
        GlueTask::Mnli,
        GlueTask::MnliMismatched,
        GlueTask::Qnli,
        GlueTask::Rte,
        GlueTask::Wnli,
    ];

    /// Parses a task name, case-insensitively, with `-`/`_` optional: `cola`, `sst-2`/`sst2`,
    /// `mrpc`, `sts-b`/`stsb`, `qqp`, `mnli` (also `mnli-m`), `mnli-mm`, `qnli`, `rte`, `wnli`.
    ///
    /// # Errors
    /// [`Error::UnknownTask`] for any other name.
    pub fn from_name(name: &str) -> Result<Self> {
        let key: String = name
            .trim()
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .collect::<String>()
            .to_ascii_lowercase();
        Ok(match key.as_str() {
            "cola" => GlueTask::Cola,
            "sst2" | "sst" => GlueTask::Sst2,
            "mrpc" => GlueTask::Mrpc,
            "stsb" | "sts" => GlueTask::Stsb,
            "qqp" => GlueTask::Qqp,
            "mnli" | "mnlim" | "mnlimatched" => GlueTask::Mnli,
            "mnlimm" | "mnlimismatched" => GlueTask::MnliMismatched,
            "qnli" => GlueTask::Qnli,
            "rte" => GlueTask::Rte,
            "wnli" => GlueTask::Wnli,
            _ => return Err(Error::UnknownTask(name.to_owned())),
        })
    }

    /// The canonical name (`"sst-2"`, `"mnli-mm"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            GlueTask::Cola => "cola",
            GlueTask::Sst2 => "sst-2",
            GlueTask::Mrpc => "mrpc",
            GlueTask::Stsb => "sts-b",
            GlueTask::Qqp => "qqp",
            GlueTask::Mnli => "mnli",
            GlueTask::MnliMismatched => "mnli-mm",
            GlueTask::Qnli => "qnli",
            GlueTask::Rte => "rte",
            GlueTask::Wnli => "wnli",
        }
    }

    /// Classification with the labels in `transformers`' order, or regression (STS-B).
    pub fn kind(self) -> TaskKind {
        let labels: &[&str] = match self {
            GlueTask::Stsb => return TaskKind::Regression,
            GlueTask::Mnli | GlueTask::MnliMismatched => {
                &["contradiction", "entailment", "neutral"]
            }
            GlueTask::Qnli | GlueTask::Rte => &["entailment", "not_entailment"],
            GlueTask::Cola | GlueTask::Sst2 | GlueTask::Mrpc | GlueTask::Qqp | GlueTask::Wnli => {
                &["0", "1"]
            }
        };
        TaskKind::Classification {
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
        }
    }

    /// The metrics reported, main one first: CoLA Matthews; STS-B Spearman (the paper's) then
    /// Pearson; MRPC and QQP accuracy (the paper's) then F1 of label `1`; the others accuracy.
    pub fn metrics(self) -> Vec<MetricKind> {
        match self {
            GlueTask::Cola => vec![MetricKind::Matthews],
            GlueTask::Stsb => vec![MetricKind::Spearman, MetricKind::Pearson],
            GlueTask::Mrpc | GlueTask::Qqp => {
                vec![MetricKind::Accuracy, MetricKind::F1 { positive: 1 }]
            }
            _ => vec![MetricKind::Accuracy],
        }
    }

    /// Header names of (first text, second text, label).
    fn columns(self) -> (&'static str, Option<&'static str>, &'static str) {
        match self {
            GlueTask::Cola | GlueTask::Sst2 => ("sentence", None, "label"),
            GlueTask::Mrpc => ("#1 String", Some("#2 String"), "Quality"),
            GlueTask::Stsb => ("sentence1", Some("sentence2"), "score"),
            GlueTask::Qqp => ("question1", Some("question2"), "is_duplicate"),
            GlueTask::Mnli | GlueTask::MnliMismatched => {
                ("sentence1", Some("sentence2"), "gold_label")
            }
            GlueTask::Qnli => ("question", Some("sentence"), "label"),
            GlueTask::Rte | GlueTask::Wnli => ("sentence1", Some("sentence2"), "label"),
        }
    }

    /// File names of (train, dev, test).
    fn files(self) -> (&'static str, &'static str, &'static str) {
        match self {
            GlueTask::Mnli => ("train.tsv", "dev_matched.tsv", "test_matched.tsv"),
            GlueTask::MnliMismatched => ("train.tsv", "dev_mismatched.tsv", "test_mismatched.tsv"),
            _ => ("train.tsv", "dev.tsv", "test.tsv"),
        }
    }
}

impl FromStr for GlueTask {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::from_name(s)
    }
}

impl fmt::Display for GlueTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Loads a GLUE task from `dir` (the task's directory of the official download).
///
/// Train and dev must exist and be non-empty; the test file is read when present (unlabelled
/// unless it has the label column). MNLI's dev is the matched set, and the mismatched one is
/// `extra_dev` `"mnli-mm"`; `mnli-mm` uses the mismatched dev and test files.
///
/// Every row must have as many columns as the header (CoLA's headerless files: 4); QQP rows
/// that do not are skipped and counted in a warning, as `transformers` skips them.
///
/// # Errors
/// A missing or unreadable file, invalid UTF-8, a wrong column count, a missing header field,
/// a label outside the task's list, an unparsable STS-B score, or an empty train/dev split;
/// each names the file and line.
pub fn load_glue(task: GlueTask, dir: &Path) -> Result<TextTask> {
    let kind = task.kind();
    let (train_file, dev_file, test_file) = task.files();
    let train = load_file(task, &kind, &dir.join(train_file), Split::Train)?;
    let dev = load_file(task, &kind, &dir.join(dev_file), Split::Dev)?;
    let test_path = dir.join(test_file);
    let test = if test_path.is_file() {
        load_file(task, &kind, &test_path, Split::Test)?
    } else {
        tracing::debug!(path = %test_path.display(), "no GLUE test file");
        Vec::new()
    };
    let mut extra_dev = Vec::new();
    if task == GlueTask::Mnli {
        let path = dir.join("dev_mismatched.tsv");
        if path.is_file() {
            extra_dev.push((
                GlueTask::MnliMismatched.name().to_owned(),
                load_file(task, &kind, &path, Split::Dev)?,
            ));
        } else {
            tracing::warn!(path = %path.display(), "MNLI mismatched dev file missing");
        }
    }
    tracing::info!(
        task = task.name(),
        train = train.len(),
        dev = dev.len(),
        test = test.len(),
        "loaded GLUE task"
    );
    Ok(TextTask {
        name: task.name().to_owned(),
        kind,
        metrics: task.metrics(),
        train,
        dev,
        test,
        extra_dev,
    })
}

/// Column indices of one file.
struct Layout {
    text_a: usize,
    text_b: Option<usize>,
    label: Option<usize>,
    columns: usize,
    /// Index of the first data row in the row list.
    first_row: usize,
}

fn load_file(
    task: GlueTask,
    kind: &TaskKind,
    path: &Path,
    split: Split,
) -> Result<Vec<TextExample>> {
    let rows = read_tsv(path)?;
    let layout = layout(task, path, &rows, split)?;
    let mut raw = Vec::with_capacity(rows.len());
    let mut skipped = 0usize;
    for row in &rows[layout.first_row.min(rows.len())..] {
        if row.fields.len() != layout.columns {
            if task == GlueTask::Qqp {
                skipped += 1;
                tracing::debug!(at = %location(path, row.line), found = row.fields.len(), "skipping malformed QQP row");
                continue;
            }
            return Err(Error::Columns {
                path: path.to_path_buf(),
                line: row.line,
                expected: layout.columns,
                found: row.fields.len(),
            });
        }
        let label = layout.label.map(|i| row.fields[i].trim().to_owned());
        raw.push(RawExample {
            line: row.line,
            text_a: row.fields[layout.text_a].clone(),
            text_b: layout.text_b.map(|i| row.fields[i].clone()),
            label,
        });
    }
    if skipped > 0 {
        tracing::warn!(path = %path.display(), skipped, "skipped malformed rows (wrong column count)");
    }
    if raw.is_empty() && split != Split::Test {
        return Err(Error::EmptySplit {
            path: path.to_path_buf(),
            split: split.as_str().to_owned(),
        });
    }
    let label_field = task.columns().2;
    to_examples(path, raw, kind, label_field, split != Split::Test)
}

fn layout(task: GlueTask, path: &Path, rows: &[Row], split: Split) -> Result<Layout> {
    let Some(first) = rows.first() else {
        return Err(Error::EmptySplit {
            path: path.to_path_buf(),
            split: split.as_str().to_owned(),
        });
    };
    // CoLA train/dev: no header, `source label original-label sentence`
    if task == GlueTask::Cola && first.fields.first().map(|f| f.trim()) != Some("index") {
        return Ok(Layout {
            text_a: 3,
            text_b: None,
            label: Some(1),
            columns: 4,
            first_row: 0,
        });
    }
    let header: Vec<&str> = first.fields.iter().map(|f| f.trim()).collect();
    let find = |name: &str| -> Result<usize> {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| Error::MissingField {
                path: path.to_path_buf(),
                line: first.line,
                field: name.to_owned(),
            })
    };
    let (a, b, label) = task.columns();
    let text_a = find(a)?;
    let text_b = b.map(find).transpose()?;
    let label = match split {
        Split::Test => header.iter().position(|h| *h == label),
        _ => Some(find(label)?),
    };
    Ok(Layout {
        text_a,
        text_b,
        label,
        columns: header.len(),
        first_row: 1,
    })
}
