//! End-to-end preparation: shards, manifest, reader, resume, and the error cases.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use electra_tokenizer::{
    Error, Manifest, NoProgress, PrepareConfig, PrepareProgress, ShardInfo, ShardReader, Split,
    WordPieceTokenizer, prepare, prepare_with_tokenizer,
};

mod common;
use common::{root, scratch};

fn vocab_txt() -> PathBuf {
    root().join("datasets/vocab/vocab.txt")
}

fn tokenizer() -> WordPieceTokenizer {
    WordPieceTokenizer::from_vocab_txt(vocab_txt(), true).expect("vocab")
}

/// The first `docs` documents of the committed Moby-Dick corpus as text.
fn moby_docs(docs: usize) -> String {
    let text =
        std::fs::read_to_string(root().join("datasets/corpus/moby_dick.txt")).expect("corpus");
    text.split("\n\n")
        .take(docs)
        .collect::<Vec<_>>()
        .join("\n\n")
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("write test input");
}

fn config(inputs: Vec<PathBuf>, out: &Path) -> PrepareConfig {
    let mut c = PrepareConfig::new(inputs, vocab_txt(), out);
    c.max_seq_len = 64;
    c.seed = 7;
    c.validation_fraction = 0.2;
    c.shard_size = 40;
    c.num_workers = 2;
    c.chunk_bytes = 16 << 10;
    c
}

fn shard_hashes(m: &Manifest) -> Vec<(String, String)> {
    m.shards
        .iter()
        .map(|s| (s.ids_sha256.clone(), s.index_sha256.clone()))
        .collect()
}

#[derive(Default)]
struct Recorder {
    bytes: AtomicUsize,
    examples: AtomicUsize,
    shards: Mutex<Vec<ShardInfo>>,
    stop_after_shards: Option<usize>,
    cancel: electra_tokenizer::Cancel,
}

impl PrepareProgress for Recorder {
    fn on_bytes(&self, bytes: u64) {
        self.bytes.fetch_add(bytes as usize, Ordering::Relaxed);
    }
    fn on_examples(&self, _split: Split, n: u64) {
        self.examples.fetch_add(n as usize, Ordering::Relaxed);
    }
    fn on_shard(&self, shard: &ShardInfo) {
        let mut shards = self.shards.lock().expect("lock");
        shards.push(shard.clone());
        if self.stop_after_shards.is_some_and(|n| shards.len() >= n) {
            self.cancel.cancel();
        }
    }
}

#[test]
fn prepares_reads_back_and_is_independent_of_workers() {
    let dir = scratch("roundtrip");
    let input = dir.join("moby.txt");
    write(&input, moby_docs(12).as_bytes());
    let tok = tokenizer();
    assert!(
        std::fs::metadata(&input).expect("meta").len() > 5 * (16 << 10),
        "several chunks"
    );

    let progress = Recorder::default();
    let cfg = config(vec![input.clone()], &dir.join("out1"));
    let m = prepare(&cfg, &progress).expect("prepare");
    assert_eq!(m.train.documents + m.validation.documents, 12);
    assert!(m.validation.documents >= 2);
    assert!(
        m.train.examples > 40 && m.validation.examples > 0,
        "{:?} {:?}",
        m.train,
        m.validation
    );
    assert!(m.train.shards >= 2);
    assert_eq!(
        progress.examples.load(Ordering::Relaxed) as u64,
        m.train.examples + m.validation.examples
    );
    assert_eq!(
        progress.bytes.load(Ordering::Relaxed) as u64,
        std::fs::metadata(&input).expect("meta").len()
    );
    assert_eq!(m.settings.vocab_sha256, tok.vocab_sha256());
    assert_eq!(m.settings.dtype, electra_tokenizer::Dtype::U16);

    let reader =
        ShardReader::open(&cfg.out_dir, Split::Train, tok.vocab_sha256(), 64).expect("open");
    assert_eq!(reader.len() as u64, m.train.examples);
    reader.verify_checksums().expect("checksums");
    let s = tok.special_tokens();
    let mut tokens = 0u64;
    for i in 0..reader.len() {
        let (ids, types) = reader.get(i).expect("get");
        tokens += ids.len() as u64;
        assert!(ids.len() <= 64 && ids.len() >= 3);
        assert_eq!(ids[0], s.cls);
        assert_eq!(*ids.last().expect("non-empty"), s.sep);
        assert_eq!(types.len(), ids.len());
        let first_sep = ids.iter().position(|&t| t == s.sep).expect("a sep");
        assert!(types[..=first_sep].iter().all(|&t| t == 0));
        assert!(types[first_sep + 1..].iter().all(|&t| t == 1));
        assert!(!ids.contains(&s.pad));
    }
    assert_eq!(tokens, m.train.tokens);
    assert!(matches!(
        reader.get(reader.len()),
        Err(Error::OutOfRange { .. })
    ));
    let valid =
        ShardReader::open(&cfg.out_dir, Split::Validation, tok.vocab_sha256(), 64).expect("open");
    assert_eq!(valid.len() as u64, m.validation.examples);

    // the text of a training example is text from the corpus
    let (ids, _) = reader.get(0).expect("get");
    let words: Vec<String> = ids[1..6]
        .iter()
        .map(|&i| tok.id_to_token(i).expect("token"))
        .collect();
    let first_doc = moby_docs(1).to_lowercase();
    assert!(
        first_doc.contains(words[0].trim_start_matches("##")),
        "{words:?}"
    );

    // same settings, other worker count: identical bytes
    let mut cfg2 = config(vec![input.clone()], &dir.join("out2"));
    cfg2.num_workers = 5;
    let m2 = prepare_with_tokenizer(&cfg2, &tok, &NoProgress, &electra_tokenizer::Cancel::new()).expect("prepare");
    assert_eq!(shard_hashes(&m), shard_hashes(&m2));

    // another seed: other bytes
    let mut cfg3 = config(vec![input], &dir.join("out3"));
    cfg3.seed = 8;
    let m3 = prepare(&cfg3, &NoProgress).expect("prepare");
    assert_ne!(shard_hashes(&m), shard_hashes(&m3));
}

