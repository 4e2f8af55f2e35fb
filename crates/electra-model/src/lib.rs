//! ELECTRA networks on burn: shared embeddings, the post-LN BERT encoder, the generator (tied
//! masked-LM head) and the discriminator (replaced-token-detection head), generic over the
//! backend, with HuggingFace import and export.
//!
//! This crate enables no burn backend: the caller adds burn with one (`flex` or `ndarray` on
//! the CPU, `wgpu` or `cuda`) and names it as the type parameter.
//!
//! ```no_run
//! # use burn::backend::Flex;
//! use electra_model::hf;
//! let device = Default::default();
//! let disc = hf::load_discriminator::<Flex>("model_dir".as_ref(), &device)?;
//! # Ok::<(), electra_model::Error>(())
//! ```
//!
//! Conventions of every model's `forward`:
//! - inputs are three `[batch, seq]` integer tensors: token ids, token type (segment) ids, and
//!   the attention mask, **1 for a real token, 0 for padding**; [`input::InputBatch::pad`]
//!   builds all three from the tokenizer's id rows on a given device;
//! - the discriminator returns **logits** (before the sigmoid), `[batch, seq]`:
//!   [`input::sigmoid`] turns one into the probability that the token was replaced; the
//!   generator returns vocabulary logits (before the softmax).
//!
//! Features: `pytorch` (default) reads PyTorch `pytorch_model.bin` checkpoints through
//! burn-store; without it only `model.safetensors` loads, and a `.bin` is refused with
//! [`Error::PytorchDisabled`].
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
pub mod precision;

pub use config::{Activation, ElectraConfig};
pub use error::{Error, Result};
pub use precision::{Precision, autocast};
pub use model::{
    Discriminator, DiscriminatorOutput, ElectraModel, ElectraPreTraining, Generator, PreTrainingConfig,
};

/// The README's example, compiled (and run where it needs no files) as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
