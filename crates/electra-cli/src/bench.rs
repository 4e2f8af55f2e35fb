//! `electra bench`: our implementation against PyTorch + transformers, side by side.
//!
//! `electra bench [model]` measures, for ELECTRA-Small (paper configuration, vocabulary 30,522)
//! at one sequence length and one or more batch sizes: one full pre-training step
//! ([`electra_train::train_step`], exactly what `electra pretrain` runs), discriminator inference,
//! and a fine-tuning step of a classifier ([`electra_finetune::train_step`], exactly what
//! `electra finetune` runs: [CLS] -> dropout -> linear, 2 classes, cross-entropy, backward,
//! global-norm clipping, Adam with layer-wise learning-rate decay). Every measurement runs in a fresh process (this binary re-invoked with the
//! hidden `--worker` option; `scripts/bench_pytorch.py --task` for PyTorch), so that peak resident
//! memory (VmHWM) is per configuration. The report has the median over the timed repetitions
//! after warm-up, tokens/s, GFLOP/s from a FLOP count of the matrix multiplies, the fraction of
//! the machine's measured sgemm peak, peak memory, and the throughput ratio ours / theirs.
//!
//! `electra bench prepare` measures `electra prepare` ([`electra_tokenizer::prepare`]) against
//! the Python reference (`scripts/bench_prepare.py`) on the decompressed shared corpora.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use burn::prelude::*;
use burn::tensor::Distribution;
use electra_corrupt::SpecialIds;
use electra_finetune::{Feature, FinetuneConfig, HeadKind, HeadStyle, TaskModel};
use electra_model::input::int_tensor;
use electra_model::{Discriminator, ElectraConfig, ElectraModel, ElectraPreTraining, PreTrainingConfig};
use electra_tokenizer::{NoProgress, PrepareConfig};
use electra_train::PretrainConfig;
use electra_train::data::HostBatch;
use electra_train::optim::ElectraAdam;
use electra_train::seed::derive_seed;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use crate::backend;
use crate::pretrain::DEFAULT_VOCAB;

/// The inference backend.
pub(crate) type Inner = backend::Backend;
/// The training backend.
pub(crate) type Ad = backend::AutodiffBackend;

/// BERT uncased: the vocabulary size and special ids of ELECTRA-Small.
const VOCAB: usize = 30522;
pub(crate) const SPECIAL: SpecialIds = SpecialIds { pad: 0, cls: 101, sep: 102, mask: 103, vocab_size: VOCAB };
/// Ids below are special or `[unusedN]` in BERT uncased.
const FIRST_WORD_ID: u64 = 999;
/// The PyTorch side, relative to the repository root.
const PYTORCH_SCRIPT: &str = "scripts/bench_pytorch.py";
/// The Python reference of the text pipeline, relative to the repository root.
const PREPARE_SCRIPT: &str = "scripts/bench_prepare.py";
/// Set in a worker run with `--count-launches`: [`timed`] counts one step's kernel launches
/// into it instead of timing.
static COUNTING: std::sync::OnceLock<std::sync::atomic::AtomicUsize> = std::sync::OnceLock::new();
/// Clock ticks per second of `/proc/self/stat` (`USER_HZ`, 100 on Linux).
const USER_HZ: f64 = 100.0;

/// What `electra bench` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// Pre-training step, inference and fine-tuning step of ELECTRA-Small, ours and PyTorch's.
    Model,
    /// `electra prepare` against the Python reference (`scripts/bench_prepare.py`).
    Prepare,
    /// Data-parallel scaling of the pre-training step: 1 process against `--world` processes,
    /// ours and PyTorch DDP's (`scripts/bench_ddp.py`).
    Scale,
}

/// One measurement, run in its own process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Task {
    /// The best time of an N x N x N float32 matrix multiply.
    Peak,
    /// One full pre-training step.
    Pretrain,
    /// Discriminator logits, no gradient.
    Inference,
    /// One fine-tuning step of a classifier.
    Finetune,
}

impl Task {
    fn name(self) -> &'static str {
        match self {
            Task::Peak => "peak",
            Task::Pretrain => "pretrain",
            Task::Inference => "inference",
            Task::Finetune => "finetune",
        }
    }
}

/// Options of `electra bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// `model` (default): pre-training, inference and fine-tuning of ELECTRA-Small;
    /// `prepare`: the text pipeline; `scale`: data-parallel pre-training, 1 against N processes.
    #[arg(value_enum, default_value = "model")]
    pub target: Target,
    /// Smoke test: batch 32 only, 1 warm-up + 2 timed repetitions (prepare: one corpus, 1 run).
    #[arg(long)]
    pub quick: bool,
    /// Threads of both sides (PyTorch: torch.set_num_threads; ours: RAYON_NUM_THREADS, and the
    /// workers of `electra prepare`). Default: the number of cores.
    #[arg(long)]
    pub threads: Option<usize>,
    /// The JSON report (default: runs/bench/bench-<UTC time>.json, prepare-<UTC time>.json).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Batch sizes, comma-separated (default 32,128; --quick: 32).
    #[arg(long, value_delimiter = ',')]
    pub batch: Vec<usize>,
    /// Sequence length.
    #[arg(long, default_value_t = 128)]
    pub seq: usize,
    /// Warm-up repetitions (default 2 at batch < 128, 1 at batch >= 128; --quick: 1).
    #[arg(long)]
    pub warmup: Option<usize>,
    /// Timed repetitions (default 5 at batch < 128, 3 at batch >= 128; --quick: 2;
    /// prepare: 3, --quick: 1).
    #[arg(long)]
    pub reps: Option<usize>,
    /// Size N of the N x N x N matrix multiply that measures the peak.
    #[arg(long, default_value_t = 2048)]
    pub peak_size: usize,
    /// The Python interpreter of the PyTorch side.
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Attention implementation of transformers (`sdpa` is its default, `eager` the plain one).
    #[arg(long, default_value = "sdpa")]
    pub torch_attn: String,
    /// Where the PyTorch side runs: `cpu`, `cuda`, or `auto` (default: `cuda` when this binary's
    /// backend is a GPU one, wgpu or cuda; `cpu` otherwise).
    #[arg(long, default_value = "auto", value_parser = ["auto", "cpu", "cuda"])]
    pub torch_device: String,
    /// Rows per batch chunk on our side (pre-training, inference and fine-tuning; 0: whole
    /// batches). Default: the backend's, 8 on CPU backends, 0 on GPU ones.
    #[arg(long)]
    pub chunk: Option<usize>,
    /// Measure our side only.
    #[arg(long)]
    pub no_python: bool,
    /// Precision of both sides' matrix multiplies: f32, or bf16 (ours `--precision bf16`,
    /// PyTorch's `torch.autocast` with bfloat16).
    #[arg(long, default_value = "f32")]
    pub precision: electra_model::Precision,
    /// prepare: the directory of the .xz corpora (brown, sotu, moby_dick, bible_web).
    #[arg(long, default_value = "../shared/data/corpora")]
    pub corpora: PathBuf,
    /// prepare: the vocabulary.
    #[arg(long, default_value = DEFAULT_VOCAB)]
    pub vocab: PathBuf,
    /// Internal: run one measurement in this process and print it as one JSON line.
    #[arg(long, value_enum, hide = true)]
    pub worker: Option<Task>,
    /// Internal, with `--worker` on a GPU build run with `$ELECTRA_LAUNCH_LOG`: count one
    /// step's kernel launches instead of timing.
    #[arg(long, hide = true)]
    pub count_launches: bool,
    /// scale: the data-parallel settings.
    #[command(flatten)]
    pub scale: crate::bench_scale::ScaleArgs,
}

