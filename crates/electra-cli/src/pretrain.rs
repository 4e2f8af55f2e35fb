//! `electra prepare` and `electra pretrain`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, bail};
use electra_tokenizer::{Manifest, PrepareConfig, PrepareProgress, ShardInfo, Split, WordPieceTokenizer};
use electra_tokenizer::Cancel;
use electra_train::run_dir::{self, OutMode};
use electra_train::config::InitFrom;
use electra_train::{EvalMetrics, ModelSpec, PretrainConfig, Progress, RunPaths, StepMetrics};
use indicatif::{ProgressBar, ProgressStyle};

use crate::backend::{self, AutodiffBackend};

/// The default corpus and vocabulary shipped in `datasets/`.
pub const DEFAULT_CORPUS: &str = "datasets/corpus";
/// The BERT uncased vocabulary shipped in `datasets/`.
pub const DEFAULT_VOCAB: &str = "datasets/vocab/vocab.txt";
/// The 8,000-entry vocabulary trained on the shipped corpus, used by the quick run.
pub const QUICK_VOCAB: &str = "datasets/vocab-8k/vocab.txt";

/// Options of `electra prepare`.
#[derive(Debug, clap::Args)]
pub struct PrepareArgs {
    /// Corpus files, directories or globs (.txt, .jsonl with a `text` field; .gz/.zst).
    #[arg(long, num_args = 1.., default_value = DEFAULT_CORPUS)]
    pub corpus: Vec<PathBuf>,
    /// vocab.txt, tokenizer.json or a model directory.
    #[arg(long, default_value = DEFAULT_VOCAB)]
    pub vocab: PathBuf,
    /// Output directory for the shards and manifest.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Maximum example length in tokens.
    #[arg(long, default_value_t = 128)]
    pub max_seq_len: usize,
    /// Fraction of documents held out for validation.
    #[arg(long, default_value_t = 0.01)]
    pub validation_fraction: f64,
    /// Packing seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Fail on the first invalid line instead of skipping and counting it.
    #[arg(long)]
    pub strict: bool,
    /// Continue an interrupted preparation in --out (or accept a finished one with the same
    /// settings).
    #[arg(long, conflicts_with = "overwrite")]
    pub resume: bool,
    /// Delete the shards, manifest and state already in --out first.
    #[arg(long)]
    pub overwrite: bool,
}

/// Options of `electra vocab`.
#[derive(Debug, clap::Args)]
pub struct VocabArgs {
    /// Corpus files, directories or globs.
    #[arg(long, num_args = 1.., default_value = DEFAULT_CORPUS)]
    pub corpus: Vec<PathBuf>,
    /// Vocabulary size, special tokens included.
    #[arg(long, default_value_t = 30522)]
    pub size: usize,
    /// Keep case (default: lower-case and strip accents, as BERT uncased).
    #[arg(long)]
    pub cased: bool,
    /// Output vocab.txt.
    #[arg(long)]
    pub out: PathBuf,
}

/// Trains a WordPiece vocabulary and writes it as vocab.txt.
pub fn vocab(args: &VocabArgs) -> Result<()> {
    let tokens = electra_tokenizer::train_vocab(&args.corpus, args.size, !args.cased).context("training the vocabulary")?;
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    electra_tokenizer::write_vocab_txt(&args.out, &tokens)?;
    eprintln!("wrote {} tokens to {}", tokens.len(), args.out.display());
    Ok(())
}

struct PrepareBar {
    bar: ProgressBar,
    examples: AtomicU64,
}

/// The files of a preparation in its output directory (what a fresh `electra prepare` refuses
/// and `--overwrite` deletes).
const PREPARED_FILES: &[&str] = &[electra_tokenizer::dataset::MANIFEST_FILE, electra_tokenizer::prepare::STATE_FILE];
const SHARD_PREFIXES: &[&str] = &["train-", "validation-"];

impl PrepareProgress for PrepareBar {
    fn on_start(&self, total_bytes: u64) {
        self.bar.set_length(total_bytes);
    }
    fn on_bytes(&self, bytes: u64) {
        self.bar.inc(bytes);
    }
    fn on_examples(&self, _split: Split, examples: u64) {
        let n = self.examples.fetch_add(examples, Ordering::Relaxed) + examples;
        let secs = self.bar.elapsed().as_secs_f64().max(1e-3);
        self.bar.set_message(format!("{n} examples ({:.0}/s)", n as f64 / secs));
    }
    fn on_shard(&self, shard: &ShardInfo) {
        tracing::debug!(file = %shard.ids_file, examples = shard.examples, "shard written");
    }
}