#[test]
fn resumes_after_an_interruption_without_redoing_shards() {
    let dir = scratch("resume");
    let input = dir.join("moby.txt");
    write(&input, moby_docs(40).as_bytes());
    let full =
        prepare(&config(vec![input.clone()], &dir.join("full")), &NoProgress).expect("prepare");
    let total_shards = full.shards.len();
    assert!(total_shards >= 10, "{total_shards} shards");

    let out = dir.join("interrupted");
    let stopper = Recorder {
        stop_after_shards: Some(4),
        ..Recorder::default()
    };
    let err = electra_tokenizer::prepare_until(&config(vec![input.clone()], &out), &stopper, &stopper.cancel)
        .expect_err("interrupted");
    assert!(matches!(err, Error::Interrupted), "{err}");
    assert!(!out.join("manifest.json").exists());
    assert!(out.join("prepare-state.json").exists());
    let done_before = stopper.shards.lock().expect("lock").len();
    assert!(
        done_before < total_shards / 2,
        "stopped late: {done_before} of {total_shards}"
    );

    let again = Recorder::default();
    let m = prepare(&config(vec![input.clone()], &out), &again).expect("resume");
    let redone = again.shards.lock().expect("lock").len();
    assert_eq!(
        redone + done_before,
        total_shards,
        "finished shards were written again"
    );
    assert_eq!(shard_hashes(&m), shard_hashes(&full));
    assert_eq!(m.train, full.train);
    assert_eq!(m.validation, full.validation);
    assert!(!out.join("prepare-state.json").exists());

    // a finished directory is returned as is
    let idle = Recorder::default();
    let m_again = prepare(&config(vec![input.clone()], &out), &idle).expect("done");
    assert_eq!(m_again, m);
    assert!(idle.shards.lock().expect("lock").is_empty());

    // other settings are refused, naming the value
    let mut other = config(vec![input], &out);
    other.seed = 99;
    let err = prepare(&other, &NoProgress).expect_err("mismatch");
    let msg = err.to_string();
    assert!(matches!(err, Error::Mismatch { .. }), "{msg}");
    assert!(msg.contains("seed: found 7, expected 99"), "{msg}");
}