/// Runs `electra bench`.
pub fn bench(args: &BenchArgs) -> Result<()> {
    if args.precision == electra_model::Precision::F16 {
        bail!("--precision f16: the bench compares f32 or bf16 (fine-tuning has no f16 mode)");
    }
    backend::check_precision(args.precision)?;
    if let Some(task) = args.worker {
        if args.count_launches {
            COUNTING.get_or_init(Default::default);
        }
        let mut out = match args.target {
            Target::Scale => crate::bench_scale::worker(task, args)?,
            Target::Model | Target::Prepare => worker(task, args)?,
        };
        if let Some(count) = COUNTING.get() {
            out = json!({"task": task.name(), "kernel_launches": count.load(std::sync::atomic::Ordering::SeqCst)});
        }
        println!("{out}");
        return Ok(());
    }
    match args.target {
        Target::Model => bench_model(args),
        Target::Prepare => bench_prepare(args),
        Target::Scale => crate::bench_scale::bench_scale(args),
    }
}

// ---------------------------------------------------------------------------------------------
// Measurements (worker processes)

/// Peak resident memory of this process so far (`VmHWM`), in KiB.
pub(crate) fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User + system CPU time of this process (all threads), in seconds.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces): state is the first; utime and
    // stime are fields 14 and 15 of the whole line, so 12th and 13th here.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// Times `step` `reps` times after `warmup` untimed runs; returns the times and the CPU time
/// over the timed wall time (the number of cores kept busy).
pub(crate) fn timed(warmup: usize, reps: usize, mut step: impl FnMut() -> Result<()>) -> Result<(Vec<f64>, Option<f64>)> {
    if let Some(count) = COUNTING.get() {
        // A launch-count run: warm up, then count the launches of one step.
        let device = backend::device();
        for _ in 0..warmup {
            step()?;
        }
        let before = launches_logged(&device)?;
        step()?;
        let after = launches_logged(&device)?;
        count.store(after - before, std::sync::atomic::Ordering::SeqCst);
        return Ok((vec![0.0], None));
    }
    for _ in 0..warmup {
        step()?;
    }
    let (cpu0, wall0) = (cpu_seconds(), Instant::now());
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        step()?;
        times.push(t.elapsed().as_secs_f64());
    }
    let wall = wall0.elapsed().as_secs_f64().max(1e-9);
    let cores = cpu0.zip(cpu_seconds()).map(|(a, b)| (b - a) / wall);
    Ok((times, cores))
}

pub(crate) fn sync(device: &<Inner as burn::tensor::backend::BackendTypes>::Device) -> Result<()> {
    <Inner as Backend>::sync(device).map_err(|e| anyhow!("backend sync failed: {e:?}"))
}

/// The seed of the synthetic inputs; each stream is `derive_seed(SYNTHETIC_SEED, stream)`.
const SYNTHETIC_SEED: u64 = 0x00E1_EC7A;

/// A deterministic stream of pseudo-random numbers for synthetic inputs (the workspace's one
/// seed derivation, [`derive_seed`]).
fn synthetic_rng(stream: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(derive_seed(SYNTHETIC_SEED, stream))
}

/// `[CLS] A [SEP] B [SEP]` rows of random word ids, no padding, segment 1 on B (as the PyTorch
/// side builds them).
pub(crate) fn synthetic_batch(batch: usize, seq: usize, seed: u64) -> HostBatch {
    let mut rng = synthetic_rng(seed);
    let mid = seq / 2;
    let mut b = HostBatch {
        input_ids: Vec::with_capacity(batch * seq),
        token_type_ids: Vec::with_capacity(batch * seq),
        attention_mask: vec![1; batch * seq],
        batch,
        seq,
    };
    for _ in 0..batch {
        for j in 0..seq {
            let id = if j == 0 {
                SPECIAL.cls
            } else if j == mid || j == seq - 1 {
                SPECIAL.sep
            } else {
                rng.random_range(FIRST_WORD_ID as u32..VOCAB as u32)
            };
            b.input_ids.push(id);
            b.token_type_ids.push(u32::from(j > mid));
        }
    }
    b
}

/// The pre-training settings of the benchmark: the ELECTRA-Small recipe, without warm-up so that
/// the updates are not zero.
pub(crate) fn pretrain_config(batch: usize, seq: usize, chunk: usize) -> PretrainConfig {
    PretrainConfig {
        batch_size: batch,
        max_seq_len: seq,
        warmup_steps: 0,
        chunk_size: Some(chunk),
        ..PretrainConfig::default()
    }
}

