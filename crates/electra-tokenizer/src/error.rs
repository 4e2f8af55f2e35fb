//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in this crate.
///
/// Messages are lower case, carry no trailing period and name the file (and line, where one
/// applies) that caused them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation on `path` failed.
    #[error("{action} {path}")]
    Io {
        /// What was being done ("failed to read", "failed to create", ...).
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A file's content could not be parsed.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file concerned.
        path: PathBuf,
        /// 1-based line number (0 when the whole file is concerned).
        line: u64,
        /// What is wrong.
        message: String,
    },

    /// A JSON file (tokenizer.json, tokenizer_config.json, manifest.json) is malformed.
    #[error("invalid json in {path}")]
    Json {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },

    /// A line is not valid UTF-8 (strict mode only; lenient mode skips and counts it).
    #[error("{path}:{line}: invalid utf-8")]
    InvalidUtf8 {
        /// The file concerned.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
    },

    /// A special token the model needs is not in the vocabulary.
    #[error("vocabulary {source_path} has no {token} token")]
    MissingSpecialToken {
        /// The vocabulary file or directory.
        source_path: PathBuf,
        /// The missing token, e.g. `[MASK]`.
        token: &'static str,
    },

    /// An error raised by the `tokenizers` crate.
    #[error("tokenizer error{}", context_suffix(.context))]
    Tokenizer {
        /// The file being loaded, if any.
        context: Option<PathBuf>,
        /// The underlying error.
        #[source]
        source: tokenizers::Error,
    },

    /// An input path, directory or glob matched no readable corpus file.
    #[error("no corpus files found for {0} (expected .txt or .jsonl, optionally .gz/.zst)")]
    NoInputFiles(String),

    /// The inputs were read but contained no text that produced a training example.
    #[error("no usable text in {0}")]
    NoUsableText(String),

    /// A prepared dataset does not match what the caller expects.
    #[error("dataset {dir} does not match: {message}")]
    Mismatch {
        /// The prepared-dataset directory.
        dir: PathBuf,
        /// Which value differs, naming both the found and the expected value.
        message: String,
    },

    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// An index passed to a reader is out of range.
    #[error("example index {index} out of range for {len} examples")]
    OutOfRange {
        /// The requested index.
        index: usize,
        /// The number of examples.
        len: usize,
    },

    /// The preparation was cancelled ([`crate::Cancel`]); finished shards are kept.
    #[error("interrupted; finished shards are kept and a rerun resumes after them")]
    Interrupted,

    /// A worker thread panicked or stopped without reporting (a bug, not a data problem).
    #[error("internal error: {0}")]
    Internal(String),
}

fn context_suffix(path: &Option<PathBuf>) -> String {
    match path {
        Some(p) => format!(" in {}", p.display()),
        None => String::new(),
    }
}

impl Error {
    /// Wraps an I/O error with the action and the path it concerns.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// Wraps a `tokenizers` error, optionally naming the file being loaded.
    pub(crate) fn tokenizer(context: Option<PathBuf>, source: tokenizers::Error) -> Self {
        Error::Tokenizer { context, source }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
