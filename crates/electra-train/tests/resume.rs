//! Checkpoints and exact resume on the CPU backend: a run interrupted after two steps and
//! resumed produces the same losses, bit for bit, as the uninterrupted run; the exported models
//! load back.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use burn::backend::{Autodiff, Flex};
use electra_model::{ElectraConfig, hf};
use electra_tokenizer::{NoProgress, PrepareConfig, ShardReader, Split, WordPieceTokenizer};
use electra_train::{Cancel, Error, ModelSpec, OutMode, PretrainConfig, Progress, RunPaths, StepMetrics};

type B = Autodiff<Flex>;

/// The CPU backend's random generator (dropout, Gumbel noise) is one per process and is
/// re-seeded every step; tests that train run one at a time so they do not draw from each
/// other's stream.
static BACKEND_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    BACKEND_RNG.lock().unwrap_or_else(|e| e.into_inner())
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tiny_config() -> PretrainConfig {
    let mut model = ElectraConfig::small();
    model.embedding_size = Some(16);
    model.hidden_size = 16;
    model.num_hidden_layers = 1;
    model.num_attention_heads = 1;
    model.intermediate_size = 32;
    model.max_position_embeddings = 64;
    PretrainConfig {
        model: ModelSpec::Custom(Box::new(model)),
        generator_size: 0.5,
        max_seq_len: 32,
        batch_size: 4,
        grad_accumulation: 2,
        steps: 4,
        warmup_steps: 1,
        learning_rate: 1e-3,
        log_every: 1,
        eval_every: 0,
        eval_batches: 1,
        checkpoint_every: 0,
        keep_checkpoints: 2,
        ..PretrainConfig::default()
    }
}

fn prepare(dir: &Path) -> WordPieceTokenizer {
    let corpus = dir.join("corpus.txt");
    let text: String = (0..60)
        .map(|i| format!("the whale number {i} swam far across the grey sea.\nit was seen by the crew at dawn.\n\n"))
        .collect();
    std::fs::write(&corpus, text).unwrap();
    let vocab = repo().join("datasets/vocab/vocab.txt");
    let mut pc = PrepareConfig::new(vec![corpus], &vocab, dir.join("data"));
    pc.max_seq_len = 32;
    pc.validation_fraction = 0.1;
    electra_tokenizer::prepare(&pc, &NoProgress).unwrap();
    WordPieceTokenizer::from_path(&vocab).unwrap()
}

/// Cancels the run once `after` steps are done.
struct StopAfter {
    after: u64,
    cancel: Cancel,
}

impl Progress for StopAfter {
    fn on_step(&self, m: &StepMetrics) {
        if m.step >= self.after {
            self.cancel.cancel();
        }
    }
}

/// A run with no progress reporting and no cancellation.
fn run(config: &PretrainConfig, tok: &WordPieceTokenizer, paths: &RunPaths, mode: OutMode) -> Result<electra_train::Summary, Error> {
    electra_train::pretrain::<B>(config, tok, paths, mode, &Default::default(), &electra_train::NoProgress, &Cancel::new())
}

fn train_losses(out: &Path) -> Vec<(u64, f64, f64)> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["kind"] == "train").then(|| {
                let m = &v["metrics"];
                (m["step"].as_u64().unwrap(), m["mlm_loss"].as_f64().unwrap(), m["disc_loss"].as_f64().unwrap())
            })
        })
        .collect()
}

#[test]
fn an_interrupted_run_resumes_exactly() {
    resumes_exactly(tiny_config());
}

#[test]
fn an_interrupted_chunked_run_resumes_exactly() {
    // Micro-batches of 2 rows in chunks of 1, on rayon's threads, with dropout from host streams.
    resumes_exactly(PretrainConfig { chunk_size: Some(1), ..tiny_config() });
}

