//! Fine-tuning ELECTRA: task heads on the discriminator's encoder (sequence classification,
//! regression, token tagging, extractive QA), in HuggingFace layout; layer-wise learning-rate
//! decay; the fine-tuning loop; task data loaders and metrics.
//!
//! Architecture invariant: libraries never print; progress goes through [`run::RunProgress`].

pub mod data;
mod error;
pub mod metrics;
pub mod model;
pub mod optim;
pub mod run;

pub use error::{Error, Result};
pub use model::{HeadKind, HeadStyle, TaskModel};
pub use optim::DepthRule;
pub use run::{Feature, FinetuneConfig, RunResult, Target, finetune, predict};
