//! The training crate's error type.

use std::path::PathBuf;

/// Everything that can stop a pre-training run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration no run can be made from.
    #[error("invalid training config: {0}")]
    Config(String),
    /// The model crate failed (config, import, export).
    #[error(transparent)]
    Model(#[from] electra_model::Error),
    /// The text pipeline failed (tokenizer, shards).
    #[error(transparent)]
    Data(#[from] electra_tokenizer::Error),
    /// Masking or sampling failed.
    #[error(transparent)]
    Corrupt(#[from] electra_corrupt::Error),
    /// A file could not be read or written (the OS error is the source).
    #[error("{path}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A checkpoint that cannot be used.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The checkpoint directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The loss became NaN or infinite.
    #[error("non-finite loss at step {step} (generator {mlm}, discriminator {disc}); the last good checkpoint is kept")]
    NonFinite {
        /// The step.
        step: u64,
        /// Generator loss.
        mlm: f32,
        /// Discriminator loss.
        disc: f32,
    },
    /// A fresh run was pointed at a directory that holds another run.
    #[error("{dir} already holds a run ({found}); pass --resume to continue it or --overwrite to delete it and start again")]
    RunExists {
        /// The output directory.
        dir: PathBuf,
        /// The run's files found there.
        found: String,
    },
    /// `--resume` on a run directory that this run cannot continue.
    #[error("cannot resume the run in {dir}: {message}")]
    Resume {
        /// The run directory.
        dir: PathBuf,
        /// Why.
        message: String,
    },
    /// Data-parallel training failed: a rank or the coordinator was lost, refused or timed out.
    #[error("data-parallel training: {0}")]
    Collective(String),
    /// A chart could not be drawn.
    #[error("cannot draw the chart {path}: {message}")]
    Chart {
        /// The image file.
        path: PathBuf,
        /// What the drawing library reported.
        message: String,
    },
    /// The run was asked to stop (Ctrl-C); a checkpoint was written.
    #[error("interrupted at step {0}; resume with --resume")]
    Interrupted(u64),
}

/// The training crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}