#[test]
fn reader_refuses_another_vocabulary_or_length() {
    let dir = scratch("mismatch");
    let input = dir.join("moby.txt");
    write(&input, moby_docs(3).as_bytes());
    let cfg = config(vec![input], &dir.join("out"));
    let m = prepare(&cfg, &NoProgress).expect("prepare");
    let hash = m.settings.vocab_sha256.clone();
    let wrong = "0".repeat(64);
    let err = ShardReader::open(&cfg.out_dir, Split::Train, &wrong, 64).expect_err("other vocab");
    let msg = err.to_string();
    assert!(msg.contains(&hash) && msg.contains(&wrong), "{msg}");
    let err = ShardReader::open(&cfg.out_dir, Split::Train, &hash, 128).expect_err("other length");
    let msg = err.to_string();
    assert!(
        msg.contains("max_seq_len 64") && msg.contains("128"),
        "{msg}"
    );

    // a damaged shard is noticed
    let first = &m.shards[0];
    let path = cfg.out_dir.join(&first.ids_file);
    let mut bytes = std::fs::read(&path).expect("read");
    bytes.pop();
    write(&path, &bytes);
    let err = ShardReader::open(&cfg.out_dir, Split::Train, &hash, 64).expect_err("damaged");
    assert!(err.to_string().contains(&first.ids_file), "{err}");
}

#[test]
fn empty_or_unusable_inputs_are_errors() {
    let dir = scratch("empty");
    let empty = dir.join("empty.txt");
    write(&empty, b"");
    let err =
        prepare(&config(vec![empty.clone()], &dir.join("o1")), &NoProgress).expect_err("empty");
    assert!(matches!(err, Error::NoUsableText(_)), "{err}");
    assert!(err.to_string().contains("empty.txt"), "{err}");

    let blank = dir.join("blank.txt");
    write(&blank, b"\n   \n\t\n\n");
    let err = prepare(&config(vec![blank], &dir.join("o2")), &NoProgress).expect_err("blank");
    assert!(matches!(err, Error::NoUsableText(_)), "{err}");

    // non-blank lines that produce no token (control characters only)
    let controls = dir.join("controls.txt");
    write(&controls, "\u{0}\u{1}\n\u{200b}\n".as_bytes());
    let err =
        prepare(&config(vec![controls], &dir.join("o3")), &NoProgress).expect_err("no tokens");
    assert!(matches!(err, Error::NoUsableText(_)), "{err}");

    let err = prepare(
        &config(vec![dir.join("nothing-*.txt")], &dir.join("o4")),
        &NoProgress,
    )
    .expect_err("no match");
    assert!(matches!(err, Error::NoInputFiles(_)), "{err}");
    let err = prepare(
        &config(vec![dir.join("missing.txt")], &dir.join("o5")),
        &NoProgress,
    )
    .expect_err("missing");
    assert!(err.to_string().contains("missing.txt"), "{err}");

    let mut bad = config(vec![empty], &dir.join("o6"));
    bad.max_seq_len = 4;
    assert!(matches!(prepare(&bad, &NoProgress), Err(Error::Config(_))));
}

#[test]
fn invalid_utf8_is_counted_or_fatal_in_strict_mode() {
    let dir = scratch("utf8");
    let input = dir.join("mixed.txt");
    let mut bytes = b"The first line is fine.\n".to_vec();
    bytes.extend_from_slice(b"bad \xff\xfe bytes\n");
    bytes.extend_from_slice(b"Another good line with words.\n\nA second document.\n");
    bytes.extend_from_slice(b"\xc3\x28 also bad\n");
    write(&input, &bytes);

    let m = prepare(
        &config(vec![input.clone()], &dir.join("lenient")),
        &NoProgress,
    )
    .expect("lenient");
    assert_eq!(m.read_stats.invalid_utf8_lines, 2);
    let first = m.read_stats.first_skipped.clone().expect("a location");
    assert!(first.ends_with("mixed.txt:2"), "{first}");
    assert_eq!(m.train.documents + m.validation.documents, 2);

    let mut strict = config(vec![input], &dir.join("strict"));
    strict.strict = true;
    let err = prepare(&strict, &NoProgress).expect_err("strict");
    assert!(matches!(err, Error::InvalidUtf8 { line: 2, .. }), "{err}");
    assert!(err.to_string().contains("mixed.txt:2"), "{err}");
}

#[test]
fn a_megabyte_long_line_is_tokenised_and_truncated() {
    let dir = scratch("long-line");
    let input = dir.join("long.txt");
    let mut line = String::with_capacity(1 << 20);
    while line.len() < (1 << 20) {
        line.push_str("whale ship sea captain ");
    }
    write(&input, format!("{line}\nshort line after it\n").as_bytes());
    let mut cfg = config(vec![input], &dir.join("out"));
    cfg.validation_fraction = 0.0;
    let m = prepare(&cfg, &NoProgress).expect("prepare");
    assert_eq!(
        m.train.examples, 2,
        "the long line fills one example, the short one another"
    );
    let reader =
        ShardReader::open(&cfg.out_dir, Split::Train, &m.settings.vocab_sha256, 64).expect("open");
    let (ids, _) = reader.get(0).expect("get");
    assert_eq!(ids.len(), 64);
    let tok = tokenizer();
    assert_eq!(tok.id_to_token(ids[1]).as_deref(), Some("whale"));
}

