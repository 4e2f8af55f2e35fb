//! Data-parallel training over loopback: 2 and 3 ranks (threads here, each with its own TCP
//! connection to a coordinator) reproduce the single-process run with the same global batch,
//! and every rank holds the same parameters.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use burn::backend::{Autodiff, Flex};
use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use electra_corrupt::SpecialIds;
use electra_model::{ElectraConfig, ElectraPreTraining};
use electra_train::data::HostBatch;
use electra_train::dist::{Coordinator, Hello, Local, PROTOCOL, Peer, Reduce};
use electra_train::optim::ElectraAdam;
use electra_train::{ModelSpec, PretrainConfig, train_step_dist};

type B = Autodiff<Flex>;

const VOCAB: usize = 120;
const SPECIAL: SpecialIds = SpecialIds { pad: 0, cls: 1, sep: 2, mask: 3, vocab_size: VOCAB };
const STEPS: u64 = 20;

fn config() -> PretrainConfig {
    let mut model = ElectraConfig::small();
    model.vocab_size = VOCAB;
    model.embedding_size = Some(16);
    model.hidden_size = 16;
    model.num_hidden_layers = 1;
    model.num_attention_heads = 2;
    model.intermediate_size = 32;
    model.max_position_embeddings = 32;
    model.hidden_dropout_prob = 0.0;
    model.attention_probs_dropout_prob = 0.0;
    PretrainConfig {
        model: ModelSpec::Custom(Box::new(model)),
        generator_size: 0.5,
        max_seq_len: 16,
        batch_size: 12,
        grad_accumulation: 2,
        chunk_size: Some(2),
        warmup_steps: 2,
        learning_rate: 2e-3,
        bias_correction: true,
        ..PretrainConfig::default()
    }
}

/// Example `i` of the data: `[CLS] words [SEP]`, 5 to 16 tokens.
fn example(i: u64) -> Vec<u32> {
    let len = 5 + (i * 7 % 12) as usize;
    (0..len)
        .map(|j| match j {
            0 => SPECIAL.cls,
            _ if j == len - 1 => SPECIAL.sep,
            _ => 4 + ((i as usize * 31 + j * 17) % (VOCAB - 4)) as u32,
        })
        .collect()
}

/// Examples `first..first + rows` padded to their longest, as `Batches` makes them.
fn batch(first: u64, rows: usize) -> HostBatch {
    let examples: Vec<Vec<u32>> = (first..first + rows as u64).map(example).collect();
    let seq = examples.iter().map(Vec::len).max().unwrap_or(1);
    let mut b = HostBatch { input_ids: Vec::new(), token_type_ids: Vec::new(), attention_mask: Vec::new(), batch: rows, seq };
    for ex in examples {
        for j in 0..seq {
            b.input_ids.push(ex.get(j).copied().unwrap_or(SPECIAL.pad));
            b.token_type_ids.push(0);
            b.attention_mask.push(u32::from(j < ex.len()));
        }
    }
    b
}

struct Values(Vec<f32>);

impl ModuleVisitor<B> for Values {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.0.extend(param.val().into_data().to_vec::<f32>().unwrap_or_default());
    }
}

/// `STEPS` steps on this rank's share of every global micro-batch; the losses of each step (the
/// global ones, summed over ranks) and the final parameters.
fn train(dist: &dyn Reduce) -> (Vec<(f64, f64)>, Vec<f32>) {
    let c = config();
    let networks = c.networks(VOCAB).unwrap();
    let mut model = ElectraPreTraining::<B>::init(&networks, 7, &Default::default()).unwrap();
    let mut optim = ElectraAdam::from_config(&c).init::<B, ElectraPreTraining<B>>();
    let masker = electra_train::masker(&c, SPECIAL, None).unwrap();
    let micro = c.batch_size / c.grad_accumulation;
    let rows = dist.rows(micro);
    let mut losses = Vec::new();
    for step in 0..STEPS {
        let (next, mut outcome) = train_step_dist(model, &mut optim, &c, &masker, step, dist, |k| {
            Ok(batch(step * c.batch_size as u64 + (k * micro + rows.start) as u64, rows.len()))
        })
        .unwrap();
        losses.push(outcome.losses().unwrap());
        model = next;
    }
    let mut values = Values(Vec::new());
    model.visit(&mut values);
    (losses, values.0)
}

fn ranks(world: usize) -> Vec<(Vec<(f64, f64)>, Vec<f32>)> {
    let coordinator = Coordinator::bind("127.0.0.1:0", world).unwrap();
    let addr = coordinator.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || coordinator.serve(Duration::from_secs(60)));
    let handles: Vec<_> = (0..world)
        .map(|rank| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let hello = Hello { protocol: PROTOCOL, job: "test".into(), world, rank, fingerprints: Default::default() };
                let peer = Peer::connect(&addr, &hello, Duration::from_secs(30), Duration::from_secs(120)).unwrap();
                let out = train(&peer);
                peer.finish().unwrap();
                out
            })
        })
        .collect();
    let out = handles.into_iter().map(|h| h.join().unwrap()).collect();
    server.join().unwrap().unwrap();
    out
}

#[test]
fn two_and_three_ranks_reproduce_one_process() {
    let (single_losses, single) = train(&Local);
    assert!(single_losses.iter().all(|(m, d)| m.is_finite() && d.is_finite() && *m > 0.0 && *d > 0.0));
    let first = single_losses[0];
    let last = single_losses[STEPS as usize - 1];
    assert!(last.1 < first.1, "the discriminator did not learn: {first:?} -> {last:?}");
    for world in [2, 3] {
        let results = ranks(world);
        for (rank, (losses, params)) in results.iter().enumerate() {
            assert_eq!(params, &results[0].1, "world {world}: rank {rank} holds other parameters than rank 0");
            for (step, (a, b)) in single_losses.iter().zip(losses).enumerate() {
                assert!((a.0 - b.0).abs() < 1e-5 && (a.1 - b.1).abs() < 1e-5, "world {world}, step {step}: {a:?} vs {b:?}");
            }
        }
        let diff = single.iter().zip(&results[0].1).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(diff < 1e-5, "world {world}: parameters differ from one process by {diff}");
    }
}
