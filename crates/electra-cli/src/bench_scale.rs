//! `electra bench scale`: data-parallel pre-training, one process against `--world` processes,
//! ours and PyTorch DDP's, in one run on one machine.
//!
//! Ours: the ELECTRA-Small pre-training step of `electra bench` ([`electra_train::train_step_dist`],
//! what `electra pretrain --world N` runs) at `--batch` rows per rank, first in one worker
//! process (no reductions), then in `--world` worker processes joined by a [`Coordinator`] that
//! this process serves on a free loopback port; each process gets `--threads` threads (default
//! 1). Every rank times its steps and, through [`TimedReduce`] (a [`Reduce`] that delegates to
//! the [`Peer`] and adds up the time spent in each reduction), the gradient all-reduce inside
//! each step; after the timed steps the ranks align and time the same all-reduce alone. A step
//! of the N-process run ends when its slowest rank's does, so its time is the maximum over the
//! ranks. Tokens per second: the tokens of every rank's rows over that time.
//!
//! Theirs: `scripts/bench_ddp.py`, the same model and step as `scripts/bench_pytorch.py`
//! (whose code it imports), one process without DDP, then `--world` processes under
//! `DistributedDataParallel` with the gloo backend over loopback.
//!
//! Scaling = tokens/s of N processes over tokens/s of one; efficiency = scaling / N.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use electra_model::{ElectraPreTraining, PreTrainingConfig};
use electra_train::PretrainConfig;
use electra_train::data::HostBatch;
use electra_train::dist::{Coordinator, Hello, Local, PROTOCOL, Peer, Reduce};
use electra_train::optim::ElectraAdam;
use serde_json::{Value, json};

use crate::backend;
use crate::bench::{
    Ad, BenchArgs, Python, SPECIAL, Task, chunk, cpu_model, find_python, fmt_opt, git_commit, median, num, pretrain_config,
    repo_file, run_json, small, sync, synthetic_batch, thread_env, timed, utc_stamp, vm_hwm_kib, write_report,
};

/// The PyTorch DDP side, relative to the repository root.
const DDP_SCRIPT: &str = "scripts/bench_ddp.py";
/// Rows per rank unless `--batch` says otherwise.
const BATCH_PER_RANK: usize = 32;
/// Timed all-reduces of the gradient buffer alone, after the steps.
const ALONE_REPS: usize = 3;

/// The data-parallel options of `electra bench scale`.
#[derive(Debug, Clone, clap::Args)]
pub struct ScaleArgs {
    /// scale: the number of processes measured against one.
    #[arg(long, default_value_t = 2)]
    pub world: usize,
    /// scale: seconds a rank waits for the coordinator (joining, and each answer).
    #[arg(long, default_value_t = 600)]
    pub scale_timeout: u64,
    /// Internal (scale worker): this process's rank.
    #[arg(long, default_value_t = 0, hide = true)]
    pub rank: usize,
    /// Internal (scale worker): the coordinator's address.
    #[arg(long, hide = true)]
    pub coordinator: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// The timing wrapper.

/// Time and volume of the reductions so far.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct ReduceStats {
    /// `sum_f32` calls (one per step: the gradients).
    pub f32_calls: u64,
    /// Values summed by `sum_f32`.
    pub f32_values: u64,
    /// Seconds in `sum_f32`.
    pub f32_s: f64,
    /// The longest `sum_f32` buffer (the gradients and their presence flags).
    pub largest_f32: usize,
    /// `sum_f64` calls (loss denominators, losses and counts).
    pub f64_calls: u64,
    /// Seconds in `sum_f64`.
    pub f64_s: f64,
}

impl ReduceStats {
    /// What happened between `earlier` and `self` (`largest_f32` stays the overall one).
    pub(crate) fn since(&self, earlier: &Self) -> Self {
        Self {
            f32_calls: self.f32_calls - earlier.f32_calls,
            f32_values: self.f32_values - earlier.f32_values,
            f32_s: self.f32_s - earlier.f32_s,
            largest_f32: self.largest_f32,
            f64_calls: self.f64_calls - earlier.f64_calls,
            f64_s: self.f64_s - earlier.f64_s,
        }
    }
}

/// A [`Reduce`] that delegates to another and adds up the time spent in each kind of
/// reduction. The time of a reduction includes waiting for the other ranks to arrive.
pub(crate) struct TimedReduce<'a> {
    inner: &'a dyn Reduce,
    stats: Mutex<ReduceStats>,
}

