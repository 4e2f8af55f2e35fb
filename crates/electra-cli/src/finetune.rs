//! `electra finetune` (fine-tune a pre-trained encoder on a labelled task, over several seeds)
//! and `electra classify` (a fine-tuned sequence model on text, JSON Lines out).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use electra_finetune::data::{
    GenericOptions, GlueTask, TextTask, load_conll, load_generic_files, load_generic_single, load_glue, read_squad,
};
use electra_finetune::metrics;
use electra_finetune::plot::CHART_FILES;
use electra_finetune::run::{EpochRecord, Outputs, RunProgress, Scores};
use electra_finetune::task::{TaskData, TaskOptions, argmax};
use electra_finetune::{DepthRule, Feature, FinetuneConfig, HeadKind, HeadStyle, RunResult, Schedule, TaskModel};
use electra_model::{ElectraModel, hf};
use electra_tokenizer::{Cancel, WordPieceTokenizer};
use electra_train::run_dir::{self, OutMode};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::backend::{self, AutodiffBackend, Backend};
use crate::infer::Common;
use crate::input::{JsonLines, read_lines};

/// How the encoder is initialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Init {
    /// The weights in `--model` (pre-trained).
    Pretrained,
    /// The same architecture from random initialisation (the no-pre-training baseline).
    Random,
}

/// The form of a sequence head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Head {
    /// `[CLS]` -> dropout -> linear (the reference).
    Linear,
    /// HuggingFace's ElectraClassificationHead (dense -> GELU -> linear).
    Hf,
}

/// Where the head sits in layer-wise decay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Depth {
    /// Head at depth L+2 as the reference code (the top layer gets decay^2).
    Reference,
    /// Head at depth L+1 (the top layer gets decay^1).
    Contiguous,
}

/// The shape of the learning-rate schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScheduleArg {
    /// The reference's: the warm-up ramp multiplied into the linear decay (as pre-training).
    Reference,
    /// Linear warm-up to the peak, then linear decay to 0.
    WarmupThenDecay,
}

/// The format of `--train`/`--dev` files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// TSV/CSV/JSONL with `text`, optional `text_b`, `label`.
    Text,
    /// CoNLL-2003-style token files: token classification, entity F1.
    Conll,
    /// SQuAD v1.1/v2.0 JSON: span extraction, exact match and F1.
    Squad,
}

