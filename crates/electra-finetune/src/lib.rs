//! Fine-tuning ELECTRA: task heads on the discriminator's encoder (sequence classification,
//! regression, token tagging, extractive QA), in HuggingFace layout; layer-wise learning-rate
//! decay; one fine-tuning step ([`train_step`]) and the loop over epochs ([`finetune`]); task
//! data loaders, task assembly ([`task`]: features, heads and scorers) and metrics.
//!
//! Architecture invariant: libraries never print; progress goes through [`run::RunProgress`],
//! cancellation through [`electra_tokenizer::Cancel`].

pub mod data;
mod error;
pub mod metrics;
pub mod model;
pub mod optim;
pub mod plot;
pub mod run;
pub mod step;
pub mod task;
#[cfg(test)]
mod testing;

pub use error::{Error, Result};
pub use model::{HeadKind, HeadStyle, TaskModel};
pub use optim::DepthRule;
pub use run::{Feature, FinetuneConfig, RunResult, Schedule, Target, best_epoch, finetune, is_better, predict};
pub use step::{StepOutcome, train_step};

/// The README's example, compiled (and run where it needs no files) as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