/// ELECTRA-Small with dropout on (the training setting).
pub(crate) fn small() -> ElectraConfig {
    ElectraConfig { vocab_size: VOCAB, ..ElectraConfig::small() }
}

/// The fine-tuning settings of the benchmark: `electra finetune`'s (reference Adam, layer-wise
/// decay 0.8, clipping at 1) at learning rate 1e-4, without warm-up so that the updates are not
/// zero.
fn finetune_config(batch: usize, chunk: usize) -> FinetuneConfig {
    FinetuneConfig {
        learning_rate: 1e-4,
        batch_size: batch,
        warmup_proportion: 0.0,
        chunk_size: Some(chunk),
        ..FinetuneConfig::default()
    }
}

fn worker(task: Task, args: &BenchArgs) -> Result<Value> {
    let batch = args.batch.first().copied().unwrap_or(32);
    let (seq, warmup, reps) = (args.seq, args.warmup.unwrap_or(2), args.reps.unwrap_or(5).max(1));
    let device = backend::device();
    let mut out = json!({"task": task.name(), "batch": batch, "seq": seq, "warmup": warmup, "reps": reps});
    let (times, cores) = match task {
        Task::Peak => {
            let n = args.peak_size;
            let a = Tensor::<Inner, 2>::random([n, n], Distribution::Default, &device);
            let b = Tensor::<Inner, 2>::random([n, n], Distribution::Default, &device);
            let (times, cores) = timed(warmup.max(1), reps.max(3), || {
                let c = a.clone().matmul(b.clone());
                sync(&device)?;
                drop(c);
                Ok(())
            })?;
            let best = times.iter().copied().fold(f64::INFINITY, f64::min);
            out["size"] = json!(n);
            out["gflops"] = json!(2.0 * (n as f64).powi(3) / best / 1e9);
            (times, cores)
        }
        Task::Pretrain => {
            let config = PretrainConfig { precision: args.precision, ..pretrain_config(batch, seq, chunk(args)) };
            let networks = PreTrainingConfig::new(small(), config.generator_size)?;
            let mut model = Some(ElectraPreTraining::<Ad>::init(&networks, config.seed, &device)?);
            let mut optim = ElectraAdam::from_config(&config).init::<Ad, ElectraPreTraining<Ad>>();
            let masker = electra_train::masker(&config, SPECIAL, None)?;
            let host = synthetic_batch(batch, seq, 0);
            let (mut step, mut predictions) = (0u64, 0usize);
            let (times, cores) = timed(warmup, reps, || {
                let m = model.take().context("the model was lost by a failed step")?;
                let (next, outcome) =
                    electra_train::train_step(m, &mut optim, &config, &masker, step, |_| Ok(host.clone()))?;
                sync(&device)?;
                model = Some(next);
                predictions = outcome.predictions();
                step += 1;
                Ok(())
            })?;
            out["masked_positions"] = json!(predictions);
            (times, cores)
        }
        Task::Inference => {
            let mut config = small();
            config.hidden_dropout_prob = 0.0;
            config.attention_probs_dropout_prob = 0.0;
            let model = Discriminator::<Inner>::init(&config, 0, &device)?;
            let host = synthetic_batch(batch, seq, 0);
            let ids = int_tensor::<Inner, 2>(&host.input_ids, [batch, seq], &device);
            let types = int_tensor::<Inner, 2>(&host.token_type_ids, [batch, seq], &device);
            let mask = int_tensor::<Inner, 2>(&host.attention_mask, [batch, seq], &device);
            // As `electra score` runs it: chunks of rows on rayon's threads on CPU backends.
            let precision = args.precision;
            timed(warmup, reps, || electra_model::autocast(precision, || {
                let parts = electra_model::parallel::map_chunks(batch, chunk(args), |_, rows| {
                    let (i, t, m) = (ids.clone().slice(rows.clone()), types.clone().slice(rows.clone()), mask.clone().slice(rows));
                    model.forward(i, t, m).logits.into_data() // the logits on the host, as `electra score` reads them
                });
                std::hint::black_box(parts);
                Ok(())
            }))?
        }
        Task::Finetune => {
            // As `electra finetune` runs a batch: `electra_finetune::train_step` (chunks of rows
            // on rayon's threads on CPU backends; whole batches, dropout from the backend, on GPU
            // ones), on a reference (linear) classification head.
            let config = FinetuneConfig { precision: args.precision, ..finetune_config(batch, chunk(args)) };
            let kind = HeadKind::Sequence { labels: vec!["0".into(), "1".into()] };
            let encoder = ElectraModel::<Ad>::init(&small(), 0, &device)?;
            let mut model = Some(TaskModel::new(encoder, kind, HeadStyle::Linear, 0, &device)?);
            let mut optim = config.adam().init::<Ad, TaskModel<Ad>>();
            let host = synthetic_batch(batch, seq, 0);
            let mut rng = synthetic_rng(1);
            let features: Vec<Feature> = (0..batch)
                .map(|r| Feature {
                    input_ids: host.input_ids[r * seq..(r + 1) * seq].to_vec(),
                    token_type_ids: host.token_type_ids[r * seq..(r + 1) * seq].to_vec(),
                    target: Some(electra_finetune::Target::Class(rng.random_range(0..2))),
                })
                .collect();
            let refs: Vec<&Feature> = features.iter().collect();
            // Far more steps than the bench runs, so that the rate stays near its peak.
            let total = 1_000_000;
            let mut step = 0usize;
            timed(warmup, reps, || {
                let m = model.take().context("the model was lost by a failed step")?;
                let (next, outcome) = electra_finetune::train_step(m, &mut optim, &config, &refs, step, total)?;
                std::hint::black_box(outcome);
                sync(&device)?;
                model = Some(next);
                step += 1;
                Ok(())
            })?
        }
    };
    if task != Task::Peak {
        out["median_s"] = json!(median(&times));
    }
    out["times_s"] = json!(times);
    out["cores_used"] = json!(cores);
    out["vm_hwm_kib"] = json!(vm_hwm_kib());
    out["gpu_reserved_mib"] = json!(backend::gpu_reserved_mib(&device));
    Ok(out)
}

