//! `electra pretrain --init`: continued pre-training from electra-model's BERT fixture (a
//! `BertModel` written by transformers, vocabulary `[PAD] ... [MASK] tok5 ... tok127`) on a
//! small corpus in that vocabulary, through the binary: the checkpoint's vocabulary is the
//! run's, the summary reports the context probes, and another `--vocab` is refused naming both.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../electra-model/tests/fixtures").join(dir)
}

/// Runs `electra`; returns success, stdout and stderr.
fn electra(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_electra")).args(args).output().expect("run electra");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// 200 short documents of the fixture's tokens, each token often followed by its successor.
fn corpus(dir: &Path) -> PathBuf {
    let path = dir.join("corpus.txt");
    let text: String = (0..200u64)
        .map(|d| {
            let line: Vec<String> = (0..12u64).map(|i| format!("tok{}", 5 + (d * 7 + i * (1 + d % 3)) % 123)).collect();
            line.join(" ") + "\n\n"
        })
        .collect();
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn pretrain_continues_from_a_checkpoint_with_its_vocabulary() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = corpus(tmp.path());
    let out = tmp.path().join("run");
    let init = fixture("bert/base");
    let (ok, stdout, stderr) = electra(&[
        "pretrain",
        "--init",
        init.to_str().unwrap(),
        "--corpus",
        corpus.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--steps",
        "2",
    ]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("continuing from") && stderr.contains("bert/base"), "{stderr}");
    assert!(stdout.contains("context probes") && stdout.contains("AUC on unigram replacements"), "{stdout}");
    // The run used (and exported) the checkpoint's vocabulary, and recorded the checkpoint.
    assert_eq!(
        std::fs::read_to_string(out.join("discriminator/vocab.txt")).unwrap().lines().count(),
        128
    );
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert!(config["init"]["dir"].as_str().unwrap().ends_with("bert/base"), "{config}");
    assert!(Path::new(config["init"]["dir"].as_str().unwrap()).is_absolute(), "{config}");
    // The checkpoint's own evaluation comes first.
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let first_eval = metrics.lines().find(|l| l.contains("\"kind\":\"eval\"")).unwrap();
    assert!(first_eval.contains("\"step\":0"), "{first_eval}");
}

#[test]
fn another_vocabulary_than_the_checkpoint_s_is_refused_naming_both() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = corpus(tmp.path());
    let other = fixture("electra_proj/disc/vocab.txt");
    let (ok, _, stderr) = electra(&[
        "pretrain",
        "--init",
        fixture("bert/base").to_str().unwrap(),
        "--vocab",
        other.to_str().unwrap(),
        "--corpus",
        corpus.to_str().unwrap(),
        "--out",
        tmp.path().join("run").to_str().unwrap(),
        "--steps",
        "1",
    ]);
    assert!(!ok);
    assert!(stderr.contains("electra_proj/disc/vocab.txt") && stderr.contains("100 entries"), "{stderr}");
    assert!(stderr.contains("bert/base") && stderr.contains("128 entries"), "{stderr}");
    assert!(!tmp.path().join("run").exists(), "nothing written");
}

#[test]
fn a_directory_that_holds_no_model_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let (ok, _, stderr) =
        electra(&["pretrain", "--init", tmp.path().to_str().unwrap(), "--out", tmp.path().join("run").to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("not a model directory") && stderr.contains(tmp.path().to_str().unwrap()), "{stderr}");
}