fn resumes_exactly(config: PretrainConfig) {
    let _guard = serial();
    let tmp = tempfile::tempdir().unwrap();
    let tok = prepare(tmp.path());
    let device = Default::default();

    let full = RunPaths { data_dir: tmp.path().join("data"), out_dir: tmp.path().join("full") };
    let summary = run(&config, &tok, &full, OutMode::Fresh).unwrap();
    assert_eq!(summary.steps, 4);
    let rarity = summary.eval.as_ref().and_then(|e| e.rarity_auc).expect("the final evaluation has a rarity baseline");
    assert!((0.0..=1.0).contains(&rarity), "{rarity}");

    let split = RunPaths { data_dir: tmp.path().join("data"), out_dir: tmp.path().join("split") };
    let stop = StopAfter { after: 2, cancel: Cancel::new() };
    let err = electra_train::pretrain::<B>(&config, &tok, &split, OutMode::Fresh, &device, &stop, &stop.cancel)
        .unwrap_err();
    assert!(matches!(err, Error::Interrupted(2)), "{err}");
    assert!(split.out_dir.join("checkpoints/step-00000002/state.json").is_file());
    let resumed = run(&config, &tok, &split, OutMode::Resume).unwrap();
    assert_eq!(resumed.steps_this_run, 2);

    let a = train_losses(&full.out_dir);
    let b = train_losses(&split.out_dir);
    assert_eq!(a.len(), 4);
    assert_eq!(a, b, "loss curves differ after resume");
    assert!(a.iter().all(|(_, m, d)| m.is_finite() && d.is_finite() && *m > 0.0 && *d > 0.0));

    // The exported networks load back, with the generator's own (smaller) config.
    let d = hf::load_discriminator::<Flex>(&full.out_dir.join("discriminator"), &device).unwrap();
    let g = hf::load_generator::<Flex>(&full.out_dir.join("generator"), &device).unwrap();
    assert_eq!((d.config().hidden_size, g.config().hidden_size), (16, 8));
    assert!(full.out_dir.join("discriminator/vocab.txt").is_file());
    assert!(full.out_dir.join("curves.svg").is_file());
}

#[test]
fn shards_from_another_length_are_refused() {
    let _guard = serial();
    let tmp = tempfile::tempdir().unwrap();
    let tok = prepare(tmp.path());
    let config = PretrainConfig { max_seq_len: 64, ..tiny_config() };
    let paths = RunPaths { data_dir: tmp.path().join("data"), out_dir: tmp.path().join("run") };
    let err = run(&config, &tok, &paths, OutMode::Fresh)
        .unwrap_err();
    assert!(err.to_string().contains("max_seq_len 32"), "{err}");
}

#[test]
fn checkpoints_are_pruned_to_the_last_k() {
    let _guard = serial();
    let tmp = tempfile::tempdir().unwrap();
    let tok = prepare(tmp.path());
    let config = PretrainConfig { checkpoint_every: 1, keep_checkpoints: 2, ..tiny_config() };
    let paths = RunPaths { data_dir: tmp.path().join("data"), out_dir: tmp.path().join("run") };
    run(&config, &tok, &paths, OutMode::Fresh).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(paths.out_dir.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["step-00000003", "step-00000004"]);
}

#[test]
fn the_shipped_configs_are_valid() {
    for name in ["small", "base", "large"] {
        let path = repo().join(format!("configs/{name}.json"));
        let c = PretrainConfig::from_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let n = c.networks(30522).unwrap();
        let expected = match name {
            "small" => (256, 64),
            "base" => (768, 256),
            _ => (1024, 256),
        };
        assert_eq!((n.discriminator.hidden_size, n.generator.hidden_size), expected, "{name}");
    }
}

#[test]
fn the_mlm_baseline_trains_a_full_size_masked_lm() {
    let _guard = serial();
    let tmp = tempfile::tempdir().unwrap();
    let tok = prepare(tmp.path());
    let config = PretrainConfig { objective: electra_train::Objective::Mlm, steps: 2, ..tiny_config() };
    let paths = RunPaths { data_dir: tmp.path().join("data"), out_dir: tmp.path().join("mlm") };
    let s = run(&config, &tok, &paths, OutMode::Fresh)
        .unwrap();
    assert!(s.discriminator_dir.is_none());
    // The baseline's masked LM has the discriminator's width, not the generator's.
    let g = hf::load_generator::<Flex>(&paths.out_dir.join("generator"), &Default::default()).unwrap();
    assert_eq!(g.config().hidden_size, 16);
    let losses = train_losses(&paths.out_dir);
    assert!(losses.iter().all(|(_, m, d)| m.is_finite() && *m > 0.0 && *d == 0.0), "{losses:?}");
}