/// Prepares shards, showing bytes/s, examples/s and an ETA; Ctrl-C stops after the chunk being
/// written (`--resume` continues).
pub fn prepare(args: &PrepareArgs) -> Result<Manifest> {
    let mode = OutMode::from_flags(args.resume, args.overwrite)?;
    run_dir::claim_entries(&args.out, mode, PREPARED_FILES, SHARD_PREFIXES)?;
    prepare_into(args, &crate::cancel_on_ctrl_c())
}

/// Prepares into `args.out`, continuing an interrupted preparation there.
fn prepare_into(args: &PrepareArgs, cancel: &Cancel) -> Result<Manifest> {
    for c in &args.corpus {
        if !c.exists() && !c.to_string_lossy().contains(['*', '?', '[']) {
            bail!("corpus not found: {} (run from the repository root or pass --corpus)", c.display());
        }
    }
    let mut config = PrepareConfig::new(args.corpus.clone(), &args.vocab, &args.out);
    config.max_seq_len = args.max_seq_len;
    config.validation_fraction = args.validation_fraction;
    config.seed = args.seed;
    config.strict = args.strict;
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("prepare {bar:30} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let progress = PrepareBar { bar, examples: AtomicU64::new(0) };
    let manifest = electra_tokenizer::prepare_until(&config, &progress, cancel).context("preparing the corpus")?;
    progress.bar.finish_and_clear();
    eprintln!(
        "prepared {} training and {} validation examples in {}",
        manifest.train.examples,
        manifest.validation.examples,
        args.out.display()
    );
    Ok(manifest)
}

/// Options of `electra pretrain`.
#[derive(Debug, clap::Args)]
pub struct PretrainArgs {
    /// A JSON training config (see configs/). Without it: the quick 4-layer CPU run, or with
    /// --init the continued pre-training defaults.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Continue pre-training from a checkpoint instead of random weights: a HuggingFace model
    /// directory (ElectraForPreTraining, or any BERT/ELECTRA encoder) or a run's export
    /// (discriminator/ and generator/). Its vocabulary is the run's (docs/user-guide.md,
    /// "Continue from a checkpoint").
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// With --init: a separate generator directory (ElectraForMaskedLM). Without it the
    /// export's generator/ is used, else a fresh one sharing the checkpoint's embeddings.
    #[arg(long, requires = "init")]
    pub init_generator: Option<PathBuf>,
    /// Corpus to prepare when --data has no manifest.json yet.
    #[arg(long, num_args = 1.., default_value = DEFAULT_CORPUS)]
    pub corpus: Vec<PathBuf>,
    /// vocab.txt or tokenizer.json. Default: the checkpoint's with --init,
    /// datasets/vocab/vocab.txt (BERT uncased) with --config, datasets/vocab-8k/vocab.txt for
    /// the quick run.
    #[arg(long)]
    pub vocab: Option<PathBuf>,
    /// Prepared shards (made from --corpus on first use). Default: OUT/data.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Run directory.
    #[arg(long, default_value = "runs/pretrain")]
    pub out: PathBuf,
    /// Continue the run in --out from its newest checkpoint (same config but for `steps`,
    /// same vocabulary and data).
    #[arg(long, conflicts_with = "overwrite")]
    pub resume: bool,
    /// Delete the run already in --out (config, checkpoints, metrics, exported models; not the
    /// prepared data) and start again.
    #[arg(long)]
    pub overwrite: bool,
    /// Override the number of steps.
    #[arg(long)]
    pub steps: Option<u64>,
    /// Precision of the matrix multiplies: f32, bf16 or f16 (with dynamic loss scaling).
    /// Overrides the config's `precision`. Half precision is for GPUs; CPUs convert the half
    /// types in software (docs/user-guide.md, "Mixed precision").
    #[arg(long)]
    pub precision: Option<electra_model::Precision>,
    /// Data-parallel: the number of ranks (processes) of the job (docs/scaling.md).
    #[arg(long, default_value_t = 1)]
    pub world: usize,
    /// Data-parallel: this process's rank, 0..world; rank 0 writes the run directory.
    #[arg(long, default_value_t = 0)]
    pub rank: usize,
    /// Data-parallel: the coordinator's address (`electra coordinator`), e.g. 127.0.0.1:29500.
    #[arg(long)]
    pub coordinator: Option<String>,
    /// Data-parallel: address this rank listens on for its neighbour on the ring, e.g.
    /// 10.0.0.5:29600 to fix the port for a firewall. Default: the interface that reaches the
    /// coordinator, any free port.
    #[arg(long)]
    pub listen: Option<String>,
    /// Data-parallel: seconds to wait for an answer from the coordinator before giving up (a
    /// lost rank or coordinator is noticed at once; this covers silent network failures).
    #[arg(long, default_value_t = 1800)]
    pub timeout: u64,
}

/// Options of `electra coordinator`.
#[derive(Debug, clap::Args)]
pub struct CoordinatorArgs {
    /// Number of ranks of the job.
    #[arg(long)]
    pub world: usize,
    /// Address to listen on. Loopback by default; give this machine's address (or 0.0.0.0) for
    /// ranks on other machines.
    #[arg(long, default_value = "127.0.0.1:29500")]
    pub listen: String,
    /// Seconds to wait for every rank to join.
    #[arg(long, default_value_t = 600)]
    pub join_timeout: u64,
}

/// Serves one data-parallel job's reductions until every rank has finished.
pub fn coordinator(args: &CoordinatorArgs) -> Result<()> {
    let c = electra_train::dist::Coordinator::bind(&args.listen, args.world)?;
    eprintln!("coordinator listening on {} for {} ranks", c.local_addr()?, args.world);
    c.serve(std::time::Duration::from_secs(args.join_timeout))?;
    eprintln!("coordinator: every rank finished");
    Ok(())
}

/// The no-argument run: a 4-layer, hidden-128 ELECTRA on the shipped corpus with its 8k
/// vocabulary, sized to finish in under ten minutes on two CPU cores. Adam's bias correction is
/// on because the warm-up is short: without it the first steps are several times too large
/// (the reference relies on 10,000 warm-up steps) and the discriminator collapses to
/// predicting the base rate (see docs/performance.md).
pub fn quick_config() -> PretrainConfig {
    // No dropout: a 1,000-step run on 3 MB underfits, and dropout only slows learning (held-out
    // AUC 0.564 vs 0.549 at step 1000, and no mask sampling; docs/performance.md).
    let mut model = electra_train::config::tiny();
    model.hidden_dropout_prob = 0.0;
    model.attention_probs_dropout_prob = 0.0;
    PretrainConfig {
        model: ModelSpec::Custom(Box::new(model)),
        max_seq_len: 64,
        batch_size: 16,
        steps: 1000,
        learning_rate: 1e-3,
        warmup_steps: 100,
        bias_correction: true,
        log_every: 10,
        eval_every: 250,
        eval_batches: 8,
        checkpoint_every: 250,
        keep_checkpoints: 2,
        ..PretrainConfig::default()
    }
}

/// [`PretrainConfig::continued`] for `init`, with sequences no longer than the checkpoint's
/// learned positions.
fn continued_config(init: &InitFrom) -> Result<PretrainConfig> {
    let mut config = PretrainConfig::continued(init.clone());
    let positions = electra_model::hf::load_config(&init.source()?.discriminator)?.max_position_embeddings;
    config.max_seq_len = config.max_seq_len.min(positions);
    Ok(config)
}

/// The config recorded in a run directory's `config.json`; `None` when there is no readable
/// config.
fn saved_run_config(out: &Path) -> Option<PretrainConfig> {
    electra_train::checkpoint::saved_config(out).ok()
}

struct TrainBar {
    bar: ProgressBar,
    /// When and at which step this run's loop started (for the first step's time).
    started: std::cell::Cell<Option<(std::time::Instant, u64)>>,
}

impl TrainBar {
    fn new(bar: ProgressBar) -> Self {
        Self { bar, started: std::cell::Cell::new(None) }
    }

    /// A line above the bar, or on stderr when the bar is hidden (output not a terminal).
    fn say(&self, line: String) {
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }
}

impl Progress for TrainBar {
    fn on_start(&self, start: u64, total: u64) {
        self.bar.set_length(total);
        self.bar.set_position(start);
        self.bar.reset_eta();
        self.started.set(Some((std::time::Instant::now(), start)));
    }
    fn on_advance(&self, done: u64) {
        self.bar.set_position(done);
    }
    fn on_step(&self, m: &StepMetrics) {
        if let Some((at, start)) = self.started.get()
            && m.step == start + 1
            && backend::GPU
        {
            // The first step of a GPU run compiles its kernels and autotunes the tunable ones
            // (results cached for later runs).
            let cache = backend::tune_cache().map_or_else(|| "the runtime's default".to_string(), |d| d.display().to_string());
            self.say(format!(
                "first step: {:.1} s (GPU kernels compiled and autotuned; tune results cached in {cache})",
                at.elapsed().as_secs_f64()
            ));
        }
        self.bar.set_position(m.step);
        self.bar.set_message(format!(
            "gen {:.3} disc {:.4} gen-acc {:.3} disc-acc {:.3} {:.0} tok/s",
            m.mlm_loss, m.disc_loss, m.gen_accuracy, m.disc_accuracy, m.tokens_per_sec
        ));
    }
    fn on_eval(&self, e: &EvalMetrics) {
        self.say(format!(
            "eval @ {}: gen loss {:.3}, gen acc {:.3} (unigram {:.3}), disc AUC {:.3} (rarity {}), binned {}, unigram-probe {}, acc {:.3}, P {:.3} R {:.3}, replaced {:.3}",
            e.step,
            e.mlm_loss,
            e.gen_accuracy,
            e.unigram_accuracy,
            e.auc,
            e.rarity_auc.map_or_else(|| "-".to_string(), |r| format!("{r:.3}")),
            e.binned_auc.map_or_else(|| "-".to_string(), |r| format!("{r:.3}")),
            e.unigram_auc.map_or_else(|| "-".to_string(), |r| format!("{r:.3}")),
            e.disc_accuracy,
            e.precision,
            e.recall,
            e.replaced_fraction
        ));
    }
    fn on_checkpoint(&self, step: u64, dir: &Path) {
        tracing::debug!(step, dir = %dir.display(), "checkpoint");
    }
}

/// The run's vocabulary: the checkpoint's with `init` (where `--vocab`, if given, must be the
/// same vocabulary), else `--vocab` or the default for the kind of run.
fn run_tokenizer(args: &PretrainArgs, config: &PretrainConfig) -> Result<WordPieceTokenizer> {
    let load = |path: &Path| {
        if !path.exists() {
            bail!("vocabulary not found: {} (run from the repository root or pass --vocab)", path.display());
        }
        WordPieceTokenizer::from_path(path).with_context(|| format!("cannot load the vocabulary {}", path.display()))
    };
    let Some(init) = &config.init else {
        let vocab = args.vocab.clone().unwrap_or_else(|| {
            PathBuf::from(if args.config.is_some() { DEFAULT_VOCAB } else { QUICK_VOCAB })
        });
        return load(&vocab);
    };
    let source = init.source()?;
    let checkpoint = WordPieceTokenizer::from_path(&source.discriminator).with_context(|| {
        format!("{}: no usable vocabulary (vocab.txt or tokenizer.json) beside the checkpoint", source.discriminator.display())
    })?;
    if let Some(path) = &args.vocab {
        let given = load(path)?;
        if given.vocab_sha256() != checkpoint.vocab_sha256() {
            bail!(
                "--vocab {} ({} entries, sha256 {}) is not the vocabulary of the checkpoint {} ({} entries, sha256 {}); \
                 a continued run uses the checkpoint's vocabulary: drop --vocab",
                path.display(),
                given.vocab_size(),
                given.vocab_sha256(),
                checkpoint.source().display(),
                checkpoint.vocab_size(),
                checkpoint.vocab_sha256()
            );
        }
    }
    Ok(checkpoint)
}

/// `path` made absolute (a run records it in config.json and may be resumed from elsewhere).
fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))
}