impl<'a> TimedReduce<'a> {
    pub(crate) fn new(inner: &'a dyn Reduce) -> Self {
        Self { inner, stats: Mutex::new(ReduceStats::default()) }
    }

    /// The totals so far.
    pub(crate) fn stats(&self) -> ReduceStats {
        *self.stats.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn record(&self, f: impl FnOnce(&mut ReduceStats)) {
        f(&mut self.stats.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    }
}

impl Reduce for TimedReduce<'_> {
    fn world(&self) -> usize {
        self.inner.world()
    }
    fn rank(&self) -> usize {
        self.inner.rank()
    }
    fn sum_f32(&self, values: &mut [f32]) -> electra_train::Result<()> {
        let t = Instant::now();
        let result = self.inner.sum_f32(values);
        let secs = t.elapsed().as_secs_f64();
        self.record(|s| {
            s.f32_calls += 1;
            s.f32_values += values.len() as u64;
            s.f32_s += secs;
            s.largest_f32 = s.largest_f32.max(values.len());
        });
        result
    }
    fn sum_f64(&self, values: &mut [f64]) -> electra_train::Result<()> {
        let t = Instant::now();
        let result = self.inner.sum_f64(values);
        let secs = t.elapsed().as_secs_f64();
        self.record(|s| {
            s.f64_calls += 1;
            s.f64_s += secs;
        });
        result
    }
}

// ---------------------------------------------------------------------------------------------
// One rank (a worker process).

/// The hello of a bench rank: the job is the config's digest.
fn hello(config: &PretrainConfig, rank: usize, world: usize) -> Hello {
    let digest = electra_train::dist::digest(serde_json::to_string(config).unwrap_or_default().as_bytes());
    Hello {
        protocol: PROTOCOL,
        job: format!("bench-scale-{digest}"),
        world,
        rank,
        fingerprints: BTreeMap::from([("config".to_string(), digest)]),
    }
}

/// Rows `rows` of `batch`.
fn rows_of(batch: &HostBatch, rows: std::ops::Range<usize>) -> HostBatch {
    let cells = rows.start * batch.seq..rows.end * batch.seq;
    HostBatch {
        input_ids: batch.input_ids[cells.clone()].to_vec(),
        token_type_ids: batch.token_type_ids[cells.clone()].to_vec(),
        attention_mask: batch.attention_mask[cells].to_vec(),
        batch: rows.len(),
        seq: batch.seq,
    }
}

/// One rank of `--world` (one process without reductions when the world is 1): warm-up and
/// timed pre-training steps on this rank's rows of a synthetic global batch, then (world > 1)
/// the gradient all-reduce alone.
pub(crate) fn worker(task: Task, args: &BenchArgs) -> Result<Value> {
    if task != Task::Pretrain {
        bail!("`bench scale` workers run pre-training steps (--worker pretrain)");
    }
    let s = &args.scale;
    let world = s.world.max(1);
    if s.rank >= world {
        bail!("--rank {} is not below --world {world}", s.rank);
    }
    if world > 1 && s.coordinator.is_none() {
        bail!("--world {world} needs --coordinator");
    }
    let batch = args.batch.first().copied().unwrap_or(BATCH_PER_RANK);
    let (seq, warmup, reps) = (args.seq, args.warmup.unwrap_or(1), args.reps.unwrap_or(3).max(1));
    let device = backend::device();
    let config = pretrain_config(batch * world, seq, chunk(args));
    let networks = PreTrainingConfig::new(small(), config.generator_size)?;
    let mut model = Some(ElectraPreTraining::<Ad>::init(&networks, config.seed, &device)?);
    let mut optim = ElectraAdam::from_config(&config).init::<Ad, ElectraPreTraining<Ad>>();
    let masker = electra_train::masker(&config, SPECIAL, None)?;
    let peer = match s.coordinator.as_deref() {
        Some(address) => {
            let wait = Duration::from_secs(s.scale_timeout);
            Some(Peer::connect(address, &hello(&config, s.rank, world), wait, wait)?)
        }
        None => None,
    };
    let inner: &dyn Reduce = match &peer {
        Some(p) => p,
        None => &Local,
    };
    let dist = TimedReduce::new(inner);
    let global = synthetic_batch(batch * world, seq, 0);
    let host = rows_of(&global, dist.rows(global.batch));
    let mut per_step = Vec::new();
    let (mut step, mut predictions) = (0u64, 0usize);
    let (times, cores) = timed(warmup, reps, || {
        let before = dist.stats();
        let m = model.take().context("the model was lost by a failed step")?;
        let (next, outcome) =
            electra_train::train_step_dist(m, &mut optim, &config, &masker, step, &dist, |_| Ok(host.clone()))?;
        sync(&device)?;
        model = Some(next);
        predictions = outcome.predictions();
        per_step.push(dist.stats().since(&before));
        step += 1;
        Ok(())
    })?;
    let steps = &per_step[warmup.min(per_step.len())..];
    let floats = dist.stats().largest_f32;
    let mut alone = Vec::new();
    if let Some(p) = &peer {
        // Align the ranks (a one-value reduction returns when every rank has arrived), then the
        // gradient-sized all-reduce without a step around it.
        p.sum_f64(&mut [0.0])?;
        let mut buffer = vec![1.0f32; floats];
        for _ in 0..ALONE_REPS {
            let t = Instant::now();
            p.sum_f32(&mut buffer)?;
            alone.push(t.elapsed().as_secs_f64());
        }
        p.finish()?;
    }
    Ok(json!({
        "task": "scale-rank", "rank": s.rank, "world": world, "batch": batch, "global_batch": batch * world,
        "seq": seq, "warmup": warmup, "reps": reps, "threads": rayon::current_num_threads(),
        "times_s": times, "median_s": median(&times), "cores_used": cores, "vm_hwm_kib": vm_hwm_kib(),
        "masked_positions": predictions,
        "reduced_floats": floats,
        "grad_reduce_s": steps.iter().map(|r| r.f32_s).collect::<Vec<_>>(),
        "small_reduce_s": steps.iter().map(|r| r.f64_s).collect::<Vec<_>>(),
        "small_reductions_per_step": steps.first().map(|r| r.f64_calls),
        "allreduce_alone_s": alone,
    }))
}

// ---------------------------------------------------------------------------------------------
// The summary: the same arithmetic for both sides.

/// The values under `key` of a measurement.
fn series(v: &Value, key: &str) -> Vec<f64> {
    v.get(key).and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_f64).collect()).unwrap_or_default()
}