/// A checkpoint that cannot be written (here: its directory name is taken by a file; a full disk
/// fails the same write path, checked by hand on a 40 MB tmpfs, see docs/user-guide.md) is an
/// error naming the path, and the last good checkpoint survives and resumes.
#[test]
fn a_failed_checkpoint_write_keeps_the_last_good_one() {
    let _guard = serial();
    let tmp = tempfile::tempdir().unwrap();
    let tok = prepare(tmp.path());
    let config = PretrainConfig { checkpoint_every: 2, ..tiny_config() };
    let paths = RunPaths { data_dir: tmp.path().join("data"), out_dir: tmp.path().join("run") };
    let ckpts = paths.out_dir.join("checkpoints");
    std::fs::create_dir_all(&ckpts).unwrap();
    // step-00000004 cannot become a directory.
    std::fs::write(ckpts.join("step-00000004"), b"not a checkpoint").unwrap();
    // The directory already has a `checkpoints/` (with no checkpoint in it): resume starts fresh.
    let err = run(&config, &tok, &paths, OutMode::Resume)
        .unwrap_err()
        .to_string();
    assert!(err.contains("step-00000004"), "{err}");
    assert!(ckpts.join("step-00000002/state.json").is_file(), "the step-2 checkpoint survives");
    assert!(!ckpts.join(".step-00000004.partial").exists(), "no partial directory left behind");
    std::fs::remove_file(ckpts.join("step-00000004")).unwrap();
    let s = run(&config, &tok, &paths, OutMode::Resume).unwrap();
    assert_eq!(s.steps, 4);
}

#[test]
fn the_rarity_baseline_is_a_smoothed_unigram_distribution_of_the_training_split() {
    let tmp = tempfile::tempdir().unwrap();
    let tok = prepare(tmp.path());
    let hash = tok.vocab_sha256().to_string();
    let train = ShardReader::open(&tmp.path().join("data"), Split::Train, &hash, 32).unwrap();
    let v = tok.vocab_size();
    let s = electra_train::eval::unigram_surprisal(&train, v, usize::MAX).unwrap();
    assert_eq!(s.len(), v);
    // exp(-surprisal) is a probability distribution over the vocabulary.
    let total: f64 = s.iter().map(|&x| (-f64::from(x)).exp()).sum();
    assert!((total - 1.0).abs() < 1e-3, "{total}");
    // Frequent tokens are less surprising than rare ones; unseen ones are the most surprising.
    let id = |t: &str| tok.token_to_id(t).unwrap() as usize;
    assert!(s[id("the")] < s[id("whale")], "{} vs {}", s[id("the")], s[id("whale")]);
    assert!(s[id("whale")] < s[id("dolphin")]);
    let max = s.iter().copied().fold(f32::MIN, f32::max);
    assert_eq!(s[id("dolphin")], max);
    // A token budget counts only the first examples: fewer tokens, so an unseen token is less surprising.
    let few = electra_train::eval::unigram_surprisal(&train, v, 10).unwrap();
    assert!(few[id("dolphin")] < s[id("dolphin")]);
}

