//! The one seed derivation of the workspace: every random stream (a step's masking and
//! sampling, a micro-batch, a batch chunk, an epoch's shuffle, a fine-tuning step) is
//! `derive_seed` of its parent seed and its index, so that streams never collide and a stream
//! depends only on where it sits, not on what ran before it.

/// A seed derived from `seed` and `index`: SplitMix64's finaliser of `seed ^ (index + 1) x
/// golden ratio`. Nest it for several indices: `derive_seed(derive_seed(seed, step), chunk)`.
#[must_use]
pub fn derive_seed(seed: u64, index: u64) -> u64 {
    let mut z = seed ^ index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::derive_seed;

    #[test]
    fn nearby_inputs_give_unrelated_seeds() {
        let seeds: std::collections::HashSet<u64> =
            (0..64).flat_map(|s| (0..64).map(move |i| derive_seed(s, i))).collect();
        assert_eq!(seeds.len(), 64 * 64, "collision among 4096 nearby (seed, index) pairs");
        // One flipped input bit changes about half of the output bits.
        let flips = (derive_seed(1, 7) ^ derive_seed(1, 6)).count_ones();
        assert!((16..=48).contains(&flips), "{flips}");
    }
}