pub(crate) fn median(values: &[f64]) -> f64 {
    electra_finetune::metrics::median(values).unwrap_or(f64::NAN)
}

// ---------------------------------------------------------------------------------------------
// FLOP count: matrix multiplies and attention; forward 2 m n k per product, backward 2 x forward.

/// Forward FLOPs of an encoder (embedding projection and layers) on `batch x seq` tokens.
fn encoder_flops(c: &ElectraConfig, batch: usize, seq: usize) -> f64 {
    let t = (batch * seq) as f64;
    let (h, f, e, s) = (c.hidden_size as f64, c.intermediate_size as f64, c.embedding_size() as f64, seq as f64);
    let projection = if c.has_projection() { 2.0 * t * e * h } else { 0.0 };
    let layer = 4.0 * 2.0 * t * h * h // query, key, value, output
        + 2.0 * 2.0 * t * h * f // feed-forward in and out
        + 2.0 * 2.0 * batch as f64 * s * s * h; // scores and context, all heads
    projection + c.num_hidden_layers as f64 * layer
}

/// Forward FLOPs of the generator head at `n` positions (dense + vocabulary projection).
fn generator_head_flops(g: &ElectraConfig, n: usize) -> f64 {
    let (n, e) = (n as f64, g.embedding_size() as f64);
    2.0 * n * g.hidden_size as f64 * e + 2.0 * n * e * g.vocab_size as f64
}

/// Forward FLOPs of the replaced-token-detection head.
fn discriminator_head_flops(d: &ElectraConfig, tokens: usize) -> f64 {
    let (t, h) = (tokens as f64, d.hidden_size as f64);
    2.0 * t * h * h + 2.0 * t * h
}

/// FLOPs of one repetition of `task`, and (pre-training only) those of the same step with the
/// vocabulary projection at every position.
fn task_flops(task: Task, batch: usize, seq: usize, masked: usize) -> Result<(f64, Option<f64>)> {
    let net = PreTrainingConfig::new(small(), 0.25)?;
    let (g, d) = (&net.generator, &net.discriminator);
    let tokens = batch * seq;
    Ok(match task {
        Task::Peak => (0.0, None),
        Task::Pretrain => {
            let body = encoder_flops(g, batch, seq) + encoder_flops(d, batch, seq) + discriminator_head_flops(d, tokens);
            (3.0 * (body + generator_head_flops(g, masked)), Some(3.0 * (body + generator_head_flops(g, tokens))))
        }
        Task::Inference => (encoder_flops(d, batch, seq) + discriminator_head_flops(d, tokens), None),
        Task::Finetune => (3.0 * (encoder_flops(d, batch, seq) + 2.0 * batch as f64 * d.hidden_size as f64 * 2.0), None),
    })
}

// ---------------------------------------------------------------------------------------------
// Driver: one process per measurement, ours then theirs, then the report.

/// Rows per batch chunk on our side.
pub(crate) fn chunk(args: &BenchArgs) -> usize {
    args.chunk.unwrap_or(backend::DEFAULT_CHUNK)
}

fn threads(args: &BenchArgs) -> usize {
    args.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).max(1)
}

