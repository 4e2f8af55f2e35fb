//! ELECTRA corruption: choosing the positions the generator predicts, and turning its samples into
//! the discriminator's input and labels (sections 2 and 3 of the method).
//!
//! The steps of one pre-training step, in order:
//! 1. [`Masker::mask`] (host, deterministic given the RNG): picks the positions and builds the
//!    generator input ([`MaskedBatch`]).
//! 2. The generator runs; its logits at [`MaskedBatch::positions`] go to [`sample_tokens`]
//!    (device, Gumbel-max, no gradient); [`ids_from_tensor`] reads the samples back.
//! 3. [`replace_tokens`] (host) writes the samples over the original ids and labels each token
//!    1 iff it was chosen and the sample differs from the original.
//!
//! Buffers are flat and row-major (`[batch * seq]`), and positions are flat indices into them.
//! Nothing here prints; progress goes to `tracing` at debug level.

mod error;
mod masking;
mod replace;
mod sampling;

pub use error::{Error, Result};
pub use masking::{MaskedBatch, Masker, MaskingConfig, Scheme, SpecialIds};
pub use replace::replace_tokens;
pub use sampling::{ids_from_tensor, sample_tokens, sample_tokens_host, sample_tokens_host_by};

/// The README's example, compiled (and run where it needs no files) as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
