//! The fine-tuning crate's error type (data loading, metrics, models and runs share it).
//!
//! A variant that holds its cause as a `#[source]` does not repeat it in its message: callers
//! print the chain (`electra` prints every cause once).

use std::path::PathBuf;

/// Everything that can go wrong when loading task data, fine-tuning or predicting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A model could not be built, loaded or saved.
    #[error(transparent)]
    Model(#[from] electra_model::Error),

    /// The tokenizer failed.
    #[error(transparent)]
    Tokenizer(#[from] electra_tokenizer::Error),

    /// A file could not be read or written (the OS error is the source).
    #[error("{path}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// An invalid setting or an impossible request, with a message naming what is wrong.
    #[error("{0}")]
    Invalid(String),

    /// A task file's content could not be parsed.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file concerned.
        path: PathBuf,
        /// 1-based line number (0 when the whole file is concerned).
        line: u64,
        /// What is wrong.
        message: String,
    },

    /// A line of a task file is not valid UTF-8.
    #[error("{path}:{line}: invalid utf-8")]
    InvalidUtf8 {
        /// The file concerned.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
    },

    /// A row of a task file has the wrong number of columns.
    #[error("{path}:{line}: expected {expected} columns, found {found}")]
    Columns {
        /// The file concerned.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// Columns expected (the header's, or the format's).
        expected: usize,
        /// Columns found.
        found: usize,
    },

    /// A header (or a JSON line) lacks a field the task needs.
    #[error("{path}:{line}: missing field {field}")]
    MissingField {
        /// The file concerned.
        path: PathBuf,
        /// 1-based line number (the header's for tabular files).
        line: u64,
        /// The field, or the accepted names separated by `|`.
        field: String,
    },

    /// A label in a dev or test file that the task does not know.
    #[error("{path}:{line}: unknown label {label:?} (known: {})", known.join(", "))]
    UnknownLabel {
        /// The file concerned.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// The label found.
        label: String,
        /// The task's labels.
        known: Vec<String>,
    },

    /// A split that must have examples has none.
    #[error("{path}: no {split} examples")]
    EmptySplit {
        /// The file (or directory) that should have held them.
        path: PathBuf,
        /// The split ("train", "dev", "test").
        split: String,
    },

    /// A task name that is not known.
    #[error("unknown task {0:?} (known: cola, sst-2, mrpc, sts-b, qqp, mnli, mnli-mm, qnli, rte, wnli)")]
    UnknownTask(String),

    /// A JSON task file (SQuAD) is malformed.
    #[error("{path}: invalid json: {detail}")]
    Json {
        /// The file concerned.
        path: PathBuf,
        /// What the JSON parser reports, with the line and column.
        detail: String,
    },

    /// A run was cancelled (its [`Cancel`](electra_tokenizer::Cancel) flag set, e.g. on Ctrl-C)
    /// before optimiser step `step` (0-based, so `step` steps were done).
    #[error("interrupted after {step} steps")]
    Interrupted {
        /// Optimiser steps done.
        step: usize,
    },
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