/// The median over steps of `fold` across the ranks' `key` series (steps the ranks share).
fn across_ranks(ranks: &[Value], key: &str, fold: fn(f64, f64) -> f64) -> Option<f64> {
    let all: Vec<Vec<f64>> = ranks.iter().map(|r| series(r, key)).collect();
    let steps = all.iter().map(Vec::len).min().filter(|&n| n > 0)?;
    let per_step: Vec<f64> = (0..steps).map(|i| all.iter().map(|s| s[i]).reduce(fold).unwrap_or(f64::NAN)).collect();
    Some(median(&per_step))
}

/// One side's scaling: one process (`one`) against the ranks of the data-parallel run.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub(crate) struct Scaling {
    pub world: usize,
    /// Median step of one process, seconds.
    pub one_step_s: Option<f64>,
    /// Median over steps of the slowest rank's step time, seconds.
    pub many_step_s: Option<f64>,
    pub one_tokens_per_s: Option<f64>,
    pub many_tokens_per_s: Option<f64>,
    /// many / one tokens per second.
    pub scaling: Option<f64>,
    /// scaling / world.
    pub efficiency: Option<f64>,
    /// The gradient all-reduce inside a step on the rank that arrived last (transport and sum),
    /// median over steps, seconds.
    pub reduce_last_s: Option<f64>,
    /// The same on the rank that arrived first (it also waits for the slower rank).
    pub reduce_first_s: Option<f64>,
    /// The small reductions of a step (loss denominators, losses, counts) on the rank that
    /// arrived last, seconds.
    pub small_reduce_s: Option<f64>,
    /// The gradient-sized all-reduce alone, ranks aligned, seconds (slowest rank, median).
    pub alone_s: Option<f64>,
    /// Floats in the gradient all-reduce (ours: the gradients and a presence flag per parameter).
    pub reduced_floats: Option<f64>,
}

