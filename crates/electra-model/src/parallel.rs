//! Batch chunks on CPU threads, and the per-chunk random streams that keep them reproducible.
//!
//! burn's CPU backends run element-wise operations on the calling thread and parallelise only
//! large matrix multiplies, so one batch keeps about one core busy. Splitting the batch into
//! chunks of a few sequences and running the chunks on rayon's pool keeps every core busy, and
//! the smaller intermediate tensors stay in cache (docs/performance.md, "Batch chunks").
//!
//! Randomness inside a chunk (dropout masks, see [`crate::layers::dropout`]) must not depend on
//! which thread runs which chunk, so a chunk's work runs inside [`with_host_rng`]: a seeded
//! ChaCha8 stream on the host, installed for the current thread. rayon may run another chunk on
//! the same thread while this one waits inside a nested parallel operation; that chunk installs
//! its own stream and restores the previous one when it finishes (strict nesting), so every
//! chunk draws exactly its own sequence.

use std::cell::RefCell;
use std::ops::Range;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

thread_local! {
    static HOST_RNG: RefCell<Option<ChaCha8Rng>> = const { RefCell::new(None) };
}

/// Runs `f` with a host random stream seeded by `seed` installed on this thread: while it runs,
/// dropout draws its masks from this stream instead of the backend's generator. Restores the
/// previous stream (if any) afterwards.
pub fn with_host_rng<R>(seed: u64, f: impl FnOnce() -> R) -> R {
    let previous = HOST_RNG.with(|cell| cell.replace(Some(ChaCha8Rng::seed_from_u64(seed))));
    let out = f();
    HOST_RNG.with(|cell| *cell.borrow_mut() = previous);
    out
}

/// A dropout mask of `len` elements from the installed host stream: each element is
/// `1 / keep` with probability `keep` and 0 otherwise, compared at 32-bit resolution (`keep`
/// is rounded to a multiple of 2^-32). `None` outside [`with_host_rng`].
#[must_use]
pub fn host_dropout_mask(len: usize, keep: f64) -> Option<Vec<f32>> {
    HOST_RNG.with(|cell| {
        let mut guard = cell.borrow_mut();
        let rng = guard.as_mut()?;
        // P(u < threshold) = threshold / 2^32 for u uniform on 0..2^32.
        let threshold = (keep.clamp(0.0, 1.0) * 4_294_967_296.0).round().min(u32::MAX as f64) as u32;
        let scale = (1.0 / keep) as f32;
        Some((0..len).map(|_| if rng.next_u32() < threshold { scale } else { 0.0 }).collect())
    })
}

/// The row ranges of `rows` rows in chunks of `chunk` (the last one shorter); one range with
/// all rows when `chunk` is 0 or at least `rows`.
#[must_use]
pub fn chunk_ranges(rows: usize, chunk: usize) -> Vec<Range<usize>> {
    if chunk == 0 || chunk >= rows {
        return vec![0..rows];
    }
    (0..rows.div_ceil(chunk)).map(|c| c * chunk..((c + 1) * chunk).min(rows)).collect()
}

/// Runs `f` on every chunk of rows (see [`chunk_ranges`]) on rayon's pool and returns the results
/// in chunk order. With one chunk, `f` runs on the calling thread.
pub fn map_chunks<T: Send>(rows: usize, chunk: usize, f: impl Fn(usize, Range<usize>) -> T + Sync + Send) -> Vec<T> {
    let ranges = chunk_ranges(rows, chunk);
    if ranges.len() == 1 {
        return ranges.into_iter().enumerate().map(|(i, r)| f(i, r)).collect();
    }
    // The caller's mixed precision, installed on whichever thread runs a chunk.
    let precision = crate::precision::current();
    ranges.into_par_iter().enumerate().map(|(i, r)| crate::precision::autocast(precision, || f(i, r))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_ranges_cover_the_rows_in_order() {
        assert_eq!(chunk_ranges(10, 4), vec![0..4, 4..8, 8..10]);
        assert_eq!(chunk_ranges(8, 4), vec![0..4, 4..8]);
        assert_eq!(chunk_ranges(3, 0), vec![0..3]);
        assert_eq!(chunk_ranges(3, 8), vec![0..3]);
    }

    #[test]
    fn host_masks_exist_only_inside_the_scope_and_follow_the_seed() {
        assert!(host_dropout_mask(4, 0.9).is_none());
        let a = with_host_rng(7, || host_dropout_mask(1000, 0.9));
        let b = with_host_rng(7, || host_dropout_mask(1000, 0.9));
        let c = with_host_rng(8, || host_dropout_mask(1000, 0.9));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(host_dropout_mask(4, 0.9).is_none(), "the scope is gone afterwards");
    }

    #[test]
    fn nested_scopes_restore_the_outer_stream() {
        let straight = with_host_rng(1, || (host_dropout_mask(50, 0.5), host_dropout_mask(50, 0.5)));
        let interrupted = with_host_rng(1, || {
            let first = host_dropout_mask(50, 0.5);
            let _inner = with_host_rng(2, || host_dropout_mask(500, 0.5));
            (first, host_dropout_mask(50, 0.5))
        });
        assert_eq!(straight, interrupted);
    }

    #[test]
    fn host_masks_keep_the_requested_share_scaled() {
        let keep = 0.9;
        let mask = with_host_rng(3, || host_dropout_mask(200_000, keep)).unwrap_or_default();
        let kept = mask.iter().filter(|&&m| m != 0.0).count() as f64 / mask.len() as f64;
        // Standard deviation sqrt(0.09 / 200k) = 0.00067; 0.004 is 6 of them.
        assert!((kept - keep).abs() < 0.004, "kept {kept}");
        assert!(mask.iter().all(|&m| m == 0.0 || (m - (1.0 / keep) as f32).abs() < 1e-7));
    }
}
