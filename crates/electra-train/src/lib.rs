//! ELECTRA pre-training: the losses, the reference optimiser and schedule, global-norm
//! clipping, the training loop with exact resume, evaluation and the metrics file.
//!
//! Architecture invariant: every random draw of step `t` is seeded from `(seed, t)`, so a run's
//! trajectory depends only on its config and data, not on where it was interrupted.

pub mod checkpoint;
pub mod chunks;
pub mod config;
pub mod data;
pub mod dist;
mod error;
pub mod eval;
pub mod loss;
pub mod metrics;
pub mod optim;
pub mod plot;
pub mod run_dir;
pub mod seed;
pub mod step;
pub mod trainer;

pub use config::{ModelSpec, Objective, PretrainConfig};
pub use error::{Error, Result};
pub use metrics::{EvalMetrics, StepMetrics};
pub use electra_tokenizer::Cancel;
pub use run_dir::OutMode;
pub use step::{StepOutcome, masker, train_step, train_step_dist};
pub use trainer::{NoProgress, Progress, RunPaths, Summary, pretrain, pretrain_dist};

pub(crate) fn hf_write(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    Ok(electra_model::hf::write_atomic(path, bytes)?)
}

/// The README's example, compiled (and run where it needs no files) as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