impl Scaling {
    /// `tokens_per_rank`: rows per rank x sequence length.
    pub(crate) fn of(one: &Value, ranks: &[Value], tokens_per_rank: usize) -> Self {
        let world = ranks.len();
        let one_step_s = Some(median(&series(one, "times_s"))).filter(|t| t.is_finite() && *t > 0.0);
        let many_step_s = across_ranks(ranks, "times_s", f64::max).filter(|t| t.is_finite() && *t > 0.0);
        let one_tokens_per_s = one_step_s.map(|t| tokens_per_rank as f64 / t);
        let many_tokens_per_s = many_step_s.map(|t| (world * tokens_per_rank) as f64 / t);
        let scaling = one_tokens_per_s.zip(many_tokens_per_s).map(|(a, b)| b / a);
        Self {
            world,
            one_step_s,
            many_step_s,
            one_tokens_per_s,
            many_tokens_per_s,
            scaling,
            efficiency: scaling.map(|s| s / world.max(1) as f64),
            reduce_last_s: across_ranks(ranks, "grad_reduce_s", f64::min),
            reduce_first_s: across_ranks(ranks, "grad_reduce_s", f64::max),
            small_reduce_s: across_ranks(ranks, "small_reduce_s", f64::min),
            alone_s: across_ranks(ranks, "allreduce_alone_s", f64::max),
            reduced_floats: ranks.iter().filter_map(|r| num(r, "reduced_floats")).reduce(f64::max),
        }
    }
}

/// `a / b` when both are there.
fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    a.zip(b).filter(|(_, b)| *b > 0.0).map(|(a, b)| a / b)
}

// ---------------------------------------------------------------------------------------------
// Driver.

fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

struct Plan {
    batch: usize,
    warmup: usize,
    reps: usize,
    threads: usize,
    world: usize,
}

/// The worker command of rank `rank` (world 1 without a coordinator: one process).
fn our_worker(args: &BenchArgs, plan: &Plan, world: usize, rank: usize, coordinator: Option<&str>) -> Result<Command> {
    let mut cmd = Command::new(crate::bench::our_exe()?);
    cmd.args(["bench", "scale", "--worker", "pretrain"])
        .args(["--batch", &plan.batch.to_string(), "--seq", &args.seq.to_string()])
        .args(["--warmup", &plan.warmup.to_string(), "--reps", &plan.reps.to_string()])
        .args(["--chunk", &chunk(args).to_string(), "--world", &world.to_string(), "--rank", &rank.to_string()])
        .args(["--scale-timeout", &args.scale.scale_timeout.to_string()])
        .env("RUST_LOG", "warn");
    if let Some(address) = coordinator {
        cmd.args(["--coordinator", address]);
    }
    thread_env(&mut cmd, plan.threads);
    Ok(cmd)
}

/// Our `world`-process run: a coordinator on a free loopback port in this process, one worker
/// process per rank. Returns each rank's measurement, in rank order.
fn ours(args: &BenchArgs, plan: &Plan, world: usize) -> Result<Vec<Value>> {
    if world == 1 {
        return Ok(vec![run_json(our_worker(args, plan, 1, 0, None)?, "our 1-process worker")?]);
    }
    let coordinator = Coordinator::bind("127.0.0.1:0", world)?;
    let address = coordinator.local_addr()?.to_string();
    let join_wait = Duration::from_secs(args.scale.scale_timeout);
    let server = std::thread::spawn(move || coordinator.serve(join_wait));
    let commands: Vec<Command> =
        (0..world).map(|rank| our_worker(args, plan, world, rank, Some(&address))).collect::<Result<_>>()?;
    let results: Vec<Result<Value>> = std::thread::scope(|s| {
        let handles: Vec<_> = commands
            .into_iter()
            .enumerate()
            .map(|(rank, cmd)| s.spawn(move || run_json(cmd, &format!("our rank {rank}"))))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(anyhow!("a rank's thread panicked")))).collect()
    });
    let served = server.join().map_err(|_| anyhow!("the coordinator's thread panicked"))?;
    let (values, errors): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
    if !errors.is_empty() {
        let mut why: Vec<String> = errors.into_iter().filter_map(Result::err).map(|e| format!("{e:#}")).collect();
        if let Err(e) = served {
            why.push(format!("coordinator: {e}"));
        }
        bail!("{}", why.join("; "));
    }
    served.context("the coordinator failed")?;
    Ok(values.into_iter().filter_map(Result::ok).collect())
}

