//! End-to-end tests of the inference commands on the HuggingFace fixture models: one JSON line
//! per input line, the shapes and invariants of each record, and clear errors on bad input.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../electra-model/tests/fixtures").join(dir)
}

fn electra(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_electra")).args(args).output().expect("run electra");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn records(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

const INPUT: &str = "tok5 tok6 tok7\n\ntok9 [MASK] tok11 [MASK]\nan unknown line tok8\n";

#[test]
fn score_writes_one_record_per_line() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.txt");
    std::fs::write(&input, INPUT).unwrap();
    let output = tmp.path().join("out.jsonl");
    let model = fixture("electra_proj/disc");
    let (ok, err) = electra(&["score", "--model", model.to_str().unwrap(), "--input", input.to_str().unwrap(), "--output", output.to_str().unwrap()]);
    assert!(ok, "{err}");
    let recs = records(&output);
    assert_eq!(recs.len(), 4);
    assert_eq!(recs[0]["tokens"], serde_json::json!(["tok5", "tok6", "tok7"]));
    assert_eq!(recs[1]["tokens"].as_array().unwrap().len(), 0, "empty line, empty tokens");
    for r in &recs {
        let n = r["tokens"].as_array().unwrap().len();
        assert_eq!(r["logits"].as_array().unwrap().len(), n);
        for (l, p) in r["logits"].as_array().unwrap().iter().zip(r["replaced_prob"].as_array().unwrap()) {
            let (l, p) = (l.as_f64().unwrap(), p.as_f64().unwrap());
            assert!((p - 1.0 / (1.0 + (-l).exp())).abs() < 1e-6);
        }
    }
}

#[test]
fn fill_mask_returns_top_k_sorted_at_each_mask() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.txt");
    std::fs::write(&input, INPUT).unwrap();
    let output = tmp.path().join("out.jsonl");
    let model = fixture("electra_deep/gen");
    let (ok, err) = electra(&["fill-mask", "--model", model.to_str().unwrap(), "--input", input.to_str().unwrap(), "--output", output.to_str().unwrap(), "--top-k", "3"]);
    assert!(ok, "{err}");
    let recs = records(&output);
    assert_eq!(recs.len(), 4);
    let masks = recs[2]["masks"].as_array().unwrap();
    assert_eq!(masks.len(), 2);
    assert_eq!(masks[0]["position"], 1);
    assert_eq!(masks[1]["position"], 3);
    for m in masks {
        let preds = m["predictions"].as_array().unwrap();
        assert_eq!(preds.len(), 3);
        let probs: Vec<f64> = preds.iter().map(|p| p["prob"].as_f64().unwrap()).collect();
        assert!(probs.windows(2).all(|w| w[0] >= w[1]), "{probs:?}");
        assert!(probs.iter().all(|p| *p > 0.0 && *p <= 1.0));
    }
    assert_eq!(recs[0]["masks"].as_array().unwrap().len(), 0);
}

#[test]
fn embed_normalizes_and_pools() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.txt");
    std::fs::write(&input, INPUT).unwrap();
    let model = fixture("bert/base");
    for pooling in ["cls", "mean"] {
        let output = tmp.path().join(format!("{pooling}.jsonl"));
        let (ok, err) = electra(&["embed", "--model", model.to_str().unwrap(), "--input", input.to_str().unwrap(), "--output", output.to_str().unwrap(), "--pooling", pooling, "--normalize"]);
        assert!(ok, "{err}");
        let recs = records(&output);
        assert_eq!(recs.len(), 4);
        for r in &recs {
            let v: Vec<f64> = r["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
            assert_eq!(v.len(), 32);
            let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "{norm}");
        }
    }
}

#[test]
fn invalid_utf8_is_an_error_naming_the_line_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("bad.txt");
    std::fs::write(&input, b"fine\n\xff\xfe broken\n").unwrap();
    let output = tmp.path().join("out.jsonl");
    let model = fixture("electra_proj/disc");
    let (ok, err) = electra(&["score", "--model", model.to_str().unwrap(), "--input", input.to_str().unwrap(), "--output", output.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("bad.txt:2") && err.contains("invalid UTF-8"), "{err}");
    assert!(!output.exists());
}

#[test]
fn long_lines_are_truncated_not_fatal() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("long.txt");
    std::fs::write(&input, "tok5 ".repeat(500) + "\n").unwrap();
    let output = tmp.path().join("out.jsonl");
    let model = fixture("electra_proj/disc"); // 64 positions
    let (ok, err) = electra(&["score", "--model", model.to_str().unwrap(), "--input", input.to_str().unwrap(), "--output", output.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(err.contains("truncated"), "{err}");
    assert_eq!(records(&output)[0]["tokens"].as_array().unwrap().len(), 62);
}

#[test]
fn missing_model_directory_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.txt");
    std::fs::write(&input, "x\n").unwrap();
    let (ok, err) = electra(&["embed", "--model", "/nonexistent/model", "--input", input.to_str().unwrap(), "--output", "/tmp/unused.jsonl"]);
    assert!(!ok);
    assert!(err.contains("/nonexistent/model"), "{err}");
}

fn task_fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../electra-finetune/tests/fixtures/tasks").join(path)
}

