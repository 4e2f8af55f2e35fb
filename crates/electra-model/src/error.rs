//! The model crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong when configuring, loading or saving a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value that no model can be built from.
    #[error("invalid config: {0}")]
    InvalidConfig(String),

    /// A file could not be read or written (the OS error is the source).
    #[error("{path}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A JSON file that does not parse.
    #[error("invalid JSON in {path}")]
    Json {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },

    /// A checkpoint lacks a tensor the model needs.
    #[error("{file}: missing tensor `{name}` (expected shape {expected:?})")]
    MissingTensor {
        /// The checkpoint file.
        file: String,
        /// The tensor's name in the checkpoint.
        name: String,
        /// The shape the model needs.
        expected: Vec<usize>,
    },

    /// A checkpoint tensor whose shape does not match the config.
    #[error("{file}: tensor `{name}` has shape {found:?}, the config needs {expected:?}")]
    ShapeMismatch {
        /// The checkpoint file.
        file: String,
        /// The tensor's name in the checkpoint.
        name: String,
        /// The shape the model needs.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },

    /// A checkpoint that cannot be decoded.
    #[error("{path}: {message}")]
    BadCheckpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },

    /// A directory that is neither a model directory (`config.json`) nor a run's export
    /// (`discriminator/config.json`).
    #[error("{0}: not a model directory (no config.json, and no discriminator/config.json as an `electra pretrain` run exports)")]
    NotAModel(PathBuf),

    /// A model directory without any weights file.
    #[error("{0}: no model.safetensors or pytorch_model.bin in this directory")]
    NoWeights(PathBuf),

    /// A PyTorch `pytorch_model.bin` met by a build without the `pytorch` feature.
    #[error(
        "{0}: reading a PyTorch .bin checkpoint needs electra-model's `pytorch` feature (on by default, off in this \
         build); enable it, or save the model as model.safetensors"
    )]
    PytorchDisabled(PathBuf),
}

/// The model crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}