/// `rel` under the current directory, else under the repository this binary was built from.
pub(crate) fn repo_file(rel: &str) -> PathBuf {
    let here = PathBuf::from(rel);
    if here.exists() {
        return here;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(rel)
}

/// Runs a child and parses the last line of its standard output as JSON.
pub(crate) fn run_json(mut cmd: Command, what: &str) -> Result<Value> {
    let output = cmd
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .output()
        .with_context(|| format!("cannot start {what}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = last[last.len().saturating_sub(3)..].join(" | ");
        bail!("{what} failed ({}): {tail}", output.status);
    }
    let line = stdout.lines().rev().find(|l| l.trim_start().starts_with('{')).context("no JSON output")?;
    serde_json::from_str(line).with_context(|| format!("{what}: cannot parse `{line}`"))
}

struct Plan {
    batch: usize,
    warmup: usize,
    reps: usize,
}

fn plans(args: &BenchArgs) -> Vec<Plan> {
    let batches = if !args.batch.is_empty() {
        args.batch.clone()
    } else if args.quick {
        vec![32]
    } else {
        vec![32, 128]
    };
    batches
        .into_iter()
        .map(|batch| {
            let (w, r) = if args.quick {
                (1, 2)
            } else if batch >= 128 {
                (1, 3)
            } else {
                (2, 5)
            };
            Plan { batch, warmup: args.warmup.unwrap_or(w), reps: args.reps.unwrap_or(r).max(1) }
        })
        .collect()
}

/// The PyTorch side: the script and what `--task check` said, or why it is absent.
pub(crate) struct Python {
    pub(crate) script: PathBuf,
    pub(crate) check: Value,
}

pub(crate) fn find_python(args: &BenchArgs, threads: usize) -> std::result::Result<Python, String> {
    if args.no_python {
        return Err("--no-python".into());
    }
    let script = repo_file(PYTORCH_SCRIPT);
    if !script.is_file() {
        return Err(format!("{PYTORCH_SCRIPT} not found"));
    }
    let mut cmd = Command::new(&args.python);
    cmd.arg(&script).args(["--task", "check", "--threads", &threads.to_string(), "--attn", &args.torch_attn]);
    cmd.args(["--device", torch_device(args)]);
    thread_env(&mut cmd, threads);
    match run_json(cmd, "the PyTorch check") {
        Ok(check) => Ok(Python { script, check }),
        Err(e) => Err(format!("{e:#} (install with `pip install -r scripts/requirements-bench.txt`)")),
    }
}

/// The PyTorch side's device: the same kind of processor as our backend unless told otherwise.
fn torch_device(args: &BenchArgs) -> &str {
    match args.torch_device.as_str() {
        "auto" if matches!(backend::NAME, "wgpu" | "cuda") => "cuda",
        "auto" => "cpu",
        other => other,
    }
}

pub(crate) fn thread_env(cmd: &mut Command, threads: usize) {
    let n = threads.to_string();
    for var in ["RAYON_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"] {
        cmd.env(var, &n);
    }
}

/// This very binary, to run as a worker: /proc/self/exe still is it when a rebuild has replaced
/// the file meanwhile.
pub(crate) fn our_exe() -> Result<PathBuf> {
    Ok(match Path::new("/proc/self/exe") {
        p if p.exists() => p.to_path_buf(),
        _ => std::env::current_exe().context("cannot find the electra binary")?,
    })
}

fn ours(task: Task, plan: &Plan, args: &BenchArgs, threads: usize) -> Result<Value> {
    let mut cmd = Command::new(our_exe()?);
    cmd.args(["bench", "--worker", task.name()])
        .args(["--batch", &plan.batch.to_string(), "--seq", &args.seq.to_string()])
        .args(["--warmup", &plan.warmup.to_string(), "--reps", &plan.reps.to_string()])
        .args(["--peak-size", &args.peak_size.to_string(), "--chunk", &chunk(args).to_string()])
        .args(["--precision", args.precision.name()])
        .env("RUST_LOG", "warn");
    thread_env(&mut cmd, threads);
    let mut out = run_json(cmd, &format!("our {} worker", task.name()))?;
    if backend::GPU && task != Task::Peak {
        out["kernel_launches"] = json!(launches(task, plan, args)?);
    }
    Ok(out)
}

/// Kernel launches of one of our steps (GPU backends), counted in a separate run of the
/// worker (2 warm-up steps, then one counted) with the GPU runtime's launch log on, so that the
/// log's file writes do not slow the timed run.
fn launches(task: Task, plan: &Plan, args: &BenchArgs) -> Result<usize> {
    let log = std::env::temp_dir().join(format!("electra-launches-{}-{}-{}.log", std::process::id(), task.name(), plan.batch));
    let _ = std::fs::remove_file(&log);
    let mut cmd = Command::new(our_exe()?);
    cmd.args(["bench", "--worker", task.name(), "--count-launches"])
        .args(["--batch", &plan.batch.to_string(), "--seq", &args.seq.to_string()])
        .args(["--warmup", "2", "--reps", "1", "--chunk", &chunk(args).to_string()])
        .args(["--precision", args.precision.name()])
        .env("RUST_LOG", "warn")
        .env(backend::LAUNCH_LOG_ENV, &log);
    let out = run_json(cmd, &format!("our {} launch count", task.name()));
    let _ = std::fs::remove_file(&log);
    out?.get("kernel_launches").and_then(Value::as_u64).map(|n| n as usize).context("the launch count run reported no count")
}

/// The `Executing` lines of the launch log (one per kernel launch), once the device has
/// finished what was queued and the runtime's log thread has written everything (no new line
/// for 300 ms).
fn launches_logged(device: &<Inner as burn::tensor::backend::BackendTypes>::Device) -> Result<usize> {
    let log = std::env::var_os(backend::LAUNCH_LOG_ENV).context("no launch log")?;
    let count = || std::fs::read_to_string(&log).map(|t| t.lines().filter(|l| l.starts_with("Executing ")).count()).unwrap_or(0);
    sync(device)?;
    let mut last = count();
    loop {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let now = count();
        if now == last {
            return Ok(now);
        }
        last = now;
    }
}

fn theirs(py: &Python, task: Task, plan: &Plan, args: &BenchArgs, threads: usize) -> Result<Value> {
    let mut cmd = Command::new(&args.python);
    cmd.arg(&py.script)
        .args(["--task", task.name(), "--threads", &threads.to_string(), "--attn", &args.torch_attn])
        .args(["--batch", &plan.batch.to_string(), "--seq", &args.seq.to_string()])
        .args(["--warmup", &plan.warmup.to_string(), "--reps", &plan.reps.to_string()])
        .args(["--size", &args.peak_size.to_string(), "--device", torch_device(args)])
        .args(["--precision", args.precision.name()])
        // The sampling algorithm of our side: one uniform per row in batch chunks, Gumbel-max on
        // the device without them.
        .args(["--sampling", if chunk(args) > 0 { "multinomial" } else { "gumbel" }]);
    thread_env(&mut cmd, threads);
    run_json(cmd, &format!("the PyTorch {} task", task.name()))
}

pub(crate) fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

/// Adds throughput, GFLOP/s, the share of the peak and MiB to a measurement.
fn derive(m: &mut Value, tokens: usize, flops: f64, peak: Option<f64>) {
    let Some(median) = num(m, "median_s").filter(|&t| t > 0.0) else { return };
    let gflops = flops / median / 1e9;
    m["tokens_per_s"] = json!(tokens as f64 / median);
    m["gflops"] = json!(gflops);
    m["peak_fraction"] = json!(peak.map(|p| gflops / p));
    m["peak_rss_mib"] = json!(num(m, "vm_hwm_kib").map(|k| k / 1024.0));
}

/// UTC `YYYYMMDD-HHMMSS` (days-to-civil from Howard Hinnant's algorithm).
pub(crate) fn utc_stamp() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}-{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

pub(crate) fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(|m| m.trim().to_string()))
        .unwrap_or_else(|| "unknown".into())
}

