//! Forward and backward in batch chunks on rayon's threads, gradients added in chunk order.
//!
//! The CPU backends keep one core busy per batch (element-wise work runs on the calling thread);
//! chunks of a few rows, each on a fork of the model, keep every core busy and their smaller
//! intermediates stay in cache (docs/performance.md, "Batch chunks"). Each chunk runs inside
//! [`electra_model::parallel::with_host_rng`] with its own seed, and the gradients are added in
//! chunk order, so the result does not depend on how many threads there are.

use std::ops::Range;

use burn::module::AutodiffModule;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use electra_model::parallel::{chunk_ranges, with_host_rng};

use crate::seed::derive_seed;
use rayon::prelude::*;

/// Splits `rows` rows into chunks of `chunk` ([`chunk_ranges`]) and, on rayon's pool, runs `f`
/// on each chunk with a fork of `model` (its own autodiff leaves, the same parameter ids) inside
/// a host random stream seeded by `derive_seed(seed, chunk index)` and the caller's
/// [`electra_model::autocast`] precision; backpropagates the loss `f`
/// returns and adds the gradients to `accumulator` in chunk order. Returns the rest of `f`'s
/// results in chunk order.
///
/// `f`'s loss must be the chunk's share of the batch loss (sums divided by the whole batch's
/// counts), so that the accumulated gradient is the whole batch's. At most twice as many chunks
/// as threads are in flight at once (their gradients wait to be added in order).
///
/// # Errors
/// The first error `f` returns, in chunk order.
pub fn backward_in_chunks<B, M, T, E, F>(
    model: &M,
    rows: usize,
    chunk: usize,
    seed: u64,
    accumulator: &mut GradientsAccumulator<M>,
    f: F,
) -> Result<Vec<T>, E>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    T: Send,
    E: Send,
    F: Fn(&M, usize, Range<usize>) -> Result<(Tensor<B, 1>, T), E> + Sync + Send,
{
    let ranges: Vec<_> = chunk_ranges(rows, chunk).into_iter().enumerate().collect();
    let device = model.devices().into_iter().next();
    let fork = |m: &M| match &device {
        Some(d) => m.clone().fork(d),
        None => m.clone(),
    };
    // The caller's mixed precision, installed on whichever thread runs a chunk.
    let precision = electra_model::precision::current();
    let run = |(c, rows): (usize, Range<usize>), replica: M| {
        electra_model::autocast(precision, || with_host_rng(derive_seed(seed, c as u64), || {
            let (loss, out) = f(&replica, c, rows)?;
            Ok((GradientsParams::from_grads(loss.backward(), &replica), out))
        }))
    };
    let wave = 2 * rayon::current_num_threads().max(1);
    let mut outs = Vec::with_capacity(ranges.len());
    for group in ranges.chunks(wave) {
        let results: Vec<Result<(GradientsParams, T), E>> = if group.len() == 1 {
            group.iter().map(|job| run(job.clone(), fork(model))).collect()
        } else {
            let jobs: Vec<_> = group.iter().map(|job| (job.clone(), fork(model))).collect();
            jobs.into_par_iter().map(|(job, replica)| run(job, replica)).collect()
        };
        for r in results {
            let (grads, out) = r?;
            accumulator.accumulate(model, grads);
            outs.push(out);
        }
    }
    Ok(outs)
}