#[test]
fn vocabulary_without_a_special_token_is_refused() {
    let dir = scratch("vocab");
    let text = std::fs::read_to_string(vocab_txt()).expect("vocab");
    let without_mask: String = text
        .lines()
        .filter(|l| *l != "[MASK]")
        .map(|l| format!("{l}\n"))
        .collect();
    let vocab = dir.join("vocab.txt");
    write(&vocab, without_mask.as_bytes());
    let err = WordPieceTokenizer::from_vocab_txt(&vocab, true).expect_err("no mask");
    assert!(
        matches!(
            err,
            Error::MissingSpecialToken {
                token: "[MASK]",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("[MASK]") && err.to_string().contains("vocab.txt"),
        "{err}"
    );

    let input = dir.join("in.txt");
    write(&input, b"some text\n");
    let mut cfg = config(vec![input], &dir.join("out"));
    cfg.vocab = vocab.clone();
    assert!(matches!(
        prepare(&cfg, &NoProgress),
        Err(Error::MissingSpecialToken { .. })
    ));

    let dup = format!("{text}hello\n");
    write(&vocab, dup.as_bytes());
    let err = WordPieceTokenizer::from_vocab_txt(&vocab, true).expect_err("duplicate");
    assert!(err.to_string().contains("vocab.txt:30523"), "{err}");
}

#[test]
fn jsonl_directories_globs_and_compressed_inputs() {
    let dir = scratch("formats");
    let corpus = dir.join("corpus");
    std::fs::create_dir_all(corpus.join("nested")).expect("mkdir");
    let docs: Vec<String> = moby_docs(4).split("\n\n").map(str::to_owned).collect();
    // jsonl: one record per document, one bad record
    let mut jsonl = String::new();
    for d in &docs[..2] {
        jsonl.push_str(&serde_json::json!({ "text": d, "id": 1 }).to_string());
        jsonl.push('\n');
    }
    jsonl.push_str("{not json\n{\"title\": \"no text\"}\n");
    write(&corpus.join("a.jsonl"), jsonl.as_bytes());
    write(&corpus.join("nested/b.txt"), docs[2].as_bytes());
    write(&corpus.join("ignored.md"), b"# not a corpus file\n");
    #[cfg(feature = "gzip")]
    {
        let f = std::fs::File::create(corpus.join("c.txt.gz")).expect("create");
        let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::default());
        gz.write_all(docs[3].as_bytes()).expect("gz");
        gz.finish().expect("gz");
    }
    #[cfg(feature = "zstd")]
    {
        let bytes = zstd::encode_all(docs[3].as_bytes(), 3).expect("zstd");
        write(&corpus.join("d.txt.zst"), &bytes);
    }
    let expected_docs = 3 + u64::from(cfg!(feature = "gzip")) + u64::from(cfg!(feature = "zstd"));

    let mut cfg = config(vec![corpus.clone()], &dir.join("out-dir"));
    cfg.validation_fraction = 0.0;
    let m = prepare(&cfg, &NoProgress).expect("directory");
    assert_eq!(m.train.documents, expected_docs);
    assert_eq!(m.read_stats.invalid_json_lines, 2);
    assert!(
        m.settings
            .inputs
            .iter()
            .all(|f| !f.path.ends_with("ignored.md"))
    );

    let mut strict = cfg.clone();
    strict.out_dir = dir.join("out-strict");
    strict.strict = true;
    let err = prepare(&strict, &NoProgress).expect_err("bad json");
    assert!(err.to_string().contains("a.jsonl:3"), "{err}");

    let mut glob = config(
        vec![corpus.join("*.jsonl"), corpus.join("nested/*.txt")],
        &dir.join("out-glob"),
    );
    glob.validation_fraction = 0.0;
    let m = prepare(&glob, &NoProgress).expect("globs");
    assert_eq!(m.train.documents, 3);
    assert_eq!(m.settings.inputs.len(), 2);
}