#[test]
fn finetune_then_classify_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ft");
    let model = fixture("electra_proj/disc");
    let data = task_fixture("sms_spam_sample.tsv");
    let (ok, err) = electra(&[
        "finetune", "--model", model.to_str().unwrap(), "--data", data.to_str().unwrap(), "--out", out.to_str().unwrap(),
        "--epochs", "2", "--seeds", "2", "--batch-size", "4", "--max-seq-len", "32",
    ]);
    assert!(ok, "{err}");
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["seeds"].as_array().unwrap().len(), 2);
    assert_eq!(summary["init"], "pretrained");
    let acc = summary["median"]["dev_accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc));
    assert!(summary["median"]["test_accuracy"].is_number(), "the sample has a labelled test split");
    let best = out.join("seed-1");
    for f in ["config.json", "model.safetensors", "vocab.txt", "result.json"] {
        assert!(best.join(f).is_file(), "{f} missing");
    }
    let input = tmp.path().join("in.txt");
    std::fs::write(&input, "free entry win a prize now\nsee you at lunch\tok\n").unwrap();
    let output = tmp.path().join("labels.jsonl");
    let (ok, err) = electra(&["classify", "--model", best.to_str().unwrap(), "--input", input.to_str().unwrap(), "--output", output.to_str().unwrap()]);
    assert!(ok, "{err}");
    let recs = records(&output);
    assert_eq!(recs.len(), 2);
    for r in &recs {
        let p = r["probabilities"].as_object().unwrap();
        assert_eq!(p.len(), 2);
        let total: f64 = p.values().map(|v| v.as_f64().unwrap()).sum();
        assert!((total - 1.0).abs() < 1e-5);
        let label = r["label"].as_str().unwrap();
        assert!(label == "ham" || label == "spam");
        let best = p.iter().max_by(|a, b| a.1.as_f64().unwrap().total_cmp(&b.1.as_f64().unwrap())).unwrap().0;
        assert_eq!(best, label);
    }
}

#[test]
fn finetune_errors_name_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let model = fixture("electra_proj/disc");
    // A model directory without weights.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::copy(model.join("config.json"), empty.join("config.json")).unwrap();
    std::fs::copy(model.join("vocab.txt"), empty.join("vocab.txt")).unwrap();
    let data = task_fixture("sms_spam_sample.tsv");
    let (ok, err) = electra(&["finetune", "--model", empty.to_str().unwrap(), "--data", data.to_str().unwrap(), "--out", tmp.path().join("o").to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("model.safetensors") || err.contains("pytorch_model.bin"), "{err}");
    // A dev label the training split does not have.
    let train = tmp.path().join("train.tsv");
    let dev = tmp.path().join("dev.tsv");
    std::fs::write(&train, "text\tlabel\ngood film\tpos\nbad film\tneg\n").unwrap();
    std::fs::write(&dev, "text\tlabel\nfine film\tpos\nodd film\tmixed\n").unwrap();
    let (ok, err) = electra(&["finetune", "--model", model.to_str().unwrap(), "--train", train.to_str().unwrap(), "--dev", dev.to_str().unwrap(), "--out", tmp.path().join("o2").to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("dev.tsv:3") && err.contains("mixed"), "{err}");
    // classify on a pre-training model (no task head).
    let input = tmp.path().join("in.txt");
    std::fs::write(&input, "hello\n").unwrap();
    let (ok, err) = electra(&["classify", "--model", model.to_str().unwrap(), "--input", input.to_str().unwrap(), "--output", tmp.path().join("x.jsonl").to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("ElectraForPreTraining"), "{err}");
}

#[test]
fn finetune_refuses_an_existing_run_unless_overwrite_clears_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ft");
    let model = fixture("electra_proj/disc");
    let data = task_fixture("sms_spam_sample.tsv");
    let (model, data, out_arg) = (model.to_str().unwrap(), data.to_str().unwrap(), out.to_str().unwrap());
    let run = |extra: &[&str]| {
        let mut args = vec!["finetune", "--model", model, "--data", data, "--out", out_arg, "--epochs", "1", "--batch-size", "8", "--max-seq-len", "32"];
        args.extend_from_slice(extra);
        electra(&args)
    };
    let (ok, err) = run(&[]);
    assert!(ok, "{err}");
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let summary = std::fs::read_to_string(out.join("summary.json")).unwrap();
    // A fresh run into it is refused, names what is there and offers --overwrite; nothing changes.
    let (ok, err) = run(&["--seed", "2"]);
    assert!(!ok);
    assert!(err.contains("already holds a fine-tuning run") && err.contains("seed-1") && err.contains("summary.json"), "{err}");
    assert!(err.contains("--overwrite"), "{err}");
    assert_eq!(std::fs::read_to_string(out.join("summary.json")).unwrap(), summary);
    assert!(!out.join("seed-2").exists());
    // --overwrite deletes the old run's files (only those) first.
    let (ok, err) = run(&["--seed", "2", "--overwrite"]);
    assert!(ok, "{err}");
    assert!(!out.join("seed-1").exists(), "the old run's seed-1 survived --overwrite");
    assert!(out.join("seed-2/model.safetensors").is_file());
    assert_eq!(std::fs::read_to_string(out.join("notes.txt")).unwrap(), "mine");
}
