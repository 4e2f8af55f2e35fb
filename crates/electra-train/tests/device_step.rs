//! On a GPU backend (WGPU with fusion and autotuning, as the `electra` binary's GPU builds run;
//! lavapipe in CI) a pre-training step on the device path reads nothing back from the device,
//! and reading its outcome does.
//!
//! Reads and kernel launches are counted from the GPU runtime's own loggers (cubecl's memory
//! logger at level `full` writes one `[Staging CPU Memory] Reserved memory` line per tensor
//! copied to the host, the only use of that pool on WGPU; its profiling logger at level
//! `minimal` writes one `Executing` line per kernel launch), forwarded to the `log` crate and
//! counted here. Run with `cargo test -p electra-train --features test-wgpu --test device_step`.

#![cfg(feature = "test-wgpu")]
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use burn::backend::{Autodiff, Wgpu};
use burn::cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};
use burn::prelude::*;
use electra_corrupt::SpecialIds;
use electra_model::{ElectraConfig, ElectraPreTraining};
use electra_train::data::HostBatch;
use electra_train::optim::ElectraAdam;
use electra_train::{ModelSpec, PretrainConfig, train_step};

type Inner = Wgpu;
type B = Autodiff<Inner>;

const VOCAB: usize = 200;
const SPECIAL: SpecialIds = SpecialIds { pad: 0, cls: 1, sep: 2, mask: 3, vocab_size: VOCAB };

static READS: AtomicUsize = AtomicUsize::new(0);
static LAUNCHES: AtomicUsize = AtomicUsize::new(0);
static LINES: AtomicUsize = AtomicUsize::new(0);

/// Counts the runtime's log lines.
struct Counter;

impl log::Log for Counter {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let line = record.args().to_string();
        LINES.fetch_add(1, Ordering::SeqCst);
        if std::env::var_os("ELECTRA_TEST_LOG").is_some() {
            eprintln!("{line}");
        }
        if line.starts_with("[Staging CPU Memory] Reserved memory") {
            READS.fetch_add(1, Ordering::SeqCst);
        } else if line.starts_with("Executing ") {
            LAUNCHES.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn flush(&self) {}
}

/// The loggers on, before the first tensor exists (the runtime reads its config once).
fn count_runtime_events() {
    let config: CubeClRuntimeConfig = serde_json::from_value(serde_json::json!({
        "memory": {"logger": {"level": "full", "log": "info"}},
        "profiling": {"logger": {"level": "minimal", "log": "info"}},
    }))
    .unwrap();
    CubeClRuntimeConfig::set(config);
    static COUNTER: Counter = Counter;
    log::set_logger(&COUNTER).unwrap();
    log::set_max_level(log::LevelFilter::Info);
}

/// Reads and launches so far, once the device has finished everything queued and the runtime's
/// log thread has caught up (no new line for 300 ms).
fn settled(device: &<Inner as burn::tensor::backend::BackendTypes>::Device) -> (usize, usize) {
    Inner::sync(device).unwrap();
    let now = || (READS.load(Ordering::SeqCst), LAUNCHES.load(Ordering::SeqCst), LINES.load(Ordering::SeqCst));
    let mut last = now();
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let next = now();
        if next == last {
            return (next.0, next.1);
        }
        last = next;
    }
}

fn config() -> PretrainConfig {
    let mut model = ElectraConfig::small();
    model.vocab_size = VOCAB;
    model.embedding_size = Some(16);
    model.hidden_size = 16;
    model.num_hidden_layers = 2;
    model.num_attention_heads = 2;
    model.intermediate_size = 32;
    model.max_position_embeddings = 32;
    PretrainConfig {
        model: ModelSpec::Custom(Box::new(model)),
        generator_size: 0.5,
        max_seq_len: 16,
        batch_size: 4,
        grad_accumulation: 2,
        chunk_size: None,
        warmup_steps: 0,
        learning_rate: 1e-3,
        ..PretrainConfig::default()
    }
}

/// Two rows of 16 tokens; the second has 4 padding positions (so the padded path runs).
fn batch(k: usize) -> HostBatch {
    let (rows, seq) = (2, 16);
    let mut b = HostBatch { input_ids: Vec::new(), token_type_ids: Vec::new(), attention_mask: Vec::new(), batch: rows, seq };
    for r in 0..rows {
        let len = if r == 1 { 12 } else { seq };
        for j in 0..seq {
            let id = match j {
                0 => SPECIAL.cls,
                _ if j == len - 1 => SPECIAL.sep,
                _ if j >= len => SPECIAL.pad,
                _ => 4 + ((k * 7 + r * 31 + j * 17) % (VOCAB - 4)) as u32,
            };
            b.input_ids.push(id);
            b.token_type_ids.push(0);
            b.attention_mask.push(u32::from(j < len));
        }
    }
    b
}

#[test]
fn a_device_path_step_reads_nothing_back() {
    count_runtime_events();
    let device = Default::default();
    let config = config();
    let networks = config.networks(VOCAB).unwrap();
    let mut model = ElectraPreTraining::<B>::init(&networks, 7, &device).unwrap();
    let mut optim = ElectraAdam::from_config(&config).init::<B, ElectraPreTraining<B>>();
    let masker = electra_train::masker(&config, SPECIAL, None).unwrap();

    // Warm-up steps (autotuning, kernel compilation), their values read as a logging step does.
    for step in 0..3 {
        let t = Instant::now();
        let (next, mut outcome) = train_step(model, &mut optim, &config, &masker, step, |k| Ok(batch(k))).unwrap();
        assert!(!outcome.is_read(), "the step took the host path");
        outcome.metrics(step + 1, config.disc_weight).unwrap();
        eprintln!("warm-up step {step}: {:.1} s", t.elapsed().as_secs_f64());
        model = next;
    }
    let (reads_before, launches_before) = settled(&device);
    let (next, mut outcome) = train_step(model, &mut optim, &config, &masker, 3, |k| Ok(batch(k))).unwrap();
    let (reads_after, launches_after) = settled(&device);
    let launches = launches_after - launches_before;
    eprintln!("one device-path step (2 micro-batches of 2 x 16): {launches} kernel launches");
    assert_eq!(reads_after - reads_before, 0, "a non-logging step read from the device");
    assert!(launches > 50, "the launch counter saw only {launches} launches in a step");

    // The counter sees reads: the step's values, read as a logging step reads them.
    let m = outcome.metrics(4, config.disc_weight).unwrap();
    let (reads_logged, _) = settled(&device);
    assert!(reads_logged > reads_after, "reading the outcome was not counted");
    assert!(m.mlm_loss > 0.0 && m.disc_loss > 0.0 && m.grad_norm > 0.0, "{m:?}");
    assert!(m.replaced_fraction > 0.0 && m.replaced_fraction < 1.0, "{m:?}");
    drop(next);
}