/// The checkpoint directories under `out/checkpoints`, sorted.
fn checkpoint_names(out: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(out.join("checkpoints"))
        .map(|rd| rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// Every file under `dir` with its bytes, for "nothing changed" checks.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// The sequence that used to lose work: a run with checkpoints at 4 and 6 kept, then a fresh
/// shorter run into the same directory (which deleted its own checkpoints as it wrote them and
/// overwrote the first run's files), then `--resume` with the shorter config (which loaded the
/// longer run's step-6 checkpoint and underflowed the step count). Now the fresh run is refused
/// and changes nothing, the resume is refused naming the step, and `--overwrite` starts clean.
#[test]
fn a_fresh_run_into_an_existing_run_is_refused_and_changes_nothing() {
    let _guard = serial();
    let tmp = tempfile::tempdir().unwrap();
    let tok = prepare(tmp.path());
    let paths = RunPaths { data_dir: tmp.path().join("data"), out_dir: tmp.path().join("x") };
    let long = PretrainConfig { steps: 6, checkpoint_every: 2, keep_checkpoints: 2, ..tiny_config() };
    run(&long, &tok, &paths, OutMode::Fresh).unwrap();
    assert_eq!(checkpoint_names(&paths.out_dir), ["step-00000004", "step-00000006"]);
    let before = snapshot(&paths.out_dir);

    let short = PretrainConfig { steps: 3, checkpoint_every: 1, ..long.clone() };
    let err = run(&short, &tok, &paths, OutMode::Fresh).unwrap_err();
    assert!(matches!(err, Error::RunExists { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("checkpoints") && msg.contains("config.json") && msg.contains("--resume") && msg.contains("--overwrite"), "{msg}");
    assert_eq!(snapshot(&paths.out_dir), before, "a refused run changed the directory");

    let err = run(&short, &tok, &paths, OutMode::Resume).unwrap_err();
    assert!(matches!(err, Error::Resume { .. }), "{err}");
    assert!(err.to_string().contains("step 6, past this config's 3 steps"), "{err}");
    assert_eq!(snapshot(&paths.out_dir), before, "a refused resume changed the directory");

    let s = run(&short, &tok, &paths, OutMode::Overwrite).unwrap();
    assert_eq!((s.steps, s.steps_this_run), (3, 3));
    assert_eq!(checkpoint_names(&paths.out_dir), ["step-00000002", "step-00000003"]);
    let saved: PretrainConfig =
        serde_json::from_str(&std::fs::read_to_string(paths.out_dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(saved, short);
    assert_eq!(train_losses(&paths.out_dir).last().map(|l| l.0), Some(3), "metrics are the new run's");
}

/// `--resume` needs the run's config: a missing or unparseable `config.json`, or one that
/// differs in anything but `steps`, is an error; so is other prepared data.
#[test]
fn resume_refuses_a_checkpoint_it_cannot_match() {
    let _guard = serial();
    let tmp = tempfile::tempdir().unwrap();
    let tok = prepare(tmp.path());
    let paths = RunPaths { data_dir: tmp.path().join("data"), out_dir: tmp.path().join("run") };
    let config = PretrainConfig { steps: 2, checkpoint_every: 1, ..tiny_config() };
    run(&config, &tok, &paths, OutMode::Fresh).unwrap();
    let longer = PretrainConfig { steps: 3, ..config.clone() };
    let config_path = paths.out_dir.join("config.json");
    let saved = std::fs::read(&config_path).unwrap();

    let other = PretrainConfig { learning_rate: 5e-4, ..longer.clone() };
    let err = run(&other, &tok, &paths, OutMode::Resume).unwrap_err().to_string();
    assert!(err.contains("learning_rate") && err.contains("only `steps` may change"), "{err}");

    std::fs::write(&config_path, b"{ not json").unwrap();
    let err = run(&longer, &tok, &paths, OutMode::Resume).unwrap_err().to_string();
    assert!(err.contains("does not parse"), "{err}");
    std::fs::remove_file(&config_path).unwrap();
    let err = run(&longer, &tok, &paths, OutMode::Resume).unwrap_err().to_string();
    assert!(err.contains("cannot read") && err.contains("config.json"), "{err}");
    std::fs::write(&config_path, &saved).unwrap();

    // Data prepared from another corpus with the same vocabulary and length.
    let other_dir = tmp.path().join("other");
    std::fs::create_dir_all(&other_dir).unwrap();
    let corpus = other_dir.join("corpus.txt");
    let text: String = (0..60).map(|i| format!("a grey gull number {i} flew over the harbour.\nit cried at dusk.\n\n")).collect();
    std::fs::write(&corpus, text).unwrap();
    let mut pc = PrepareConfig::new(vec![corpus], repo().join("datasets/vocab/vocab.txt"), other_dir.join("data"));
    pc.max_seq_len = 32;
    pc.validation_fraction = 0.1;
    electra_tokenizer::prepare(&pc, &NoProgress).unwrap();
    let moved = RunPaths { data_dir: other_dir.join("data"), out_dir: paths.out_dir.clone() };
    let err = run(&longer, &tok, &moved, OutMode::Resume).unwrap_err().to_string();
    assert!(err.contains("prepared data differs") && err.contains("inputs"), "{err}");

    // The run's own config and data resume.
    let s = run(&longer, &tok, &paths, OutMode::Resume).unwrap();
    assert_eq!((s.steps, s.steps_this_run), (3, 1));
}

/// Runs `world` ranks of `pretrain_dist` as threads, each with its own connection to a
/// coordinator on loopback (rank 0 cancels the job after `stop_after` steps); returns rank 0's
/// result.
fn run_ranks(
    world: usize,
    config: &PretrainConfig,
    tok: &WordPieceTokenizer,
    paths: &RunPaths,
    mode: OutMode,
    stop_after: u64,
) -> Result<electra_train::Summary, Error> {
    use electra_train::dist::{Coordinator, Hello, PROTOCOL, Peer};
    use std::time::Duration;
    let coordinator = Coordinator::bind("127.0.0.1:0", world).unwrap();
    let addr = coordinator.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || coordinator.serve(Duration::from_secs(60)));
    let results: Vec<Result<electra_train::Summary, Error>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..world)
            .map(|rank| {
                let addr = addr.clone();
                scope.spawn(move || {
                    let hello = Hello { protocol: PROTOCOL, job: "t".into(), world, rank, fingerprints: Default::default() };
                    let peer = Peer::connect(&addr, &hello, Duration::from_secs(30), Duration::from_secs(120))?;
                    let after = if rank == 0 { stop_after } else { u64::MAX };
                    let stop = StopAfter { after, cancel: Cancel::new() };
                    let s = electra_train::pretrain_dist::<B>(
                        config,
                        tok,
                        paths,
                        mode,
                        &Default::default(),
                        &stop,
                        &stop.cancel,
                        &peer,
                    );
                    peer.finish()?;
                    s
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    server.join().unwrap().unwrap();
    results.into_iter().next().unwrap()
}

/// A checkpoint written by 2 ranks resumes with 3 (and the whole run with the same global
/// batch matches one process) to 1e-5: every example's draws depend on its index, not its rank.
#[test]
fn a_run_checkpointed_by_two_ranks_resumes_with_three_on_the_same_trajectory() {
    let _guard = serial();
    let tmp = tempfile::tempdir().unwrap();
    let tok = prepare(tmp.path());
    let mut config = PretrainConfig { batch_size: 6, steps: 4, chunk_size: Some(1), checkpoint_every: 2, ..tiny_config() };
    if let ModelSpec::Custom(m) = &mut config.model {
        m.hidden_dropout_prob = 0.0;
        m.attention_probs_dropout_prob = 0.0;
    }
    let single = RunPaths { data_dir: tmp.path().join("data"), out_dir: tmp.path().join("single") };
    run(&config, &tok, &single, OutMode::Fresh).unwrap();

    let ranked = RunPaths { data_dir: tmp.path().join("data"), out_dir: tmp.path().join("ranked") };
    let err = run_ranks(2, &config, &tok, &ranked, OutMode::Fresh, 2).unwrap_err();
    assert!(matches!(err, Error::Interrupted(2)), "{err}");
    assert!(ranked.out_dir.join("checkpoints/step-00000002/state.json").is_file());
    let s = run_ranks(3, &config, &tok, &ranked, OutMode::Resume, u64::MAX).unwrap();
    assert_eq!((s.steps, s.steps_this_run), (4, 2));

    let (a, b) = (train_losses(&single.out_dir), train_losses(&ranked.out_dir));
    assert_eq!(a.len(), 4);
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for ((sa, ma, da), (sb, mb, db)) in a.iter().zip(&b) {
        assert_eq!(sa, sb);
        assert!((ma - mb).abs() < 1e-5 && (da - db).abs() < 1e-5, "step {sa}: ({ma}, {da}) vs ({mb}, {db})");
    }
}
