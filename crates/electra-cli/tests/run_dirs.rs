//! Output directories from the command line: a fresh `electra prepare` / `electra pretrain`
//! into a directory holding earlier output is refused and changes nothing; `--resume` and
//! `--overwrite` are the two ways on.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn electra(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_electra")).args(args).output().expect("run electra");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn corpus(dir: &Path) -> PathBuf {
    let path = dir.join("corpus.txt");
    let text: String = (0..40).map(|i| format!("the whale number {i} swam far.\nit was seen at dawn.\n\n")).collect();
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn prepare_refuses_an_existing_preparation_unless_resumed_or_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = corpus(tmp.path());
    let vocab = repo().join("datasets/vocab/vocab.txt");
    let out = tmp.path().join("data");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = ["prepare", "--corpus", corpus.to_str().unwrap(), "--vocab", vocab.to_str().unwrap()]
            .iter()
            .map(ToString::to_string)
            .collect();
        a.extend(["--out".to_string(), out.to_str().unwrap().to_string(), "--max-seq-len".into(), "32".into()]);
        a.extend(extra.iter().map(ToString::to_string));
        a
    };
    let run = |extra: &[&str]| {
        let a = args(extra);
        electra(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let (ok, err) = run(&[]);
    assert!(ok, "{err}");
    let manifest = std::fs::read(out.join("manifest.json")).unwrap();

    let (ok, err) = run(&[]);
    assert!(!ok, "a second fresh preparation into the same directory succeeded");
    assert!(err.contains("manifest.json") && err.contains("--resume") && err.contains("--overwrite"), "{err}");
    assert_eq!(std::fs::read(out.join("manifest.json")).unwrap(), manifest);

    let (ok, err) = run(&["--resume"]);
    assert!(ok, "{err}");
    let (ok, err) = run(&["--overwrite", "--seed", "3"]);
    assert!(ok, "{err}");
    assert_ne!(std::fs::read(out.join("manifest.json")).unwrap(), manifest, "--overwrite did not prepare anew");
    let (ok, err) = run(&["--resume", "--overwrite"]);
    assert!(!ok && err.contains("cannot be used with"), "{err}");
}

#[test]
fn pretrain_refuses_an_existing_run_and_names_the_way_on() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = corpus(tmp.path());
    let config = tmp.path().join("tiny.json");
    let model = serde_json::json!({
        "vocab_size": 30522, "embedding_size": 16, "hidden_size": 16, "num_hidden_layers": 1,
        "num_attention_heads": 1, "intermediate_size": 32, "max_position_embeddings": 64
    });
    let cfg = serde_json::json!({
        "model": model, "max_seq_len": 32, "batch_size": 4, "steps": 2, "warmup_steps": 1,
        "eval_every": 0, "eval_batches": 1, "checkpoint_every": 1, "keep_checkpoints": 2, "log_every": 1
    });
    std::fs::write(&config, cfg.to_string()).unwrap();
    let out = tmp.path().join("run");
    let run = |extra: &[&str]| {
        let vocab = repo().join("datasets/vocab/vocab.txt");
        let mut a = vec!["pretrain", "--config", config.to_str().unwrap(), "--corpus", corpus.to_str().unwrap(), "--out", out.to_str().unwrap()];
        a.extend(["--vocab", vocab.to_str().unwrap()]);
        a.extend_from_slice(extra);
        electra(&a.to_vec())
    };
    let (ok, err) = run(&[]);
    assert!(ok, "{err}");
    let (ok, err) = run(&["--steps", "1"]);
    assert!(!ok && err.contains("already holds a run") && err.contains("--overwrite"), "{err}");
    let (ok, err) = run(&["--steps", "1", "--resume"]);
    assert!(!ok && err.contains("past this config's 1 steps"), "{err}");
    let (ok, err) = run(&["--steps", "3", "--resume"]);
    assert!(ok, "{err}");
    let (ok, err) = run(&["--steps", "1", "--overwrite"]);
    assert!(ok, "{err}");
}