/// PyTorch: one process without DDP, then `world` processes under DDP (gloo, loopback).
fn theirs(args: &BenchArgs, plan: &Plan) -> Result<Value> {
    let script = repo_file(DDP_SCRIPT);
    if !script.is_file() {
        bail!("{DDP_SCRIPT} not found");
    }
    let mut cmd = Command::new(&args.python);
    cmd.arg(&script)
        .args(["--world", &plan.world.to_string(), "--threads", &plan.threads.to_string()])
        .args(["--batch", &plan.batch.to_string(), "--seq", &args.seq.to_string()])
        .args(["--warmup", &plan.warmup.to_string(), "--reps", &plan.reps.to_string()])
        .args(["--attn", &args.torch_attn, "--alone-reps", &ALONE_REPS.to_string()])
        // The sampling algorithm of our side, as `electra bench` chooses it.
        .args(["--sampling", if chunk(args) > 0 { "multinomial" } else { "gumbel" }]);
    thread_env(&mut cmd, plan.threads);
    run_json(cmd, "the PyTorch DDP script")
}

/// Runs `electra bench scale`.
pub(crate) fn bench_scale(args: &BenchArgs) -> Result<()> {
    if args.seq < 5 || args.seq > 512 {
        bail!("--seq must be in [5, 512]");
    }
    if args.batch.len() > 1 {
        bail!("bench scale takes one --batch (rows per rank)");
    }
    let world = args.scale.world;
    if world < 2 {
        bail!("--world must be at least 2 (it is measured against one process)");
    }
    let (w, r) = if args.quick { (1, 2) } else { (2, 5) };
    let plan = Plan {
        batch: args.batch.first().copied().unwrap_or(BATCH_PER_RANK),
        warmup: args.warmup.unwrap_or(w),
        reps: args.reps.unwrap_or(r).max(1),
        threads: args.threads.unwrap_or(1).max(1),
        world,
    };
    let load_start = load_average();
    let python = find_python(args, plan.threads);
    eprintln!(
        "bench scale: ELECTRA-Small pre-training, seq {}, batch {} per rank, 1 and {world} processes x {} threads, {}+{} steps, backend {}",
        args.seq,
        plan.batch,
        plan.threads,
        plan.warmup,
        plan.reps,
        backend::NAME
    );
    if let Some(l) = load_start {
        eprintln!("bench scale: load average {:.2} {:.2} {:.2}", l[0], l[1], l[2]);
    }
    let mut failures = Vec::new();
    let mut run = |label: &str, f: &dyn Fn() -> Result<Vec<Value>>| -> Vec<Value> {
        eprintln!("bench scale: {label}");
        f().unwrap_or_else(|e| {
            eprintln!("bench scale: {label} FAILED: {e:#}");
            failures.push(format!("{label}: {e:#}"));
            Vec::new()
        })
    };
    let our_one = run("ours, 1 process", &|| ours(args, &plan, 1));
    let our_many = run(&format!("ours, {world} processes"), &|| ours(args, &plan, world));
    let (their, their_absent) = match &python {
        Ok(_) => {
            eprintln!("bench scale: PyTorch, 1 process, then {world} processes under DDP (gloo)");
            match theirs(args, &plan) {
                Ok(v) => (Some(v), None),
                Err(e) => {
                    eprintln!("bench scale: PyTorch FAILED: {e:#}");
                    (None, Some(format!("{e:#}")))
                }
            }
        }
        Err(why) => {
            eprintln!("bench scale: PyTorch side ABSENT: {why}; reporting our numbers only");
            (None, Some(why.clone()))
        }
    };
    let load_end = load_average();

    let tokens = plan.batch * args.seq;
    let our_scaling = Scaling::of(our_one.first().unwrap_or(&Value::Null), &our_many, tokens);
    let their_ranks: Vec<Value> =
        their.as_ref().and_then(|t| t.get("ranks")).and_then(Value::as_array).cloned().unwrap_or_default();
    let their_scaling = their.as_ref().map(|t| Scaling::of(&t["one"], &their_ranks, tokens));

    print_table(args, &plan, &our_scaling, their_scaling.as_ref(), &python, their.as_ref(), [load_start, load_end]);
    let report = json!({
        "kind": "electra-bench-scale",
        "created_utc": utc_stamp(),
        "git_commit": git_commit(),
        "machine": {"cpu": cpu_model(), "cores": std::thread::available_parallelism().map(|n| n.get()).ok()},
        "load_average": {"start": load_start, "end": load_end},
        "backend": backend::NAME,
        "model": "ELECTRA-Small pre-training (generator 1/4), vocabulary 30522",
        "seq": args.seq, "batch_per_rank": plan.batch, "world": world, "threads_per_process": plan.threads,
        "warmup": plan.warmup, "reps": plan.reps, "chunk": chunk(args), "quick": args.quick,
        "pytorch": match &python { Ok(p) => p.check.clone(), Err(why) => json!({"absent": why}) },
        "ours": {"one": our_one.first(), "ranks": our_many, "summary": our_scaling},
        "theirs": {"one": their.as_ref().map(|t| &t["one"]), "ranks": their_ranks, "summary": their_scaling,
            "params": their.as_ref().and_then(|t| t.get("params")), "absent": their_absent},
        "ratios_ours_over_theirs": {
            "one_tokens_per_s": ratio(our_scaling.one_tokens_per_s, their_scaling.as_ref().and_then(|s| s.one_tokens_per_s)),
            "many_tokens_per_s": ratio(our_scaling.many_tokens_per_s, their_scaling.as_ref().and_then(|s| s.many_tokens_per_s)),
            "efficiency": ratio(our_scaling.efficiency, their_scaling.as_ref().and_then(|s| s.efficiency)),
        },
        "failures": failures,
    });
    let path = write_report(args, "scale", &report)?;
    println!("\nJSON report: {}", path.display());
    if !failures.is_empty() {
        bail!("{} of our measurements failed: {}", failures.len(), failures.join("; "));
    }
    Ok(())
}

