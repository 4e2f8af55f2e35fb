//! Timing harness for the performance work (docs/performance.md, "Optimisations (issue 6)").
//!
//! `cargo run --release -p electra-train --example step_timing -- [what] [reps]` where `what` is
//! `infer` (ELECTRA-Small discriminator forward, 128 x 32, no dropout), `small` (full ELECTRA-Small
//! pre-training step, vocabulary 30,522, 128 x 32), `tiny` (the quick-run step: 4 layers, hidden
//! 128, vocabulary 8,000, 64 x 16) or `all` (default). Prints the median and all times.

use std::time::Instant;

use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use burn::tensor::TensorData;
use electra_corrupt::SpecialIds;
use electra_model::{Discriminator, ElectraConfig, ElectraPreTraining};
use electra_train::data::HostBatch;
use electra_train::optim::ElectraAdam;
use electra_train::{ModelSpec, PretrainConfig};

type Inner = Flex;
type Ad = Autodiff<Flex>;

/// A deterministic stream of pseudo-random numbers (splitmix64), for synthetic inputs.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn special(vocab: usize) -> SpecialIds {
    SpecialIds { pad: 0, cls: 101, sep: 102, mask: 103, vocab_size: vocab }
}

/// `[CLS] A [SEP] B [SEP]` rows of random word ids, no padding.
fn synthetic_batch(batch: usize, seq: usize, vocab: usize) -> HostBatch {
    let mut rng = SplitMix(0);
    let mid = seq / 2;
    let mut b = HostBatch {
        input_ids: Vec::with_capacity(batch * seq),
        token_type_ids: Vec::with_capacity(batch * seq),
        attention_mask: vec![1; batch * seq],
        batch,
        seq,
    };
    for _ in 0..batch {
        for j in 0..seq {
            let id = if j == 0 {
                101
            } else if j == mid || j == seq - 1 {
                102
            } else {
                (999 + rng.next() % (vocab as u64 - 999)) as u32
            };
            b.input_ids.push(id);
            b.token_type_ids.push(u32::from(j > mid));
        }
    }
    b
}

fn int_tensor<B: Backend>(values: &[u32], batch: usize, seq: usize, device: &B::Device) -> Tensor<B, 2, Int> {
    let data: Vec<i64> = values.iter().map(|&v| i64::from(v)).collect();
    Tensor::from_data(TensorData::new(data, [batch, seq]), device)
}

/// User + system CPU time of this process (all threads), in seconds.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return f64::NAN };
    let Some(close) = stat.rfind(')') else { return f64::NAN };
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(f64::NAN);
    (tick(11) + tick(12)) / 100.0
}

/// Wall times of each repetition and the CPU time per repetition.
struct Times {
    wall: Vec<f64>,
    cpu: f64,
}

fn report(name: &str, times: Times) {
    let mut wall = times.wall;
    let all: Vec<String> = wall.iter().map(|t| format!("{:.0}", t * 1e3)).collect();
    wall.sort_by(f64::total_cmp);
    let (min, median) = (wall[0], wall[wall.len() / 2]);
    println!(
        "{name}: median {:.1} ms, min {:.1} ms, cpu {:.1} ms/rep  [{}]",
        median * 1e3,
        min * 1e3,
        times.cpu * 1e3,
        all.join(" ")
    );
}

fn time(reps: usize, warmup: usize, mut f: impl FnMut()) -> Times {
    for _ in 0..warmup {
        f();
    }
    let cpu0 = cpu_seconds();
    let wall = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    Times { wall, cpu: (cpu_seconds() - cpu0) / reps as f64 }
}

fn infer(reps: usize) -> electra_train::Result<()> {
    let device = Default::default();
    let mut config = ElectraConfig { vocab_size: 30522, ..ElectraConfig::small() };
    config.hidden_dropout_prob = 0.0;
    config.attention_probs_dropout_prob = 0.0;
    let model = Discriminator::<Inner>::init(&config, 0, &device)?;
    let (batch, seq) = (32, 128);
    let host = synthetic_batch(batch, seq, 30522);
    let ids = int_tensor::<Inner>(&host.input_ids, batch, seq, &device);
    let types = int_tensor::<Inner>(&host.token_type_ids, batch, seq, &device);
    let mask = int_tensor::<Inner>(&host.attention_mask, batch, seq, &device);
    let times = time(reps, 1, || {
        let logits = model.forward(ids.clone(), types.clone(), mask.clone()).logits;
        let _ = logits.into_data();
    });
    report("infer small 128x32", times);
    Ok(())
}

fn pretrain(name: &str, config: PretrainConfig, vocab: usize, reps: usize) -> electra_train::Result<()> {
    let device = Default::default();
    let networks = config.networks(vocab)?;
    let mut model = Some(ElectraPreTraining::<Ad>::init(&networks, config.seed, &device)?);
    let mut optim = ElectraAdam::from_config(&config).init::<Ad, ElectraPreTraining<Ad>>();
    let masker = electra_train::masker(&config, special(vocab), None)?;
    let host = synthetic_batch(config.batch_size, config.max_seq_len, vocab);
    let mut step = 0u64;
    let mut failure = None;
    let times = time(reps, 1, || {
        let Some(m) = model.take() else { return };
        match electra_train::train_step(m, &mut optim, &config, &masker, step, |_| Ok(host.clone())) {
            Ok((next, _)) => model = Some(next),
            Err(e) => failure = Some(e),
        }
        step += 1;
    });
    if let Some(e) = failure {
        return Err(e);
    }
    report(name, times);
    Ok(())
}

fn main() -> electra_train::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let what = args.get(1).map_or("all", String::as_str);
    let reps: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(5);
    if what == "infer" || what == "all" {
        infer(reps)?;
    }
    if what == "tiny" || what == "all" {
        let config = PretrainConfig {
            model: ModelSpec::Preset("tiny".into()),
            max_seq_len: 64,
            batch_size: 16,
            warmup_steps: 0,
            bias_correction: true,
            ..PretrainConfig::default()
        };
        pretrain("step tiny 64x16 8k", config, 8000, reps * 3)?;
    }
    if what == "small" || what == "all" {
        let config = PretrainConfig { batch_size: 32, max_seq_len: 128, warmup_steps: 0, ..PretrainConfig::default() };
        pretrain("step small 128x32 30k", config, 30522, reps)?;
    }
    Ok(())
}