/// `electra finetune`.
#[derive(Debug, clap::Args)]
pub struct FinetuneArgs {
    /// The pre-trained model directory (a pre-training run's `discriminator/`, or any ELECTRA or
    /// BERT model in HuggingFace layout, with vocab.txt or tokenizer.json).
    #[arg(long)]
    pub model: PathBuf,
    /// A GLUE task (cola, sst-2, mrpc, sts-b, qqp, mnli, qnli, rte, wnli), read from `--data DIR`.
    #[arg(long)]
    pub task: Option<String>,
    /// The GLUE task directory (with --task), or ONE labelled file holding every split in a
    /// `split` column (TSV/CSV/JSONL, optionally .xz).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Training file (TSV/CSV/JSONL with `text`, optional `text_b`, `label`).
    #[arg(long, conflicts_with = "task")]
    pub train: Option<PathBuf>,
    /// Dev file (same format as --train).
    #[arg(long, requires = "train")]
    pub dev: Option<PathBuf>,
    /// Labelled test file, scored with the best dev epoch's model.
    #[arg(long, requires = "train")]
    pub test: Option<PathBuf>,
    /// Labels are real numbers (regression) in generic files.
    #[arg(long)]
    pub regression: bool,
    /// The kind of --train/--dev files: labelled text, CoNLL token files (tagging) or SQuAD
    /// JSON (v1.1 or v2.0: extractive QA).
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// SQuAD: tokens between the starts of consecutive context windows.
    #[arg(long, default_value_t = 128)]
    pub doc_stride: usize,
    /// SQuAD: question tokens kept.
    #[arg(long, default_value_t = 64)]
    pub max_query_len: usize,
    /// SQuAD: longest answer in tokens.
    #[arg(long, default_value_t = 30)]
    pub max_answer_len: usize,
    /// SQuAD 2.0: answer nothing when the null score exceeds the best span's by more than this.
    #[arg(long, default_value_t = 0.0)]
    pub null_threshold: f32,
    /// Output directory: `seed-N/` per seed (model in HuggingFace layout, metrics),
    /// `summary.json` and the chart (`curves.png`, `curves.svg`). A directory that already holds
    /// a fine-tuning run is refused unless `--overwrite` is given.
    #[arg(long, default_value = "runs/finetune")]
    pub out: PathBuf,
    /// Delete the run already in `--out` (its `summary.json`, chart and `seed-*`; nothing else)
    /// before starting.
    #[arg(long)]
    pub overwrite: bool,
    /// Encoder initialisation.
    #[arg(long, value_enum, default_value = "pretrained")]
    pub init: Init,
    /// Number of seeds (the report gives each and the median, as the paper does).
    #[arg(long, default_value_t = 1)]
    pub seeds: usize,
    /// First seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Epochs.
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Peak learning rate (paper: 3e-4 Small, 1e-4 Base, 5e-5 Large).
    #[arg(long, default_value_t = 3e-4)]
    pub lr: f64,
    /// Layer-wise learning-rate decay (paper: 0.8; 0.9 for Large; 1 = off).
    #[arg(long, default_value_t = 0.8)]
    pub layer_decay: f64,
    /// Depth numbering of layer-wise decay.
    #[arg(long, value_enum, default_value = "reference")]
    pub depth_rule: Depth,
    /// Weight decay (paper 0, reference code 0.01).
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Warm-up fraction of the steps.
    #[arg(long, default_value_t = 0.1)]
    pub warmup: f64,
    /// Learning-rate schedule: `reference` (warm-up ramp times linear decay) or
    /// `warmup-then-decay`.
    #[arg(long, value_enum, default_value = "reference")]
    pub schedule: ScheduleArg,
    /// Adam bias correction (the reference has none).
    #[arg(long)]
    pub bias_correction: bool,
    /// Maximum tokens per input, [CLS]/[SEP] included.
    #[arg(long, default_value_t = 128)]
    pub max_seq_len: usize,
    /// Use at most this many training examples (the first ones after a seeded shuffle).
    #[arg(long)]
    pub max_train_examples: Option<usize>,
    /// The sequence head's form.
    #[arg(long, value_enum, default_value = "linear")]
    pub head: Head,
    /// Dropout of the encoder and head during fine-tuning (default: the model config's; the
    /// quick pre-training run uses none, the paper fine-tunes with 0.1).
    #[arg(long)]
    pub dropout: Option<f64>,
    /// Precision of the matrix multiplies in training and evaluation: f32 (default) or bf16
    /// (for GPUs; docs/user-guide.md, "Mixed precision").
    #[arg(long, default_value = "f32")]
    pub precision: electra_model::Precision,
}

fn load_task(args: &FinetuneArgs) -> Result<TextTask> {
    let options = GenericOptions { name: None, regression: args.regression };
    let task = match (&args.task, &args.data, &args.train) {
        (Some(name), Some(dir), None) => load_glue(GlueTask::from_name(name)?, dir)?,
        (Some(_), None, _) => bail!("--task needs --data DIR (the GLUE task directory)"),
        (None, Some(file), None) => load_generic_single(file, &options)?,
        (None, None, Some(train)) => {
            let Some(dev) = &args.dev else { bail!("--train needs --dev") };
            load_generic_files(train, dev, args.test.as_deref(), &options)?
        }
        (None, Some(_), Some(_)) => bail!("give either --data FILE or --train/--dev, not both"),
        _ => bail!("no task: give --task NAME --data DIR, --data FILE, or --train FILE --dev FILE"),
    };
    Ok(task)
}

struct Bar {
    bar: ProgressBar,
}

impl RunProgress for Bar {
    fn on_start(&self, start_step: usize, total_steps: usize) {
        self.bar.set_length(total_steps as u64);
        self.bar.set_position(start_step as u64);
    }
    fn on_step(&self, step: usize, total: usize, loss: f64) {
        self.bar.set_length(total as u64);
        self.bar.set_position(step as u64);
        self.bar.set_message(format!("loss {loss:.4}"));
    }
    fn on_epoch(&self, r: &EpochRecord) {
        let scores: Vec<String> = r.scores.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
        self.bar.println(format!("epoch {}: train loss {:.4}, dev {}", r.epoch, r.train_loss, scores.join(", ")));
    }
}


