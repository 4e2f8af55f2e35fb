//! Task data: loaders for GLUE, generic labelled text files (TSV, CSV, JSON Lines, optionally
//! `.xz`-compressed), SQuAD v1.1/v2.0 and CoNLL-style token files, and their conversion to model
//! inputs with the project's WordPiece tokenizer.
//!
//! Every loader reads the whole file, checks it and reports the first problem as an
//! [`Error`](crate::Error) naming the file, the 1-based line and the field; bad input never
//! panics. Skipped rows (QQP's known malformed lines) are counted and logged with `tracing`.
//!
//! | entry point | input |
//! |---|---|
//! | [`load_glue`] | a GLUE task directory (`train.tsv`, `dev.tsv`, optional `test.tsv`) |
//! | [`load_generic_files`] | separate train / dev (/ test) files |
//! | [`load_generic_single`] | one file with a `split` column (`train`/`dev`/`test`) |
//! | [`read_squad`] | a SQuAD v1.1 or v2.0 JSON file |
//! | [`load_conll`] | CoNLL-2003-style token files |

mod conll;
mod features;
mod generic;
mod glue;
mod io;
mod squad;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use conll::{ConllSentence, TaggedSentence, TaggingTask, load_conll, read_conll};
pub use features::{
    TaggingFeature, TextFeature, tagging_features, text_features, word_predictions,
};
pub use generic::{GenericOptions, load_generic_files, load_generic_single};
pub use glue::{GlueTask, load_glue};
pub use squad::{
    SquadAnswer, SquadConfig, SquadExample, SquadFeature, SquadPostConfig, read_squad,
    squad_features, squad_predictions,
};

use crate::metrics::MetricKind;

/// The gold (or predicted) label of one text example.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Label {
    /// Index into the task's label list ([`TaskKind::Classification`]).
    Class(usize),
    /// A real value ([`TaskKind::Regression`]).
    Value(f32),
}

/// One sentence or sentence pair with its label.
#[derive(Debug, Clone, PartialEq)]
pub struct TextExample {
    /// First (or only) text.
    pub text_a: String,
    /// Second text of a pair task.
    pub text_b: Option<String>,
    /// The label; `None` for unlabelled test data.
    pub label: Option<Label>,
    /// Where the example comes from: `"file:line"` (1-based).
    pub location: String,
}

/// What a text task predicts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TaskKind {
    /// One of a fixed list of labels; [`Label::Class`] indexes `labels`.
    Classification {
        /// Label names in index order.
        labels: Vec<String>,
    },
    /// One real value ([`Label::Value`]).
    Regression,
}

impl TaskKind {
    /// Number of model outputs: the number of labels, or 1 for regression.
    pub fn num_outputs(&self) -> usize {
        match self {
            TaskKind::Classification { labels } => labels.len(),
            TaskKind::Regression => 1,
        }
    }

    /// The label names (empty for regression).
    pub fn labels(&self) -> &[String] {
        match self {
            TaskKind::Classification { labels } => labels,
            TaskKind::Regression => &[],
        }
    }
}

/// The three splits of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Training data.
    Train,
    /// Development (validation) data: what metrics are reported on.
    Dev,
    /// Test data (often unlabelled).
    Test,
}

impl Split {
    /// `"train"`, `"dev"` or `"test"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Dev => "dev",
            Split::Test => "test",
        }
    }

    /// Parses a split column value: `train`, `dev` (also `validation`, `valid`, `val`) or
    /// `test`, case-insensitively.
    pub fn parse(value: &str) -> Option<Split> {
        match value.trim().to_ascii_lowercase().as_str() {
            "train" => Some(Split::Train),
            "dev" | "validation" | "valid" | "val" => Some(Split::Dev),
            "test" => Some(Split::Test),
            _ => None,
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A sentence(-pair) classification or regression task, loaded and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct TextTask {
    /// Task name (canonical GLUE name, or given / derived from the file name).
    pub name: String,
    /// Classification with its labels, or regression.
    pub kind: TaskKind,
    /// Metrics to report; the first is the main one (picks the best epoch).
    pub metrics: Vec<MetricKind>,
    /// Training examples (never empty).
    pub train: Vec<TextExample>,
    /// Dev examples, all labelled (never empty).
    pub dev: Vec<TextExample>,
    /// Test examples; may be empty; unlabelled for GLUE.
    pub test: Vec<TextExample>,
    /// Further labelled evaluation sets, by name (MNLI: `("mnli-mm", dev_mismatched)`).
    pub extra_dev: Vec<(String, Vec<TextExample>)>,
}

/// The default metrics of a task kind: accuracy (and the F1 of label 1 for two labels) for
/// classification, Spearman then Pearson for regression.
pub fn default_metrics(kind: &TaskKind) -> Vec<MetricKind> {
    match kind {
        TaskKind::Classification { labels } if labels.len() == 2 => {
            vec![MetricKind::Accuracy, MetricKind::F1 { positive: 1 }]
        }
        TaskKind::Classification { .. } => vec![MetricKind::Accuracy],
        TaskKind::Regression => vec![MetricKind::Spearman, MetricKind::Pearson],
    }
}