fn ms(v: Option<f64>) -> String {
    fmt_opt(v.map(|s| s * 1e3), 0)
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{:.1}%", 100.0 * x))
}

fn print_table(
    args: &BenchArgs,
    plan: &Plan,
    ours: &Scaling,
    theirs: Option<&Scaling>,
    python: &std::result::Result<Python, String>,
    their_raw: Option<&Value>,
    load: [Option<[f64; 3]>; 2],
) {
    let world = plan.world;
    let t = |f: fn(&Scaling) -> Option<f64>| theirs.and_then(f);
    println!(
        "\n== electra bench scale: ELECTRA-Small pre-training, seq {}, batch {} per rank, {} thread(s) per process, {} backend ==",
        args.seq,
        plan.batch,
        plan.threads,
        backend::NAME
    );
    match python {
        Ok(p) => println!(
            "theirs: PyTorch {} + transformers {}, attention {}, DistributedDataParallel over gloo (loopback)",
            p.check["torch"].as_str().unwrap_or("?"),
            p.check["transformers"].as_str().unwrap_or("?"),
            args.torch_attn
        ),
        Err(why) => println!("theirs: PyTorch ABSENT ({why}): our numbers only"),
    }
    let fmt_load = |l: Option<[f64; 3]>| l.map_or_else(|| "?".into(), |l| format!("{:.2}", l[0]));
    println!(
        "{} x {}; load average (1 min) {} at the start, {} at the end; {}+{} steps per run",
        cpu_model(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        fmt_load(load[0]),
        fmt_load(load[1]),
        plan.warmup,
        plan.reps
    );
    println!(
        "\n{:<26} {:>9} {:>9} {:>10} {:>10} {:>7}",
        "setup", "ours ms", "theirs ms", "ours t/s", "theirs t/s", "ratio"
    );
    let row = |name: String, ours_s: Option<f64>, theirs_s: Option<f64>, ours_t: Option<f64>, theirs_t: Option<f64>| {
        println!(
            "{:<26} {:>9} {:>9} {:>10} {:>10} {:>7}",
            name,
            ms(ours_s),
            ms(theirs_s),
            fmt_opt(ours_t, 0),
            fmt_opt(theirs_t, 0),
            fmt_opt(ratio(ours_t, theirs_t), 2)
        );
    };
    row(
        format!("1 process x {}", plan.threads),
        ours.one_step_s,
        t(|s| s.one_step_s),
        ours.one_tokens_per_s,
        t(|s| s.one_tokens_per_s),
    );
    row(
        format!("{world} processes x {}", plan.threads),
        ours.many_step_s,
        t(|s| s.many_step_s),
        ours.many_tokens_per_s,
        t(|s| s.many_tokens_per_s),
    );
    println!(
        "{:<26} {:>9} {:>9} {:>10} {:>10} {:>7}",
        format!("scaling ({world} / 1)"),
        fmt_opt(ours.scaling, 2),
        fmt_opt(t(|s| s.scaling), 2),
        "",
        "",
        fmt_opt(ratio(ours.scaling, t(|s| s.scaling)), 2)
    );
    println!(
        "{:<26} {:>9} {:>9} {:>10} {:>10} {:>7}",
        "efficiency (scaling / N)",
        pct(ours.efficiency),
        pct(t(|s| s.efficiency)),
        "",
        "",
        fmt_opt(ratio(ours.efficiency, t(|s| s.efficiency)), 2)
    );
    println!(
        "\nall-reduce of the gradients per step (ours {} floats, the gradients and a presence flag per parameter; theirs {} parameters), ms:",
        fmt_opt(ours.reduced_floats, 0),
        fmt_opt(their_raw.and_then(|v| num(v, "params")), 0)
    );
    println!("{:<44} {:>9} {:>9}", "", "ours", "theirs");
    println!("{:<44} {:>9} {:>9}", "in the step, rank that arrived last", ms(ours.reduce_last_s), "-");
    println!("{:<44} {:>9} {:>9}", "in the step, rank that arrived first (waits)", ms(ours.reduce_first_s), "-");
    println!("{:<44} {:>9} {:>9}", "small reductions in the step (counts, losses)", ms(ours.small_reduce_s), "-");
    println!("{:<44} {:>9} {:>9}", "alone, ranks aligned", ms(ours.alone_s), ms(t(|s| s.alone_s)));
    println!(
        "{:<44} {:>9} {:>9}",
        format!("step time, {world} processes"),
        ms(ours.many_step_s),
        ms(t(|s| s.many_step_s))
    );
    println!(
        "{:<44} {:>9} {:>9}",
        "all-reduce / step (in the step; theirs alone)",
        pct(ratio(ours.reduce_last_s, ours.many_step_s)),
        pct(ratio(t(|s| s.alone_s), t(|s| s.many_step_s)))
    );
    println!(
        "{:<44} {:>9} {:>9}",
        format!("step time {world} processes - 1 process"),
        ms(ours.many_step_s.zip(ours.one_step_s).map(|(a, b)| a - b)),
        ms(t(|s| s.many_step_s.zip(s.one_step_s).map(|(a, b)| a - b)))
    );
    println!(
        "\nms: median per step (N processes: the slowest rank's step); t/s: tokens per second of all ranks; ratio: ours / theirs; \
         scaling: N-process over 1-process tokens/s. DDP overlaps its all-reduce with the backward, so only its time alone is measured; \
         ours runs after the backward (the rank that arrived last measures transport and sum, the first also waits for it)."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reduction that takes a known time.
    struct Slow(Duration);

    impl Reduce for Slow {
        fn world(&self) -> usize {
            2
        }
        fn rank(&self) -> usize {
            1
        }
        fn sum_f32(&self, values: &mut [f32]) -> electra_train::Result<()> {
            std::thread::sleep(self.0);
            values.iter_mut().for_each(|v| *v *= 2.0);
            Ok(())
        }
        fn sum_f64(&self, values: &mut [f64]) -> electra_train::Result<()> {
            std::thread::sleep(self.0);
            values.iter_mut().for_each(|v| *v *= 2.0);
            Ok(())
        }
    }

    #[test]
    fn the_wrapper_delegates_and_adds_up_the_time_of_each_kind() {
        let inner = Slow(Duration::from_millis(20));
        let timed = TimedReduce::new(&inner);
        assert_eq!((timed.world(), timed.rank(), timed.rows(10)), (2, 1, 5..10));
        let mut a = vec![1.0f32; 7];
        timed.sum_f32(&mut a).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a, vec![2.0; 7], "not delegated");
        let first = timed.stats();
        timed.sum_f32(&mut [1.0f32; 3]).unwrap_or_else(|e| panic!("{e}"));
        let mut c = [1.0f64, 2.0];
        timed.sum_f64(&mut c).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c, [2.0, 4.0]);
        let s = timed.stats();
        assert_eq!((s.f32_calls, s.f32_values, s.largest_f32, s.f64_calls), (2, 10, 7, 1));
        assert!(s.f32_s >= 0.040 && s.f32_s < 1.0, "{}", s.f32_s);
        assert!(s.f64_s >= 0.020 && s.f64_s < 1.0, "{}", s.f64_s);
        let d = s.since(&first);
        assert_eq!((d.f32_calls, d.f32_values, d.largest_f32, d.f64_calls), (1, 3, 7, 1));
        assert!(d.f32_s >= 0.020 && d.f32_s < s.f32_s);
    }

    #[test]
    fn the_wrapper_times_a_failed_reduction_and_passes_the_error_on() {
        struct Fails;
        impl Reduce for Fails {
            fn world(&self) -> usize {
                2
            }
            fn rank(&self) -> usize {
                0
            }
            fn sum_f32(&self, _: &mut [f32]) -> electra_train::Result<()> {
                Err(electra_train::Error::Collective("lost rank 1".into()))
            }
            fn sum_f64(&self, _: &mut [f64]) -> electra_train::Result<()> {
                Ok(())
            }
        }
        let timed = TimedReduce::new(&Fails);
        let err = timed.sum_f32(&mut [0.0; 4]).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("lost rank 1"), "{err}");
        assert_eq!(timed.stats().f32_calls, 1);
    }

    #[test]
    fn local_reductions_through_the_wrapper_are_the_identity() {
        let timed = TimedReduce::new(&Local);
        let mut v = [1.5f32, -2.0];
        timed.sum_f32(&mut v).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v, [1.5, -2.0]);
        assert_eq!(timed.rows(32), 0..32);
    }

    fn rank(times: &[f64], grad: &[f64], alone: &[f64]) -> Value {
        json!({"times_s": times, "grad_reduce_s": grad, "small_reduce_s": [0.001, 0.001, 0.001], "allreduce_alone_s": alone})
    }

    #[test]
    fn scaling_takes_the_slowest_rank_per_step_and_the_tokens_of_every_rank() {
        let one = json!({"times_s": [4.0, 4.2, 3.9]});
        let ranks = [rank(&[4.1, 4.6, 4.0], &[0.1, 0.5, 0.1], &[0.09, 0.08]), rank(&[4.3, 4.4, 4.1], &[0.3, 0.1, 0.2], &[0.1, 0.07])];
        let s = Scaling::of(&one, &ranks, 32 * 128);
        assert_eq!(s.world, 2);
        assert_eq!(s.one_step_s, Some(4.0));
        // Per step max: 4.3, 4.6, 4.1 -> median 4.3.
        assert_eq!(s.many_step_s, Some(4.3));
        let (one_t, many_t) = (4096.0 / 4.0, 2.0 * 4096.0 / 4.3);
        assert!((s.one_tokens_per_s.unwrap_or(0.0) - one_t).abs() < 1e-9);
        assert!((s.many_tokens_per_s.unwrap_or(0.0) - many_t).abs() < 1e-9);
        assert!((s.scaling.unwrap_or(0.0) - many_t / one_t).abs() < 1e-12);
        assert!((s.efficiency.unwrap_or(0.0) - many_t / one_t / 2.0).abs() < 1e-12);
        // In-step reductions: min per step 0.1, 0.1, 0.1; max 0.3, 0.5, 0.2.
        assert_eq!(s.reduce_last_s, Some(0.1));
        assert_eq!(s.reduce_first_s, Some(0.3));
        // Alone: max per repetition 0.1, 0.08 -> median 0.09.
        assert!((s.alone_s.unwrap_or(0.0) - 0.09).abs() < 1e-12);
        assert_eq!(s.small_reduce_s, Some(0.001));
    }

    #[test]
    fn scaling_of_missing_measurements_is_absent_not_zero() {
        let s = Scaling::of(&Value::Null, &[], 4096);
        assert_eq!((s.one_step_s, s.many_step_s, s.scaling, s.efficiency, s.alone_s), (None, None, None, None, None));
        // PyTorch's ranks report no in-step reduction: absent, while the rest is computed.
        let theirs = [json!({"times_s": [2.0], "allreduce_alone_s": [0.05]}), json!({"times_s": [2.5], "allreduce_alone_s": [0.06]})];
        let s = Scaling::of(&json!({"times_s": [2.0]}), &theirs, 100);
        assert_eq!((s.reduce_last_s, s.many_step_s, s.alone_s), (None, Some(2.5), Some(0.06)));
        assert_eq!(s.scaling, Some(1.6));
        assert_eq!(ratio(Some(1.0), None), None);
        assert_eq!(ratio(Some(1.0), Some(0.0)), None);
        assert_eq!(ratio(Some(3.0), Some(2.0)), Some(1.5));
    }

    #[test]
    fn a_rank_takes_its_block_of_the_global_rows() {
        let global = synthetic_batch(4, 6, 0);
        let part = rows_of(&global, 2..4);
        assert_eq!((part.batch, part.seq), (2, 6));
        assert_eq!(part.input_ids, global.input_ids[12..24].to_vec());
        assert_eq!(part.token_type_ids, global.token_type_ids[12..24].to_vec());
        assert_eq!(part.attention_mask.len(), 12);
    }
}