/// Pre-trains (preparing the data on first use) and prints a summary.
pub fn pretrain(args: &PretrainArgs) -> Result<()> {
    let mode = OutMode::from_flags(args.resume, args.overwrite)?;
    let init = match &args.init {
        Some(dir) => Some(InitFrom { dir: absolute(dir)?, generator: args.init_generator.as_deref().map(absolute).transpose()? }),
        None => None,
    };
    let mut config = match (&args.config, &init) {
        (Some(path), _) => PretrainConfig::from_file(path)?,
        (None, Some(init)) => continued_config(init)?,
        (None, None) => quick_config(),
    };
    if init.is_some() {
        config.init = init;
    }
    if let Some(steps) = args.steps {
        config.steps = steps;
    }
    // Resuming: the config the run started with, read once.
    let saved = if args.resume { saved_run_config(&args.out) } else { None };
    match (args.precision, &saved) {
        (Some(precision), _) => config.precision = precision,
        // Resuming without `--precision`: the run's own (so that `--resume` alone continues an
        // f16 or bf16 run; a config file that says otherwise is still refused by the check).
        (None, Some(saved)) if args.config.is_none() => config.precision = saved.precision,
        (None, _) => {}
    }
    backend::check_precision(config.precision)?;
    if config.chunk_size.is_none() {
        // Resuming: keep the chunking the run started with (`None` for runs from before batch
        // chunks existed), so that the resumed config matches the saved one.
        config.chunk_size = match &saved {
            Some(saved) => saved.chunk_size,
            None => Some(backend::DEFAULT_CHUNK),
        };
    }
    config.validate()?;
    let tokenizer = run_tokenizer(args, &config)?;
    let vocab = tokenizer.source().to_path_buf();
    // The architecture (and, continuing a checkpoint, its fit with the vocabulary and
    // `max_seq_len`) is checked before any data is prepared.
    let networks = config.networks(tokenizer.vocab_size())?;
    let data = args.data.clone().unwrap_or_else(|| args.out.join("data"));
    if args.world == 0 || args.rank >= args.world {
        bail!("--rank {} is not in 0..--world {}", args.rank, args.world);
    }
    if args.world > 1 && args.coordinator.is_none() {
        bail!("--world {} needs --coordinator HOST:PORT (start one with `electra coordinator`)", args.world);
    }
    // Ctrl-C: finish the current step (or shard), write a checkpoint, and exit; `--resume`
    // continues.
    let cancel = crate::cancel_on_ctrl_c();
    if args.rank > 0 && !data.join("manifest.json").is_file() {
        // Rank 0 prepares the data; the others wait for it.
        eprintln!("rank {}: waiting for rank 0 to prepare {}", args.rank, data.display());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(args.timeout);
        while !data.join("manifest.json").is_file() {
            if std::time::Instant::now() > deadline || cancel.is_cancelled() {
                bail!("rank {}: no prepared data in {} (rank 0 prepares it, or pass --data)", args.rank, data.display());
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
    if !data.join("manifest.json").is_file() {
        eprintln!("preparing {} into {} (first use)", join(&args.corpus), data.display());
        prepare_into(&PrepareArgs {
            corpus: args.corpus.clone(),
            vocab: vocab.clone(),
            out: data.clone(),
            max_seq_len: config.max_seq_len,
            validation_fraction: 0.02,
            seed: 0,
            strict: false,
            resume: true,
            overwrite: false,
        }, &cancel)?;
    }
    let peer = match &args.coordinator {
        Some(address) if args.world > 1 => {
            let manifest = electra_tokenizer::Manifest::load(&data)?;
            let hello =
                electra_train::dist::hello_for(&config, tokenizer.vocab_sha256(), &manifest.settings, args.rank, args.world);
            let wait = std::time::Duration::from_secs(args.timeout);
            eprintln!("rank {} of {}: joining the job at {address}", args.rank, args.world);
            Some(electra_train::dist::Peer::connect_listening(address, args.listen.as_deref(), &hello, wait, wait)?)
        }
        _ => None,
    };
    let lead = args.rank == 0;
    if lead {
        if let Some(init) = &config.init {
            eprintln!(
                "continuing from {} (generator: {})",
                init.dir.display(),
                init.source()?.generator.map_or_else(|| "fresh, sharing its embeddings".to_string(), |g| g.display().to_string())
            );
        }
        eprintln!(
            "pre-training on {} ({}): discriminator {} layers x {}, generator x {}, {} steps of {} x {} tokens",
            backend::NAME,
            data.display(),
            networks.discriminator.num_hidden_layers,
            networks.discriminator.hidden_size,
            networks.generator.hidden_size,
            config.steps,
            config.batch_size,
            config.max_seq_len
        );
    }
    let bar = ProgressBar::new(config.steps).with_style(
        ProgressStyle::with_template("{spinner} step {pos}/{len} {bar:25} {elapsed_precise} ETA {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    // Rank 0 alone reports progress (the ranks run in step).
    let progress = TrainBar::new(bar);
    let quiet = electra_train::NoProgress;
    let reporter: &dyn Progress = if lead { &progress } else { &quiet };
    let paths = RunPaths { data_dir: data, out_dir: args.out.clone() };
    let local = electra_train::dist::Local;
    let dist: &dyn electra_train::dist::Reduce = match &peer {
        Some(p) => p,
        None => &local,
    };
    let result = electra_train::pretrain_dist::<AutodiffBackend>(
        &config,
        &tokenizer,
        &paths,
        mode,
        &backend::device(),
        reporter,
        &cancel,
        dist,
    );
    if let Some(p) = &peer {
        p.finish().ok();
    }
    let summary = result?;
    progress.bar.finish_and_clear();
    if !lead {
        eprintln!("rank {}: {} steps done ({:.0} s)", args.rank, summary.steps_this_run, summary.seconds);
        return Ok(());
    }
    if args.world > 1 {
        println!("\n{} ranks on one global batch of {}", args.world, config.batch_size);
    }
    println!("\n== pre-training summary ==");
    println!("steps            {} ({} in this run, {:.0} s)", summary.steps, summary.steps_this_run, summary.seconds);
    if let Some(e) = &summary.eval {
        let name = if summary.discriminator_dir.is_some() { "generator" } else { "masked LM" };
        println!("{name:<17}MLM accuracy {:.3} (unigram baseline {:.3}), loss {:.3}", e.gen_accuracy, e.unigram_accuracy, e.mlm_loss);
        if summary.discriminator_dir.is_some() {
            println!(
                "discriminator    AUC {:.3}, accuracy {:.3}, precision {:.3}, recall {:.3}, loss {:.4}",
                e.auc, e.disc_accuracy, e.precision, e.recall, e.disc_loss
            );
            if let Some(r) = e.rarity_auc {
                println!(
                    "                 context-free baseline: AUC {r:.3} from token rarity alone ({:+.3}: {})",
                    e.auc - r,
                    if e.auc > r + 0.05 { "the discriminator uses context" } else { "no clear use of context yet" }
                );
            }
            if let (Some(b), Some(br), Some(u), Some(ur)) =
                (e.binned_auc, e.binned_rarity_auc, e.unigram_auc, e.unigram_rarity_auc)
            {
                println!("context probes   AUC within frequency bins {b:.3} (rarity {br:.3}); AUC on unigram replacements {u:.3} (rarity {ur:.3})");
                println!(
                    "                 {}",
                    if e.reads_context() == Some(true) {
                        "the discriminator reads context: both probes clear their rarity baselines"
                    } else {
                        "no clear use of context yet: a probe is within 0.05 of its rarity baseline"
                    }
                );
            }
            println!("replaced tokens  {:.3} of real tokens ({} validation examples)", e.replaced_fraction, e.examples);
        } else {
            println!("({} validation examples; the MLM objective has no discriminator)", e.examples);
        }
    }
    if let Some(d) = &summary.discriminator_dir {
        println!("discriminator -> {}", d.display());
    }
    println!("generator     -> {}", summary.generator_dir.display());
    println!("metrics       -> {}", summary.metrics.display());
    println!("curves        -> {} and {}", summary.plot.display(), electra_train::plot::png_path(&summary.plot).display());
    Ok(())
}

fn join(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_run_keeps_the_chunking_it_started_with() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(saved_run_config(dir.path()).map(|c| c.chunk_size), None, "no config yet");
        let write = |c: &PretrainConfig| {
            std::fs::write(dir.path().join("config.json"), serde_json::to_string(c).unwrap_or_default())
                .unwrap_or_else(|e| panic!("{e}"));
        };
        write(&PretrainConfig { chunk_size: Some(4), ..quick_config() });
        assert_eq!(saved_run_config(dir.path()).map(|c| c.chunk_size), Some(Some(4)));
        // A run from before chunks: its config has no `chunk_size` at all.
        let mut old = serde_json::to_value(quick_config()).unwrap_or_default();
        old.as_object_mut().map(|o| o.remove("chunk_size"));
        std::fs::write(dir.path().join("config.json"), old.to_string()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(saved_run_config(dir.path()).map(|c| c.chunk_size), Some(None));
    }
}
