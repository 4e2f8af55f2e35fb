//! Token ids against HuggingFace's pure-Python `BertTokenizer` (fixture written by
//! `scripts/make_tokenizer_fixture.py`; see its header for the pinned versions).

use std::path::PathBuf;

use electra_tokenizer::{NormalizerOptions, WordPieceTokenizer};
use serde::Deserialize;
use sha2::{Digest, Sha256};

mod common;
use common::{fixture, root, scratch};

fn vocab_dir() -> PathBuf {
    root().join("datasets/vocab")
}

#[derive(Deserialize)]
struct IdsLine {
    text: String,
    ids: Vec<u32>,
}

#[derive(Deserialize)]
struct PairLine {
    a: String,
    b: Option<String>,
    max_len: usize,
    input_ids: Vec<u32>,
    token_type_ids: Vec<u32>,
}

fn ids_fixture() -> Vec<IdsLine> {
    fixture("bert_uncased_ids.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("fixture line is json"))
        .collect()
}

fn check_all(tok: &WordPieceTokenizer, what: &str) {
    let lines = ids_fixture();
    assert!(
        lines.len() >= 2000,
        "fixture has only {} lines",
        lines.len()
    );
    let mut mismatches = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let got = tok.encode_ids(&line.text).expect("encode");
        if got != line.ids {
            mismatches.push(format!(
                "line {}: {:?}\n  expected {:?}\n  got      {:?}",
                i + 1,
                line.text.chars().take(80).collect::<String>(),
                line.ids,
                got
            ));
        }
    }
    // every line must match exactly: no tolerance
    assert!(
        mismatches.is_empty(),
        "{what}: {} of {} lines differ from HuggingFace:\n{}",
        mismatches.len(),
        lines.len(),
        mismatches
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn vocab_txt_matches_huggingface_on_every_line() {
    let tok =
        WordPieceTokenizer::from_vocab_txt(vocab_dir().join("vocab.txt"), true).expect("load");
    check_all(&tok, "vocab.txt");
}

#[test]
fn tokenizer_json_matches_huggingface_on_every_line() {
    let tok =
        WordPieceTokenizer::from_tokenizer_json(vocab_dir().join("tokenizer.json")).expect("load");
    check_all(&tok, "tokenizer.json");
}

#[test]
fn from_dir_matches_huggingface_on_every_line() {
    let tok = WordPieceTokenizer::from_dir(vocab_dir()).expect("load");
    assert_eq!(tok.normalizer_options(), NormalizerOptions::UNCASED);
    check_all(&tok, "model directory");
}

#[test]
fn encode_variants_agree() {
    let tok = WordPieceTokenizer::from_dir(vocab_dir()).expect("load");
    let lines = ids_fixture();
    let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
    let batch = tok.encode_batch(&texts).expect("batch");
    assert_eq!(batch.len(), texts.len());
    for (line, enc) in lines.iter().zip(&batch) {
        assert_eq!(enc.ids, line.ids, "{:?}", line.text);
        assert_eq!(enc.tokens.len(), enc.ids.len());
        assert_eq!(enc.offsets.len(), enc.ids.len());
        for (t, id) in enc.tokens.iter().zip(&enc.ids) {
            assert_eq!(tok.token_to_id(t), Some(*id));
            assert_eq!(tok.id_to_token(*id).as_deref(), Some(t.as_str()));
        }
        for &(s, e) in &enc.offsets {
            assert!(
                s <= e && e <= line.text.len(),
                "offset ({s}, {e}) in {:?}",
                line.text
            );
            assert!(line.text.is_char_boundary(s) && line.text.is_char_boundary(e));
        }
    }
}

#[test]
fn tokens_and_byte_offsets() {
    let tok = WordPieceTokenizer::from_dir(vocab_dir()).expect("load");
    let text = "Café naïve, hello Ishmael!";
    let enc = tok.encode(text).expect("encode");
    let pieces: Vec<&str> = enc.offsets.iter().map(|&(s, e)| &text[s..e]).collect();
    assert_eq!(enc.tokens[..4], ["cafe", "naive", ",", "hello"]);
    assert_eq!(pieces[..4], ["Café", "naïve", ",", "hello"]);
    assert_eq!(enc.tokens.last().map(String::as_str), Some("!"));
    // the word pieces of "Ishmael" cover it exactly, in order
    let word: String = pieces[4..pieces.len() - 1].concat();
    assert_eq!(word, "Ishmael");
    for (t, p) in enc.tokens[4..].iter().zip(&pieces[4..]) {
        assert_eq!(t.trim_start_matches("##"), p.to_lowercase());
    }
}

#[test]
fn special_tokens_vocab_size_and_hash() {
    let path = vocab_dir().join("vocab.txt");
    let a = WordPieceTokenizer::from_vocab_txt(&path, true).expect("load");
    let b =
        WordPieceTokenizer::from_tokenizer_json(vocab_dir().join("tokenizer.json")).expect("load");
    assert_eq!(a.vocab_size(), 30_522);
    assert_eq!(b.vocab_size(), 30_522);
    let s = a.special_tokens();
    assert_eq!(
        (s.pad, s.unk, s.cls, s.sep, s.mask),
        (0, 100, 101, 102, 103)
    );
    assert_eq!(b.special_tokens(), s);
    let file_hash = {
        let bytes = std::fs::read(&path).expect("read vocab");
        Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    assert_eq!(a.vocab_sha256(), file_hash);
    assert_eq!(b.vocab_sha256(), file_hash);
    assert_eq!(a.vocab_tokens().len(), 30_522);
    assert_eq!(a.token_to_id("##ing"), Some(2075));
    assert_eq!(a.token_to_id("not-a-token"), None);
}

#[test]
fn pairs_match_huggingface_truncation() {
    let tok = WordPieceTokenizer::from_dir(vocab_dir()).expect("load");
    let mut n = 0;
    for line in fixture("bert_uncased_pairs.jsonl").lines() {
        let p: PairLine = serde_json::from_str(line).expect("json");
        let got = tok
            .encode_pair(&p.a, p.b.as_deref(), p.max_len)
            .expect("pair");
        assert_eq!(
            got.input_ids, p.input_ids,
            "a={:?} b={:?} max_len={}",
            p.a, p.b, p.max_len
        );
        assert_eq!(got.token_type_ids, p.token_type_ids);
        assert!(got.len() <= p.max_len);
        n += 1;
    }
    assert!(n >= 100);
}

#[test]
fn cased_tokenizer_keeps_case() {
    let opts = NormalizerOptions {
        lowercase: false,
        strip_accents: Some(false),
    };
    let tok =
        WordPieceTokenizer::from_vocab_txt_with(vocab_dir().join("vocab.txt"), opts).expect("load");
    // the uncased vocabulary has no capitalised entries: "Hello" is unknown when case is kept
    let enc = tok.encode("Hello hello").expect("encode");
    assert_eq!(enc.ids[0], tok.special_tokens().unk);
    assert_eq!(enc.tokens[1], "hello");
}

#[test]
fn tokenizer_config_overrides_lower_casing() {
    for (files, name) in [
        (&["tokenizer.json"][..], "json"),
        (&["vocab.txt"][..], "txt"),
    ] {
        // Fresh each run: the test leaves a broken tokenizer_config.json behind.
        let d = scratch(&format!("config/{name}"));
        for f in files {
            std::fs::copy(vocab_dir().join(f), d.join(f)).expect("copy");
        }
        let uncased = WordPieceTokenizer::from_dir(&d).expect("load");
        assert_eq!(
            uncased.normalizer_options(),
            NormalizerOptions::UNCASED,
            "{name}"
        );
        std::fs::write(
            d.join("tokenizer_config.json"),
            r#"{"do_lower_case": false}"#,
        )
        .expect("write");
        let cased = WordPieceTokenizer::from_dir(&d).expect("load");
        assert!(!cased.normalizer_options().lowercase, "{name}");
        let enc = cased.encode("Hello hello").expect("encode");
        assert_eq!(enc.ids[0], cased.special_tokens().unk, "{name}");
        std::fs::write(d.join("tokenizer_config.json"), "{not json").expect("write");
        let err = WordPieceTokenizer::from_dir(&d).expect_err("bad config");
        assert!(err.to_string().contains("tokenizer_config.json"), "{err}");
    }
    let err = WordPieceTokenizer::from_dir(scratch("config/missing")).expect_err("no files");
    assert!(
        err.to_string()
            .contains("neither tokenizer.json nor vocab.txt"),
        "{err}"
    );
}

#[test]
fn shared_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<WordPieceTokenizer>();
    check::<electra_tokenizer::ShardReader>();
    check::<electra_tokenizer::Error>();
}
