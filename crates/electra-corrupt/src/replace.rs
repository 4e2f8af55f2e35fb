//! Host-side discriminator input and labels.

use crate::{Error, Result};

/// Builds the discriminator's input and its per-token labels.
///
/// The input is `original_ids` with `samples[i]` written at flat position `positions[i]`. A token's
/// label is 1 ("replaced") iff its position was chosen AND the sample there differs from the
/// original; a sample equal to the original is labelled 0 ("original"), as are all positions not
/// chosen.
///
/// Returns `(discriminator_input, labels)`, both as long as `original_ids` (`[batch * seq]`,
/// row-major); labels are 0 or 1.
///
/// # Errors
/// [`Error::PositionsSamplesMismatch`] when `positions` and `samples` differ in length;
/// [`Error::PositionOutOfRange`] when a position does not index into `original_ids`.
pub fn replace_tokens(
    original_ids: &[u32],
    positions: &[u32],
    samples: &[u32],
) -> Result<(Vec<u32>, Vec<u32>)> {
    if positions.len() != samples.len() {
        return Err(Error::PositionsSamplesMismatch {
            positions: positions.len(),
            samples: samples.len(),
        });
    }
    let len = original_ids.len();
    let mut input = original_ids.to_vec();
    let mut labels = vec![0; len];
    for (&position, &sample) in positions.iter().zip(samples) {
        let slot = position as usize;
        if slot >= len {
            return Err(Error::PositionOutOfRange { position, len });
        }
        input[slot] = sample;
        labels[slot] = u32::from(sample != original_ids[slot]);
    }
    Ok((input, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_mark_chosen_positions_whose_sample_differs() -> Result<()> {
        let original = [10, 11, 12, 13, 14, 15];
        // Position 1 sampled as itself, 3 and 5 replaced, the rest not chosen.
        let (input, labels) = replace_tokens(&original, &[1, 3, 5], &[11, 99, 7])?;
        assert_eq!(input, vec![10, 11, 12, 99, 14, 7]);
        assert_eq!(labels, vec![0, 0, 0, 1, 0, 1]);
        Ok(())
    }

    #[test]
    fn no_positions_leave_the_input_unchanged() -> Result<()> {
        let original = [5, 6, 7];
        let (input, labels) = replace_tokens(&original, &[], &[])?;
        assert_eq!(input, original);
        assert_eq!(labels, vec![0; 3]);
        Ok(())
    }

    #[test]
    fn bad_positions_are_errors() {
        assert_eq!(
            replace_tokens(&[1, 2, 3], &[0, 1], &[4]).err(),
            Some(Error::PositionsSamplesMismatch {
                positions: 2,
                samples: 1
            })
        );
        assert_eq!(
            replace_tokens(&[1, 2, 3], &[3], &[4]).err(),
            Some(Error::PositionOutOfRange {
                position: 3,
                len: 3
            })
        );
    }
}
