//! Continued pre-training from a HuggingFace checkpoint: electra-model's BERT fixture (a
//! `BertModel` written by `transformers`, 128-token vocabulary `[PAD] [UNK] [CLS] [SEP] [MASK]
//! tok5 ... tok127`) on a synthetic corpus in that vocabulary. The loading itself is checked
//! against transformers' outputs in electra-model's `tests/init.rs`; here: the run, its
//! exports, resume, the context probes, and the refusals of another vocabulary.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use burn::backend::{Autodiff, Flex};
use electra_model::hf;
use electra_tokenizer::{NoProgress, PrepareConfig, WordPieceTokenizer};
use electra_train::config::InitFrom;
use electra_train::{Cancel, EvalMetrics, OutMode, PretrainConfig, RunPaths};

type B = Autodiff<Flex>;

/// Training tests share the CPU backend's random generator; run them one at a time.
static BACKEND_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    BACKEND_RNG.lock().unwrap_or_else(|e| e.into_inner())
}

fn fixture(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../electra-model/tests/fixtures").join(dir)
}

/// 300 documents of Zipf-distributed tokens `tok5..tok{vocab-1}`, each token often followed by
/// its successor (some context to read), prepared with `vocab` into `out`.
fn prepare(dir: &Path, vocab: &Path, out: &Path) -> WordPieceTokenizer {
    let tok = WordPieceTokenizer::from_path(vocab).unwrap();
    let regular = tok.vocab_size() as u64 - 5;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut text = String::new();
    for _ in 0..300 {
        let mut prev = None;
        for _ in 0..20 {
            let id = match prev {
                Some(p) if next() % 2 == 0 => 5 + (p - 5 + 1) % regular,
                _ => {
                    // Zipf-like: the k-th token with weight 1/k, by inverse transform on a
                    // uniform draw.
                    let u = (next() % 1_000_000) as f64 / 1e6;
                    5 + ((regular as f64).powf(u) as u64 - 1).min(regular - 1)
                }
            };
            text.push_str(&format!("tok{id} "));
            prev = Some(id);
        }
        text.push_str("\n\n");
    }
    let corpus = dir.join("corpus.txt");
    std::fs::write(&corpus, text).unwrap();
    let mut pc = PrepareConfig::new(vec![corpus], vocab, out);
    pc.max_seq_len = 32;
    pc.validation_fraction = 0.2;
    electra_tokenizer::prepare(&pc, &NoProgress).unwrap();
    tok
}

fn config(init: &Path, steps: u64) -> PretrainConfig {
    PretrainConfig {
        max_seq_len: 32,
        batch_size: 4,
        steps,
        warmup_steps: 1,
        log_every: 1,
        eval_every: 0,
        eval_batches: 8,
        checkpoint_every: 2,
        ..PretrainConfig::continued(InitFrom { dir: init.to_path_buf(), generator: None })
    }
}

fn run(config: &PretrainConfig, tok: &WordPieceTokenizer, paths: &RunPaths, mode: OutMode) -> electra_train::Result<electra_train::Summary> {
    electra_train::pretrain::<B>(config, tok, paths, mode, &Default::default(), &electra_train::NoProgress, &Cancel::new())
}

