//! Data-parallel pre-training with real processes over loopback: a killed rank stops the others
//! with its name, a rank with another config is refused at start, a coordinator port in use is
//! a clear error, and a two-rank run writes one run directory.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn electra() -> Command {
    Command::new(env!("CARGO_BIN_EXE_electra"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A corpus and a tiny config (`steps` steps) in `dir`; returns the config path.
fn setup(dir: &Path, steps: u64, lr: f64) -> PathBuf {
    let text: String = (0..60).map(|i| format!("the whale number {i} swam far.\nit was seen by the crew at dawn.\n\n")).collect();
    std::fs::write(dir.join("corpus.txt"), text).unwrap();
    let model = serde_json::json!({
        "vocab_size": 30522, "embedding_size": 16, "hidden_size": 16, "num_hidden_layers": 1,
        "num_attention_heads": 1, "intermediate_size": 32, "max_position_embeddings": 64,
        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0
    });
    let cfg = serde_json::json!({
        "model": model, "max_seq_len": 32, "batch_size": 4, "steps": steps, "warmup_steps": 1, "learning_rate": lr,
        "eval_every": 0, "eval_batches": 1, "checkpoint_every": 0, "keep_checkpoints": 1, "log_every": 1, "chunk_size": 1
    });
    let path = dir.join(format!("config-{lr}.json"));
    std::fs::write(&path, cfg.to_string()).unwrap();
    path
}

fn rank(dir: &Path, config: &Path, world: usize, rank: usize, address: &str) -> Child {
    electra()
        .args(["pretrain", "--config", config.to_str().unwrap(), "--corpus", dir.join("corpus.txt").to_str().unwrap()])
        .args(["--vocab", repo().join("datasets/vocab/vocab.txt").to_str().unwrap()])
        .args(["--out", dir.join("run").to_str().unwrap(), "--world", &world.to_string(), "--rank", &rank.to_string()])
        .args(["--coordinator", address])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn coordinator(world: usize, address: &str) -> Child {
    electra()
        .args(["coordinator", "--world", &world.to_string(), "--listen", address, "--join-timeout", "120"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for `child` at most `limit`; its success and stderr.
fn finish(mut child: Child, limit: Duration) -> (bool, String) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child.stderr.take().map(|mut e| e.read_to_string(&mut err));
            return (status.success(), err);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("a process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn two_ranks_train_into_one_run_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let config = setup(tmp.path(), 3, 1e-3);
    let address = format!("127.0.0.1:{}", free_port());
    let c = coordinator(2, &address);
    let r0 = rank(tmp.path(), &config, 2, 0, &address);
    let r1 = rank(tmp.path(), &config, 2, 1, &address);
    for (name, child) in [("rank 0", r0), ("rank 1", r1), ("coordinator", c)] {
        let (ok, err) = finish(child, Duration::from_secs(300));
        assert!(ok, "{name}: {err}");
    }
    let metrics = std::fs::read_to_string(tmp.path().join("run/metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().filter(|l| l.contains("\"train\"")).count(), 3, "one writer: {metrics}");
    assert!(tmp.path().join("run/discriminator/model.safetensors").is_file());
}

#[test]
fn a_killed_rank_stops_every_other_rank_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let config = setup(tmp.path(), 100_000, 1e-3);
    let address = format!("127.0.0.1:{}", free_port());
    let c = coordinator(2, &address);
    let mut r0 = rank(tmp.path(), &config, 2, 0, &address);
    let mut r1 = rank(tmp.path(), &config, 2, 1, &address);
    // Wait until training runs (rank 0 has logged a step), then kill rank 1 hard.
    let metrics = tmp.path().join("run/metrics.jsonl");
    let start = Instant::now();
    while std::fs::read_to_string(&metrics).map(|m| m.lines().count()).unwrap_or(0) < 2 {
        assert!(start.elapsed() < Duration::from_secs(300), "training never started");
        assert!(r0.try_wait().unwrap().is_none() && r1.try_wait().unwrap().is_none(), "a rank exited before training");
        std::thread::sleep(Duration::from_millis(100));
    }
    r1.kill().unwrap();
    let _ = r1.wait();
    let killed = Instant::now();
    let (ok0, err0) = finish(r0, Duration::from_secs(60));
    let (okc, errc) = finish(c, Duration::from_secs(60));
    assert!(killed.elapsed() < Duration::from_secs(60));
    assert!(!ok0 && err0.contains("lost rank 1"), "rank 0: {err0}");
    assert!(!okc && errc.contains("lost rank 1"), "coordinator: {errc}");
}

#[test]
fn a_rank_with_another_config_is_refused_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let config = setup(tmp.path(), 3, 1e-3);
    let other = setup(tmp.path(), 3, 5e-4);
    let address = format!("127.0.0.1:{}", free_port());
    let c = coordinator(2, &address);
    let r0 = rank(tmp.path(), &config, 2, 0, &address);
    let r1 = rank(tmp.path(), &other, 2, 1, &address);
    for (name, child) in [("rank 0", r0), ("rank 1", r1), ("coordinator", c)] {
        let (ok, err) = finish(child, Duration::from_secs(300));
        assert!(!ok && err.contains("rank 1 refused") && err.contains("config differs"), "{name}: {err}");
    }
}

#[test]
fn a_coordinator_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let (ok, err) = finish(coordinator(2, &address), Duration::from_secs(60));
    assert!(!ok && err.contains(&format!("cannot listen on {address}")) && err.contains("in use"), "{err}");
}
