//! Batches from prepared shards: a seeded permutation per epoch, padded to the longest sequence
//! in the batch. The position in the data is a pure function of the number of examples consumed,
//! so a resumed run reads exactly what the uninterrupted one would have.

use electra_tokenizer::ShardReader;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::Result;

/// A host-side batch, row-major `[batch, seq]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostBatch {
    /// Token ids, padded with the pad id.
    pub input_ids: Vec<u32>,
    /// Segment ids, 0 on padding.
    pub token_type_ids: Vec<u32>,
    /// 1 for real tokens, 0 for padding.
    pub attention_mask: Vec<u32>,
    /// Rows.
    pub batch: usize,
    /// Columns (the longest example of the batch).
    pub seq: usize,
}

/// Reads examples in a seeded order that changes every epoch.
pub struct Batches<'a> {
    reader: &'a ShardReader,
    seed: u64,
    pad: u32,
    shuffle: bool,
    epoch: Option<(u64, Vec<u32>)>,
}

impl<'a> Batches<'a> {
    /// Shuffled batches (training).
    pub fn shuffled(reader: &'a ShardReader, seed: u64, pad: u32) -> Self {
        Self { reader, seed, pad, shuffle: true, epoch: None }
    }

    /// Batches in file order (evaluation).
    pub fn in_order(reader: &'a ShardReader, pad: u32) -> Self {
        Self { reader, seed: 0, pad, shuffle: false, epoch: None }
    }

    fn example_index(&mut self, consumed: u64) -> usize {
        let n = self.reader.len() as u64;
        let (epoch, offset) = (consumed / n, (consumed % n) as usize);
        if !self.shuffle {
            return offset;
        }
        if self.epoch.as_ref().map(|(e, _)| *e) != Some(epoch) {
            let mut order: Vec<u32> = (0..n as u32).collect();
            order.shuffle(&mut ChaCha8Rng::seed_from_u64(crate::seed::derive_seed(self.seed, epoch)));
            self.epoch = Some((epoch, order));
        }
        self.epoch.as_ref().map(|(_, o)| o[offset] as usize).unwrap_or(offset)
    }

    /// The batch of `size` examples starting after `consumed` examples.
    pub fn batch(&mut self, consumed: u64, size: usize) -> Result<HostBatch> {
        let mut rows = Vec::with_capacity(size);
        for k in 0..size as u64 {
            let i = self.example_index(consumed + k);
            rows.push(self.reader.get_example(i)?);
        }
        let seq = rows.iter().map(|ex| ex.len()).max().unwrap_or(1);
        let mut b = HostBatch {
            input_ids: Vec::with_capacity(size * seq),
            token_type_ids: Vec::with_capacity(size * seq),
            attention_mask: Vec::with_capacity(size * seq),
            batch: size,
            seq,
        };
        for ex in rows {
            let (ids, types, mask) = ex.padded(seq, self.pad);
            b.input_ids.extend(ids);
            b.token_type_ids.extend(types);
            b.attention_mask.extend(mask);
        }
        Ok(b)
    }
}