#[test]
fn continues_from_a_bert_encoder_exports_both_networks_and_resumes() {
    let _guard = serial();
    let tmp = tempfile::tempdir().unwrap();
    let vocab = fixture("bert/base/vocab.txt");
    let tok = prepare(tmp.path(), &vocab, &tmp.path().join("data"));
    let paths = RunPaths { data_dir: tmp.path().join("data"), out_dir: tmp.path().join("run") };
    let mut cfg = config(&fixture("bert/base"), 2);
    let first = run(&cfg, &tok, &paths, OutMode::Fresh).unwrap();
    assert_eq!(first.steps_this_run, 2);
    let e: &EvalMetrics = first.eval.as_ref().unwrap();
    for (name, probe) in [
        ("binned_auc", e.binned_auc),
        ("binned_rarity_auc", e.binned_rarity_auc),
        ("unigram_auc", e.unigram_auc),
        ("unigram_rarity_auc", e.unigram_rarity_auc),
    ] {
        let v = probe.unwrap_or_else(|| panic!("{name} missing"));
        assert!((0.0..=1.0).contains(&v), "{name} = {v}");
    }
    // Replacements drawn from the unigram distribution are as rare as the tokens they replace.
    let u = e.unigram_rarity_auc.unwrap();
    assert!((u - 0.5).abs() < 0.08, "rarity on the unigram probe: {u}");
    let metrics = std::fs::read_to_string(&first.metrics).unwrap();
    assert!(metrics.contains("\"unigram_auc\"") && metrics.contains("\"binned_auc\""), "{metrics}");

    // The exports: an ELECTRA discriminator and a narrower generator sharing its embeddings,
    // with the checkpoint's vocabulary.
    let disc_dir = first.discriminator_dir.clone().unwrap();
    let disc = hf::load_discriminator::<Flex>(&disc_dir, &Default::default()).unwrap();
    assert_eq!(disc.config().model_type, "electra");
    assert_eq!(disc.config().hidden_size, 32, "the checkpoint's width");
    let generator = hf::load_generator::<Flex>(&first.generator_dir, &Default::default()).unwrap();
    assert_eq!(generator.config().hidden_size, 8, "a quarter of the discriminator's width");
    assert_eq!(
        generator.electra.embeddings.word_table().into_data(),
        disc.electra.embeddings.word_table().into_data()
    );
    let words = |p: &Path| std::fs::read_to_string(p).unwrap().lines().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(words(&disc_dir.join("vocab.txt")), words(&vocab));
    // Trained: the encoder moved away from the checkpoint.
    let source = hf::load_encoder::<Flex>(&fixture("bert/base"), &Default::default()).unwrap();
    assert_ne!(
        source.embeddings.word_table().into_data(),
        disc.electra.embeddings.word_table().into_data()
    );

    // The recorded config names the checkpoint; resuming it continues the run (not the checkpoint).
    let saved = electra_train::checkpoint::saved_config(&paths.out_dir).unwrap();
    assert_eq!(saved.init.as_ref().map(|i| i.dir.clone()), Some(fixture("bert/base")));
    cfg.steps = 4;
    let resumed = run(&cfg, &tok, &paths, OutMode::Resume).unwrap();
    assert_eq!((resumed.steps, resumed.steps_this_run), (4, 2));
}

#[test]
fn shards_of_another_vocabulary_are_refused_naming_both() {
    let _guard = serial();
    let tmp = tempfile::tempdir().unwrap();
    // Shards prepared with electra_proj's 100-token vocabulary; the checkpoint's has 128.
    prepare(tmp.path(), &fixture("electra_proj/disc/vocab.txt"), &tmp.path().join("data"));
    let tok = WordPieceTokenizer::from_path(fixture("bert/base/vocab.txt")).unwrap();
    let paths = RunPaths { data_dir: tmp.path().join("data"), out_dir: tmp.path().join("run") };
    let err = run(&config(&fixture("bert/base"), 2), &tok, &paths, OutMode::Fresh).unwrap_err().to_string();
    assert!(err.contains("100 entries") && err.contains("128 entries"), "{err}");
    assert!(err.contains(tok.vocab_sha256()) && err.contains("bert/base"), "{err}");
    assert!(!paths.out_dir.join("config.json").exists(), "nothing written");
}

#[test]
fn a_vocabulary_that_does_not_fit_the_embeddings_is_refused_naming_the_config() {
    let cfg = config(&fixture("bert/base"), 2);
    let err = cfg.networks(100).unwrap_err().to_string();
    assert!(err.contains("bert/base/config.json") && err.contains("128") && err.contains("100"), "{err}");
    // A checkpoint's architecture excludes a `model` of the config's own.
    let both = PretrainConfig { model: electra_train::ModelSpec::Preset("tiny".into()), ..cfg };
    assert!(both.validate().unwrap_err().to_string().contains("`model` and `init`"));
}
