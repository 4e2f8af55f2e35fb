//! ELECTRA networks on burn: shared embeddings, the post-LN BERT encoder, the generator (tied
//! masked-LM head) and the discriminator (replaced-token-detection head), generic over the
//! backend, with HuggingFace import and export.
//!
//! ```no_run
//! # use burn::backend::Flex;
//! use electra_model::hf;
//! let device = Default::default();
//! let disc = hf::load_discriminator::<Flex>("model_dir".as_ref(), &device)?;
//! # Ok::<(), electra_model::Error>(())
//! ```
//!
//! Architecture invariant: this crate does no file I/O outside [`hf`], and never prints.

pub mod config;
mod error;
pub mod hf;
pub mod init;
pub mod input;
pub mod layers;
pub mod model;
pub mod parallel;
pub mod params;

pub use config::{Activation, ElectraConfig};
pub use error::{Error, Result};
pub use model::{
    Discriminator, DiscriminatorOutput, ElectraModel, ElectraPreTraining, Generator, PreTrainingConfig,
};