/// The task data the arguments name, in any format.
fn load(args: &FinetuneArgs) -> Result<TaskData> {
    match args.format {
        Format::Text => Ok(TaskData::Text(load_task(args)?)),
        Format::Conll | Format::Squad => {
            let (Some(train), Some(dev)) = (&args.train, &args.dev) else {
                bail!("--format {:?} needs --train FILE and --dev FILE", args.format)
            };
            if args.format == Format::Conll {
                return Ok(TaskData::Conll(load_conll(train, dev, args.test.as_deref())?));
            }
            let test = match &args.test {
                Some(t) => read_squad(t)?,
                None => Vec::new(),
            };
            let name = train.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "squad".into());
            Ok(TaskData::Squad { name, train: read_squad(train)?, dev: read_squad(dev)?, test })
        }
    }
}

/// `electra finetune`.
pub fn finetune(args: &FinetuneArgs) -> Result<()> {
    let device = backend::device();
    let config_path = args.model.join(hf::CONFIG_FILE);
    let encoder_config = hf::load_config(&args.model)
        .with_context(|| format!("cannot use {} as a pre-trained model", args.model.display()))?;
    let tok = WordPieceTokenizer::from_dir(&args.model)
        .with_context(|| format!("cannot load the tokenizer of {}", args.model.display()))?;
    if tok.vocab_size() != encoder_config.vocab_size {
        bail!(
            "{}: vocab_size {} but the tokenizer has {} tokens",
            config_path.display(),
            encoder_config.vocab_size,
            tok.vocab_size()
        );
    }
    let options = TaskOptions {
        max_seq_len: args.max_seq_len.min(encoder_config.max_position_embeddings),
        max_train_examples: args.max_train_examples,
        doc_stride: args.doc_stride,
        max_query_len: args.max_query_len,
        max_answer_len: args.max_answer_len,
        null_threshold: args.null_threshold,
    };
    let task = electra_finetune::task::prepare(&tok, load(args)?, &options)?;
    // Every setting is checked before `--overwrite` deletes anything.
    let base = FinetuneConfig {
        learning_rate: args.lr,
        epochs: args.epochs,
        batch_size: args.batch_size,
        warmup_proportion: args.warmup,
        schedule: match args.schedule {
            ScheduleArg::Reference => Schedule::Reference,
            ScheduleArg::WarmupThenDecay => Schedule::WarmupThenDecay,
        },
        layer_decay: args.layer_decay,
        depth_rule: match args.depth_rule {
            Depth::Reference => DepthRule::Reference,
            Depth::Contiguous => DepthRule::Contiguous,
        },
        weight_decay: args.weight_decay,
        bias_correction: args.bias_correction,
        seed: args.seed,
        chunk_size: Some(backend::DEFAULT_CHUNK),
        precision: args.precision,
        ..FinetuneConfig::default()
    };
    base.validate()?;
    backend::check_precision(base.precision)?;
    if let Some(p) = args.dropout.filter(|p| !(0.0..1.0).contains(p)) {
        bail!("--dropout must be in [0, 1), got {p}");
    }
    claim_out(args)?;
    // Ctrl-C: stop before the next step (the best epoch so far stays in its seed-N/).
    let cancel = Cancel::new();
    let flag = cancel.clone();
    if let Err(e) = ctrlc::set_handler(move || flag.cancel()) {
        tracing::warn!("cannot install the Ctrl-C handler: {e}");
    }
    let style = match args.head {
        Head::Linear => HeadStyle::Linear,
        Head::Hf => HeadStyle::Hf,
    };
    eprintln!(
        "task {}: {} train, {} dev, {} test features; {:?}; init {:?}; backend {}",
        task.name,
        task.train.len(),
        task.dev.len(),
        task.test.len(),
        task.head,
        args.init,
        backend::NAME
    );
    let mut results: Vec<(RunResult, Option<Scores>)> = Vec::new();
    for k in 0..args.seeds.max(1) {
        let seed = args.seed + k as u64;
        let config = FinetuneConfig { seed, ..base.clone() };
        let encoder = match args.init {
            Init::Pretrained => hf::load_encoder::<AutodiffBackend>(&args.model, &device)?,
            Init::Random => ElectraModel::<AutodiffBackend>::init(&encoder_config, seed, &device)?,
        };
        let mut model = TaskModel::new(encoder, task.head.clone(), style, seed, &device)?;
        if let Some(p) = args.dropout {
            model = model.with_dropout(p);
        }
        let out = args.out.join(format!("seed-{seed}"));
        let bar = ProgressBar::new(1).with_style(
            ProgressStyle::with_template("seed {prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(seed.to_string());
        let progress = Bar { bar };
        let score_dev = |o: &Outputs| task.score_dev(o);
        let result =
            electra_finetune::finetune(model, &config, &task.train, &task.dev, &score_dev, &out, &progress, &cancel);
        progress.bar.finish_and_clear();
        let result = result?;
        hf::copy_tokenizer_files(&args.model, &out)?;
        let test_scores = if task.test.is_empty() {
            None
        } else {
            let best = TaskModel::<Backend>::load(&out, &device)?;
            Some(task.score_test(&electra_finetune::predict(&best, &task.test, 64, backend::DEFAULT_CHUNK))?)
        };
        write_json(&out.join("result.json"), &json!({"run": result, "test": test_scores, "config": config}))?;
        eprintln!(
            "seed {seed}: best epoch {} dev {}{} ({:.0} s)",
            result.best_epoch,
            fmt_scores(&result.best),
            test_scores.as_ref().map(|t| format!(", test {}", fmt_scores(t))).unwrap_or_default(),
            result.seconds
        );
        results.push((result, test_scores));
    }
    summarise(args, &task.name, &results)
}

/// Claims `--out` for a fresh run: refused when it holds a fine-tuning run (`summary.json`,
/// the chart, `seed-*`) unless `--overwrite`, which deletes those first. Fine-tuning has no
/// `--resume`.
fn claim_out(args: &FinetuneArgs) -> Result<()> {
    let mode = OutMode::from_flags(false, args.overwrite)?;
    let markers: Vec<&str> = std::iter::once("summary.json").chain(CHART_FILES).collect();
    match run_dir::claim(&args.out, mode, &markers, Some("seed-")) {
        Ok(_) => Ok(()),
        Err(electra_train::Error::RunExists { dir, found }) => bail!(
            "{} already holds a fine-tuning run ({found}); pass --overwrite to delete it and start again, or choose another --out",
            dir.display()
        ),
        Err(e) => Err(e.into()), // an I/O error naming the path
    }
}

fn fmt_scores(s: &Scores) -> String {
    s.iter().map(|(k, v)| format!("{k} {v:.4}")).collect::<Vec<_>>().join(", ")
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    hf::write_atomic(path, text.as_bytes())?;
    Ok(())
}

fn summarise(args: &FinetuneArgs, name: &str, results: &[(RunResult, Option<Scores>)]) -> Result<()> {
    let names: Vec<String> = results.first().map(|(r, _)| r.best.iter().map(|s| s.0.clone()).collect()).unwrap_or_default();
    let column = |split: &str, i: usize| -> Vec<f64> {
        results
            .iter()
            .filter_map(|(r, t)| if split == "dev" { r.best.get(i).map(|s| s.1) } else { t.as_ref().and_then(|t| t.get(i)).map(|s| s.1) })
            .collect()
    };
    println!("\n{name} ({:?} init, {} seeds)", args.init, results.len());
    let has_test = results.iter().any(|(_, t)| t.is_some());
    let mut headers: Vec<String> = names.iter().map(|n| format!("dev {n}")).collect();
    if has_test {
        headers.extend(names.iter().map(|n| format!("test {n}")));
    }
    let widths: Vec<usize> = headers.iter().map(|h| h.len().max(8)).collect();
    let row = |cells: Vec<String>| -> String {
        cells.iter().zip(&widths).map(|(c, w)| format!(" {c:>w$}")).collect::<String>()
    };
    println!("{:>6} {:>6} {:>7}{}", "seed", "epoch", "time_s", row(headers.clone()));
    for (r, t) in results {
        let mut cells: Vec<String> = r.best.iter().map(|s| format!("{:.4}", s.1)).collect();
        if let Some(t) = t {
            cells.extend(t.iter().map(|s| format!("{:.4}", s.1)));
        }
        println!("{:>6} {:>6} {:>7.0}{}", r.seed, r.best_epoch, r.seconds, row(cells));
    }
    let mut medians = serde_json::Map::new();
    let mut cells = Vec::new();
    for split in ["dev", "test"] {
        if split == "test" && !has_test {
            continue;
        }
        for (i, n) in names.iter().enumerate() {
            let m = metrics::median(&column(split, i)).unwrap_or(f64::NAN);
            cells.push(format!("{m:.4}"));
            medians.insert(format!("{split}_{n}"), m.into());
        }
    }
    println!("{:>6} {:>6} {:>7}{}", "median", "", "", row(cells));
    let summary = json!({
        "task": name,
        "model": args.model,
        "init": format!("{:?}", args.init).to_lowercase(),
        "backend": backend::NAME,
        "seeds": results.iter().map(|(r, t)| json!({"seed": r.seed, "best_epoch": r.best_epoch, "dev": r.best, "test": t, "seconds": r.seconds, "model": r.model_dir})).collect::<Vec<_>>(),
        "median": medians,
    });
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    write_json(&args.out.join("summary.json"), &summary)?;
    let runs: Vec<&RunResult> = results.iter().map(|(r, _)| r).collect();
    electra_finetune::plot::write_curves(name, &runs, &args.out)?;
    println!("models and metrics in {}/seed-*/, summary in {}", args.out.display(), args.out.join("summary.json").display());
    println!(
        "curves (loss and dev scores per epoch and seed) in {} and {}",
        args.out.join(CHART_FILES[1]).display(),
        args.out.join(CHART_FILES[0]).display()
    );
    Ok(())
}

/// `electra classify`.
pub fn classify(args: &Common) -> Result<()> {
    let device = backend::device();
    let model = TaskModel::<Backend>::load(&args.model, &device)
        .with_context(|| format!("cannot load a fine-tuned model from {}", args.model.display()))?;
    let labels = match &model.kind {
        HeadKind::Sequence { labels } => Some(labels.clone()),
        HeadKind::Regression => None,
        other => bail!("{}: a {other:?} model; classify needs a sequence classification or regression model", args.model.display()),
    };
    let tok = WordPieceTokenizer::from_dir(&args.model)
        .with_context(|| format!("cannot load the tokenizer of {}", args.model.display()))?;
    let positions = model.electra.config.max_position_embeddings;
    let max_len = args.max_seq_len.unwrap_or(positions).min(positions);
    let lines = read_lines(&args.input)?;
    let mut features = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        let (a, b) = match line.split_once('\t') {
            Some((a, b)) => (a, Some(b)),
            None => (line.as_str(), None),
        };
        let input = tok
            .encode_pair(a, b, max_len)
            .with_context(|| format!("{}:{}: cannot tokenise", args.input.display(), i + 1))?;
        features.push(Feature { input_ids: input.input_ids, token_type_ids: input.token_type_ids, target: None });
    }
    let outputs = electra_finetune::predict(&model, &features, args.batch_size, backend::DEFAULT_CHUNK);
    let mut out = JsonLines::create(&args.output)?;
    for (i, o) in outputs.iter().enumerate() {
        let record = match &labels {
            Some(labels) => {
                let p = electra_model::input::softmax(o);
                let best = argmax(&p).unwrap_or(0);
                let probs: serde_json::Map<String, serde_json::Value> =
                    labels.iter().zip(&p).map(|(l, &v)| (l.clone(), json!(v))).collect();
                json!({"line": i + 1, "label": labels[best], "probabilities": probs})
            }
            None => json!({"line": i + 1, "value": o.first().copied().unwrap_or(f32::NAN)}),
        };
        out.write(&record)?;
    }
    out.finish()?;
    tracing::info!(lines = outputs.len(), output = %args.output.display(), "classified");
    Ok(())
}