pub(crate) fn git_commit() -> Option<String> {
    let out = Command::new("git").args(["rev-parse", "--short", "HEAD"]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub(crate) fn write_report(args: &BenchArgs, prefix: &str, report: &Value) -> Result<PathBuf> {
    let path = args.out.clone().unwrap_or_else(|| PathBuf::from(format!("runs/bench/{prefix}-{}.json", utc_stamp())));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(report)?;
    std::fs::write(&path, text + "\n").with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

pub(crate) fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{x:.digits$}"))
}

fn bench_model(args: &BenchArgs) -> Result<()> {
    if args.seq < 5 || args.seq > 512 {
        bail!("--seq must be in [5, 512]");
    }
    let threads = threads(args);
    let plans = plans(args);
    let python = find_python(args, threads);
    let batches: Vec<String> = plans.iter().map(|p| format!("{} ({}+{} reps)", p.batch, p.warmup, p.reps)).collect();
    eprintln!(
        "bench: ELECTRA-Small, seq {}, batch {}, {threads} threads, backend {}, precision {}",
        args.seq,
        batches.join(", "),
        backend::NAME,
        args.precision
    );
    match &python {
        Ok(py) => eprintln!(
            "bench: PyTorch {} + transformers {} (attention: {}, device: {} {})",
            py.check["torch"].as_str().unwrap_or("?"),
            py.check["transformers"].as_str().unwrap_or("?"),
            args.torch_attn,
            torch_device(args),
            py.check["gpu"].as_str().unwrap_or("")
        ),
        Err(why) => eprintln!("bench: PyTorch side ABSENT: {why}; reporting our numbers only"),
    }
    let py = python.as_ref().ok();

    eprintln!("bench: sgemm peak ({0} x {0} x {0} float32)", args.peak_size);
    let peak_plan = Plan { batch: 1, warmup: 1, reps: 10 };
    let our_peak = ours(Task::Peak, &peak_plan, args, threads).unwrap_or_else(|e| {
        eprintln!("bench: our peak failed: {e:#}");
        json!({"error": format!("{e:#}")})
    });
    let their_peak = py.map(|p| theirs(p, Task::Peak, &peak_plan, args, threads)).transpose().unwrap_or_else(|e| {
        eprintln!("bench: PyTorch peak failed: {e:#}");
        None
    });
    let peaks = [num(&our_peak, "gflops"), their_peak.as_ref().and_then(|p| num(p, "gflops"))];
    let machine_peak = peaks.iter().flatten().copied().fold(None, |m: Option<f64>, p| Some(m.map_or(p, |m| m.max(p))));

    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for plan in &plans {
        for task in [Task::Pretrain, Task::Inference, Task::Finetune] {
            let label = format!("{} {}x{}", task.name(), args.seq, plan.batch);
            eprintln!("bench: {label}: ours");
            let mut our = ours(task, plan, args, threads).unwrap_or_else(|e| {
                eprintln!("bench: {label}: ours FAILED: {e:#}");
                failures.push(format!("{label}: {e:#}"));
                json!({"error": format!("{e:#}")})
            });
            let masked = our.get("masked_positions").and_then(Value::as_u64).map_or_else(
                || electra_corrupt::MaskingConfig { max_seq_len: args.seq, ..Default::default() }.num_to_predict(args.seq) * plan.batch,
                |n| n as usize,
            );
            let (flops, full_vocab) = task_flops(task, plan.batch, args.seq, masked)?;
            let tokens = plan.batch * args.seq;
            derive(&mut our, tokens, flops, machine_peak);
            let mut their = match py {
                Some(p) => {
                    eprintln!("bench: {label}: PyTorch");
                    match theirs(p, task, plan, args, threads) {
                        Ok(v) => Some(v),
                        Err(e) => {
                            eprintln!("bench: {label}: PyTorch failed: {e:#}");
                            None
                        }
                    }
                }
                None => None,
            };
            if let Some(t) = their.as_mut() {
                derive(t, tokens, flops, machine_peak);
            }
            let ratio = their.as_ref().and_then(|t| Some(num(t, "median_s")? / num(&our, "median_s")?));
            rows.push(json!({
                "task": task.name(), "batch": plan.batch, "seq": args.seq, "tokens": tokens,
                "flops": flops, "flops_full_vocab_projection": full_vocab, "masked_positions": masked,
                "ours": our, "theirs": their, "ratio_throughput_ours_over_theirs": ratio,
            }));
        }
    }

    print_model_table(&rows, args, threads, &peaks, machine_peak, &python);
    let report = json!({
        "kind": "electra-bench-model",
        "created_utc": utc_stamp(),
        "git_commit": git_commit(),
        "machine": {"cpu": cpu_model(), "cores": std::thread::available_parallelism().map(|n| n.get()).ok()},
        "backend": backend::NAME,
        "threads": threads,
        "model": "ELECTRA-Small: discriminator hidden 256, 12 layers, 4 heads, FFN 1024, embeddings 128; generator 1/4 (hidden 64, 1 head, FFN 256); vocabulary 30522",
        "flop_model": "matrix multiplies and attention only; forward 2mnk per product; a training step counts 3x forward",
        "peak_gflops": {"ours": peaks[0], "theirs": peaks[1], "machine": machine_peak, "size": args.peak_size, "ours_raw": our_peak, "theirs_raw": their_peak},
        "pytorch": match &python { Ok(p) => p.check.clone(), Err(why) => json!({"absent": why}) },
        "torch_attention": args.torch_attn,
        "torch_device": torch_device(args),
        "precision": args.precision.name(),
        "quick": args.quick,
        "results": rows,
        "failures": failures,
    });
    let path = write_report(args, "bench", &report)?;
    println!("\nJSON report: {}", path.display());
    if !failures.is_empty() {
        bail!("{} of our measurements failed: {}", failures.len(), failures.join("; "));
    }
    Ok(())
}

fn print_model_table(
    rows: &[Value],
    args: &BenchArgs,
    threads: usize,
    peaks: &[Option<f64>; 2],
    machine_peak: Option<f64>,
    python: &std::result::Result<Python, String>,
) {
    println!(
        "\n== electra bench: ELECTRA-Small, seq {}, {} backend, {threads} threads, precision {} ==",
        args.seq,
        backend::NAME,
        args.precision
    );
    match python {
        Ok(p) => println!(
            "theirs: PyTorch {} + transformers {}, attention {}, torch threads {}, device {} {}",
            p.check["torch"].as_str().unwrap_or("?"),
            p.check["transformers"].as_str().unwrap_or("?"),
            args.torch_attn,
            p.check["threads"],
            torch_device(args),
            p.check["gpu"].as_str().unwrap_or("")
        ),
        Err(why) => println!("theirs: PyTorch ABSENT ({why}): our numbers only"),
    }
    println!(
        "sgemm peak ({0}^3 float32): ours {1} GFLOP/s, theirs {2} GFLOP/s; % of peak below is of {3} GFLOP/s",
        args.peak_size,
        fmt_opt(peaks[0], 1),
        fmt_opt(peaks[1], 1),
        fmt_opt(machine_peak, 1)
    );
    println!(
        "\n{:<18} {:>9} {:>9} {:>9} {:>9} {:>7} {:>8} {:>8} {:>6} {:>6} {:>5} {:>5} {:>8} {:>8}",
        "config", "ours ms", "theirs ms", "ours t/s", "theirs", "ratio", "ours GF", "theirs", "ours%", "thr%", "cpu", "cpu", "ours MiB", "theirs"
    );
    for r in rows {
        let our = &r["ours"];
        let their = &r["theirs"];
        let ms = |v: &Value| num(v, "median_s").map(|s| s * 1e3);
        let pct = |v: &Value| num(v, "peak_fraction").map(|f| f * 100.0);
        println!(
            "{:<18} {:>9} {:>9} {:>9} {:>9} {:>7} {:>8} {:>8} {:>6} {:>6} {:>5} {:>5} {:>8} {:>8}",
            format!("{} {}x{}", r["task"].as_str().unwrap_or("?"), r["seq"], r["batch"]),
            fmt_opt(ms(our), 0),
            fmt_opt(ms(their), 0),
            fmt_opt(num(our, "tokens_per_s"), 0),
            fmt_opt(num(their, "tokens_per_s"), 0),
            fmt_opt(num(r, "ratio_throughput_ours_over_theirs"), 2),
            fmt_opt(num(our, "gflops"), 1),
            fmt_opt(num(their, "gflops"), 1),
            fmt_opt(pct(our), 1),
            fmt_opt(pct(their), 1),
            fmt_opt(num(our, "cores_used"), 2),
            fmt_opt(num(their, "cores_used"), 2),
            fmt_opt(num(our, "peak_rss_mib"), 0),
            fmt_opt(num(their, "peak_rss_mib"), 0),
        );
    }
    println!(
        "\nms: median per step/pass; t/s: tokens per second; ratio: ours / theirs throughput (> 1: ours faster); \
         GF: GFLOP/s (matmuls + attention, step = 3 x forward); cpu: CPU time / wall time; MiB: peak RSS (VmHWM)"
    );
    for r in rows {
        let (ours, theirs) = (&r["ours"], &r["theirs"]);
        if num(ours, "gpu_reserved_mib").is_none() && num(theirs, "gpu_peak_mib").is_none() {
            continue;
        }
        println!(
            "{} {}x{}: GPU memory reserved ours {} MiB, theirs {} MiB (peak allocated {} MiB); kernel launches per step ours {}, theirs {}",
            r["task"].as_str().unwrap_or("?"),
            r["seq"],
            r["batch"],
            fmt_opt(num(ours, "gpu_reserved_mib"), 0),
            fmt_opt(num(theirs, "gpu_reserved_peak_mib"), 0),
            fmt_opt(num(theirs, "gpu_peak_mib"), 0),
            fmt_opt(num(ours, "kernel_launches"), 0),
            fmt_opt(num(theirs, "kernel_launches"), 0),
        );
    }
    for r in rows.iter().filter(|r| r["task"] == "pretrain") {
        if let (Some(masked), Some(full)) = (num(r, "flops"), num(r, "flops_full_vocab_projection")) {
            println!(
                "pretrain {}x{}: vocabulary projection at the {} masked positions only: {:.1} GFLOP per step instead of {:.1} \
                 with it at every position ({:.0}% less work)",
                r["seq"],
                r["batch"],
                r["masked_positions"],
                masked / 1e9,
                full / 1e9,
                100.0 * (1.0 - masked / full)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// `electra bench prepare`

fn decompress(corpora: &Path, names: &[&str], dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for name in names {
        let src = corpora.join(format!("{name}.txt.xz"));
        if !src.is_file() {
            bail!("{} not found (pass --corpora DIR)", src.display());
        }
        let out = Command::new("xz")
            .arg("-dc")
            .arg(&src)
            .output()
            .context("cannot run `xz` to decompress the corpora (install xz-utils)")?;
        if !out.status.success() {
            bail!("xz -dc {} failed: {}", src.display(), String::from_utf8_lossy(&out.stderr).trim());
        }
        let dst = dir.join(format!("{name}.txt"));
        std::fs::write(&dst, &out.stdout).with_context(|| format!("cannot write {}", dst.display()))?;
        files.push(dst);
    }
    Ok(files)
}

fn bench_prepare(args: &BenchArgs) -> Result<()> {
    let threads = threads(args);
    let names: &[&str] = if args.quick { &["moby_dick"] } else { &["brown", "sotu", "moby_dick", "bible_web"] };
    let reps = args.reps.unwrap_or(if args.quick { 1 } else { 3 }).max(1);
    let vocab = if args.vocab.exists() { args.vocab.clone() } else { repo_file(DEFAULT_VOCAB) };
    let tmp = std::env::temp_dir().join(format!("electra-bench-prepare-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let result = (|| -> Result<()> {
        let files = decompress(&args.corpora, names, &tmp)?;
        let bytes: u64 = files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
        eprintln!(
            "bench prepare: {} ({:.1} MB), seq {}, {threads} workers, {reps} runs each",
            names.join(", "),
            bytes as f64 / 1e6,
            args.seq
        );

        let mut our_runs = Vec::new();
        for rep in 0..reps {
            eprintln!("bench prepare: ours, run {}", rep + 1);
            let out = tmp.join(format!("shards-{rep}"));
            let mut config = PrepareConfig::new(files.clone(), &vocab, &out);
            config.max_seq_len = args.seq;
            config.num_workers = threads;
            let t = Instant::now();
            let manifest = electra_tokenizer::prepare(&config, &NoProgress).context("electra prepare failed")?;
            let secs = t.elapsed().as_secs_f64();
            let examples = manifest.train.examples + manifest.validation.examples;
            our_runs.push(json!({"seconds": secs, "bytes": manifest.input_bytes, "examples": examples,
                "mb_per_s": manifest.input_bytes as f64 / 1e6 / secs, "examples_per_s": examples as f64 / secs}));
            std::fs::remove_dir_all(&out).with_context(|| format!("cannot remove {}", out.display()))?;
        }

        let script = repo_file(PREPARE_SCRIPT);
        let mut their_runs = Vec::new();
        let mut their_absent = None;
        if args.no_python {
            their_absent = Some("--no-python".to_string());
        } else {
            for rep in 0..reps {
                eprintln!("bench prepare: Python reference, run {}", rep + 1);
                let mut cmd = Command::new(&args.python);
                cmd.arg(&script)
                    .args(["--processes", &threads.to_string(), "--max-seq-len", &args.seq.to_string()])
                    .arg("--vocab")
                    .arg(&vocab)
                    .args(&files);
                thread_env(&mut cmd, threads);
                let out = cmd.output().with_context(|| format!("cannot start {}", args.python))?;
                if !out.status.success() {
                    let err = String::from_utf8_lossy(&out.stderr);
                    their_absent = Some(format!(
                        "{PREPARE_SCRIPT} failed: {} (needs tokenizers: pip install -r scripts/requirements-bench.txt)",
                        err.lines().last().unwrap_or("").trim()
                    ));
                    break;
                }
                let v: Value = serde_json::from_slice(&out.stdout).context("cannot parse bench_prepare.py output")?;
                their_runs.push(v);
            }
        }
        if let Some(why) = &their_absent {
            eprintln!("bench prepare: Python reference ABSENT: {why}; reporting our numbers only");
        }

        let med = |runs: &[Value], key: &str| {
            let v: Vec<f64> = runs.iter().filter_map(|r| num(r, key)).collect();
            (!v.is_empty()).then(|| median(&v))
        };
        let ours_mbs = med(&our_runs, "mb_per_s");
        let theirs_mbs = med(&their_runs, "mb_per_s");
        let ratio = ours_mbs.zip(theirs_mbs).map(|(a, b)| a / b);
        let their_procs = their_runs.first().and_then(|r| r.get("processes")).and_then(Value::as_u64);
        println!("\n== electra bench prepare: {} ({:.1} MB), seq {}, {threads} threads ==", names.join(", "), bytes as f64 / 1e6, args.seq);
        println!("{:<46} {:>8} {:>8} {:>11} {:>9} {:>8}", "implementation", "s", "MB/s", "examples/s", "examples", "workers");
        let row = |name: &str, runs: &[Value], workers: String| {
            println!(
                "{:<46} {:>8} {:>8} {:>11} {:>9} {:>8}",
                name,
                fmt_opt(med(runs, "seconds"), 2),
                fmt_opt(med(runs, "mb_per_s"), 2),
                fmt_opt(med(runs, "examples_per_s"), 0),
                fmt_opt(med(runs, "examples"), 0),
                workers
            );
        };
        row("ours (electra_tokenizer::prepare, writes shards)", &our_runs, threads.to_string());
        row(
            "Python reference (HF tokenizers, no writing)",
            &their_runs,
            their_procs.map_or_else(|| "-".into(), |p| p.to_string()),
        );
        println!("ratio ours / theirs (MB/s): {}   (medians over {reps} runs)", fmt_opt(ratio, 2));
        if their_procs.is_some_and(|p| p < threads as u64) {
            println!("note: the Python reference splits files between processes, so it used fewer than {threads} here");
        }
        let report = json!({
            "kind": "electra-bench-prepare",
            "created_utc": utc_stamp(),
            "git_commit": git_commit(),
            "machine": {"cpu": cpu_model(), "cores": std::thread::available_parallelism().map(|n| n.get()).ok()},
            "corpora": names, "bytes": bytes, "max_seq_len": args.seq, "threads": threads, "vocab": vocab,
            "ours": {"runs": our_runs, "median_mb_per_s": ours_mbs, "median_examples_per_s": med(&our_runs, "examples_per_s")},
            "theirs": {"runs": their_runs, "absent": their_absent, "median_mb_per_s": theirs_mbs,
                "median_examples_per_s": med(&their_runs, "examples_per_s")},
            "ratio_mb_per_s_ours_over_theirs": ratio,
        });
        let path = write_report(args, "prepare", &report)?;
        println!("\nJSON report: {}", path.display());
        Ok(())
    })();
    if let Err(e) = std::fs::remove_dir_all(&tmp) {
        tracing::warn!(dir = %tmp.display(), "cannot remove the scratch directory: {e}");
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flop_count_of_the_small_step() {
        // Discriminator encoder at 32 x 128: projection 0.27 GFLOP + 12 x 6.98 GFLOP.
        let d = small();
        let enc = encoder_flops(&d, 32, 128);
        assert!((enc / 1e9 - 84.0).abs() < 0.5, "{enc}");
        let (masked, full) = task_flops(Task::Pretrain, 32, 128, 32 * 19).unwrap();
        let full = full.unwrap();
        assert!(masked < full);
        // The full-vocabulary projection at 4,096 positions instead of 608 adds ~83 GFLOP.
        assert!(((full - masked) / 1e9 - 3.0 * 2.0 * (4096.0 - 608.0) * (64.0 + 30522.0) * 128.0 / 1e9).abs() < 1e-6);
    }

    #[test]
    fn synthetic_batches_are_two_segments_without_padding() {
        let b = synthetic_batch(2, 8, 0);
        assert_eq!(&b.input_ids[..1], &[101]);
        assert_eq!(b.input_ids[4], 102);
        assert_eq!(b.input_ids[7], 102);
        assert_eq!(&b.token_type_ids[..8], &[0, 0, 0, 0, 0, 1, 1, 1]);
        assert!(b.input_ids.iter().all(|&id| id == 101 || id == 102 || (999..30522).contains(&id)));
        assert!(b.attention_mask.iter().all(|&m| m == 1));
    }

    #[test]
    fn median_and_stamp() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(utc_stamp().len(), 15);
    }
}
