//! `electra finetune` (fine-tune a pre-trained encoder on a labelled task, over several seeds)
//! and `electra classify` (a fine-tuned sequence model on text, JSON Lines out).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::activation::softmax;
use burn::prelude::*;
use electra_finetune::data::{
    GenericOptions, GlueTask, Label, SquadConfig, SquadExample, SquadFeature, SquadPostConfig, TaggedSentence,
    TaggingFeature, TaggingTask, TaskKind, TextExample, TextTask, load_conll, load_generic_files,
    load_generic_single, load_glue, read_squad, squad_features, squad_predictions, tagging_features, text_features,
    word_predictions,
};
use electra_finetune::metrics::{self, MetricKind};
use electra_finetune::run::{EpochRecord, Outputs, RunProgress, Scores};
use electra_finetune::{DepthRule, Feature, FinetuneConfig, HeadKind, HeadStyle, RunResult, Target, TaskModel};
use electra_model::{ElectraModel, hf};
use electra_tokenizer::WordPieceTokenizer;
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
    /// Output directory: `seed-N/` per seed (model in HuggingFace layout, metrics) and
    /// `summary.json`.
    #[arg(long, default_value = "runs/finetune")]
    pub out: PathBuf,
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

fn to_features(tok: &WordPieceTokenizer, examples: &[TextExample], max_len: usize) -> Result<Vec<Feature>> {
    Ok(text_features(tok, examples, max_len)?
        .into_iter()
        .map(|f| Feature {
            input_ids: f.input.input_ids,
            token_type_ids: f.input.token_type_ids,
            target: f.label.map(|l| match l {
                Label::Class(c) => Target::Class(c),
                Label::Value(v) => Target::Value(v),
            }),
        })
        .collect())
}

/// Index of the largest value (`None` for an empty slice).
fn argmax(values: &[f32]) -> Option<usize> {
    values.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i)
}

/// Predicted labels from raw outputs: argmax for classification, the value for regression.
fn predictions(kind: &TaskKind, outputs: &Outputs) -> Vec<Label> {
    outputs
        .iter()
        .map(|o| match kind {
            TaskKind::Regression => Label::Value(o.first().copied().unwrap_or(0.0)),
            TaskKind::Classification { .. } => {
                let best = argmax(o).unwrap_or(0);
                Label::Class(best)
            }
        })
        .collect()
}

fn score(kinds: &[MetricKind], task: &TaskKind, outputs: &Outputs, gold: &[TextExample]) -> Result<Scores> {
    let pred = predictions(task, outputs);
    let gold: Vec<Label> = gold.iter().filter_map(|e| e.label).collect();
    Ok(metrics::compute_metrics(kinds, &pred, &gold)?)
}

struct Bar {
    bar: ProgressBar,
}

impl RunProgress for Bar {
    fn step(&self, step: usize, total: usize, loss: f64) {
        self.bar.set_length(total as u64);
        self.bar.set_position(step as u64);
        self.bar.set_message(format!("loss {loss:.4}"));
    }
    fn epoch(&self, r: &EpochRecord) {
        let scores: Vec<String> = r.scores.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
        self.bar.println(format!("epoch {}: train loss {:.4}, dev {}", r.epoch, r.train_loss, scores.join(", ")));
    }
}


/// Scores raw model outputs of one split.
type Scorer<'a> = Box<dyn Fn(&Outputs) -> Result<Scores> + 'a>;

/// A task turned into features, with its scorers.
struct Prepared<'a> {
    name: String,
    head: HeadKind,
    train: Vec<Feature>,
    dev: Vec<Feature>,
    test: Vec<Feature>,
    score_dev: Scorer<'a>,
    score_test: Scorer<'a>,
}

/// The first `n` items after a fixed-seed shuffle (the same subset for every run).
fn subsample<T: Clone>(items: &[T], n: Option<usize>) -> Vec<T> {
    let mut items = items.to_vec();
    if let Some(n) = n.filter(|&n| n < items.len()) {
        use rand::SeedableRng;
        use rand::seq::SliceRandom;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        items.shuffle(&mut rng);
        items.truncate(n);
    }
    items
}

fn prepare_text<'a>(args: &FinetuneArgs, tok: &WordPieceTokenizer, max_len: usize, task: &'a TextTask) -> Result<Prepared<'a>> {
    let train = to_features(tok, &subsample(&task.train, args.max_train_examples), max_len)?;
    let dev = to_features(tok, &task.dev, max_len)?;
    let labelled_test: Vec<TextExample> = task.test.iter().filter(|e| e.label.is_some()).cloned().collect();
    let test = to_features(tok, &labelled_test, max_len)?;
    let head = match &task.kind {
        TaskKind::Classification { labels } => HeadKind::Sequence { labels: labels.clone() },
        TaskKind::Regression => HeadKind::Regression,
    };
    Ok(Prepared {
        name: task.name.clone(),
        head,
        train,
        dev,
        test,
        score_dev: Box::new(move |o| score(&task.metrics, &task.kind, o, &task.dev)),
        score_test: Box::new(move |o| score(&task.metrics, &task.kind, o, &labelled_test)),
    })
}

fn tagging_scores(labels: &[String], feats: &[TaggingFeature], gold: &[TaggedSentence], outputs: &Outputs) -> Result<Scores> {
    let n = labels.len();
    let mut gold_tags = Vec::with_capacity(gold.len());
    let mut pred_tags = Vec::with_capacity(gold.len());
    let fallback = labels.iter().position(|l| l == "O").unwrap_or(0);
    for ((f, s), o) in feats.iter().zip(gold).zip(outputs) {
        let token_preds: Vec<usize> = o
            .chunks(n)
            .map(|c| argmax(c).unwrap_or(fallback))
            .collect();
        let words = word_predictions(f, &token_preds, fallback);
        pred_tags.push(words.iter().map(|&i| labels[i].clone()).collect::<Vec<_>>());
        gold_tags.push(s.labels.iter().map(|&i| labels[i].clone()).collect::<Vec<_>>());
    }
    let e = metrics::entity_scores(&gold_tags, &pred_tags)?;
    let (mut right, mut total) = (0usize, 0usize);
    for (g, p) in gold_tags.iter().zip(&pred_tags) {
        total += g.len();
        right += g.iter().zip(p).filter(|(a, b)| a == b).count();
    }
    Ok(vec![
        ("entity_f1".into(), e.f1),
        ("precision".into(), e.precision),
        ("recall".into(), e.recall),
        ("token_accuracy".into(), right as f64 / total.max(1) as f64),
    ])
}

fn tagging_to_features(feats: &[TaggingFeature]) -> Vec<Feature> {
    feats
        .iter()
        .map(|f| Feature {
            input_ids: f.input.input_ids.clone(),
            token_type_ids: f.input.token_type_ids.clone(),
            target: Some(Target::Tokens(f.labels.clone())),
        })
        .collect()
}

fn prepare_conll<'a>(args: &FinetuneArgs, tok: &WordPieceTokenizer, max_len: usize, task: &'a TaggingTask) -> Result<Prepared<'a>> {
    let train_sentences = subsample(&task.train, args.max_train_examples);
    let train = tagging_to_features(&tagging_features(tok, &train_sentences, max_len)?);
    let dev_feats = tagging_features(tok, &task.dev, max_len)?;
    let test_feats = tagging_features(tok, &task.test, max_len)?;
    let labels = task.labels.clone();
    Ok(Prepared {
        name: task.name.clone(),
        head: HeadKind::Token { labels: labels.clone() },
        train,
        dev: tagging_to_features(&dev_feats),
        test: tagging_to_features(&test_feats),
        score_dev: Box::new({
            let labels = labels.clone();
            move |o| tagging_scores(&labels, &dev_feats, &task.dev, o)
        }),
        score_test: Box::new(move |o| tagging_scores(&labels, &test_feats, &task.test, o)),
    })
}

fn squad_to_features(feats: &[SquadFeature]) -> Vec<Feature> {
    feats
        .iter()
        .map(|f| Feature {
            input_ids: f.input.input_ids.clone(),
            token_type_ids: f.input.token_type_ids.clone(),
            target: Some(Target::Span { start: f.start_position, end: f.end_position }),
        })
        .collect()
}

fn squad_scores(
    examples: &[SquadExample],
    feats: &[SquadFeature],
    post: &SquadPostConfig,
    outputs: &Outputs,
) -> Result<Scores> {
    let start: Vec<Vec<f32>> = outputs.iter().map(|o| o.iter().step_by(2).copied().collect()).collect();
    let end: Vec<Vec<f32>> = outputs.iter().map(|o| o.iter().skip(1).step_by(2).copied().collect()).collect();
    let predictions = squad_predictions(examples, feats, &start, &end, post)?;
    let s = metrics::squad_evaluate(examples, &predictions)?;
    let mut scores = vec![("f1".to_string(), s.f1), ("exact".to_string(), s.exact)];
    if let (Some(f1), Some(em)) = (s.has_answer_f1, s.has_answer_exact) {
        scores.push(("has_answer_f1".into(), f1));
        scores.push(("has_answer_exact".into(), em));
    }
    if let Some(em) = s.no_answer_exact {
        scores.push(("no_answer_exact".into(), em));
    }
    Ok(scores)
}

fn prepare_squad<'a>(
    args: &FinetuneArgs,
    tok: &WordPieceTokenizer,
    max_len: usize,
    data: &'a (Vec<SquadExample>, Vec<SquadExample>, Vec<SquadExample>),
    name: String,
) -> Result<Prepared<'a>> {
    let (train, dev, test) = data;
    let config = SquadConfig { max_seq_len: max_len, doc_stride: args.doc_stride, max_query_len: args.max_query_len };
    let version_2 = train.iter().chain(dev.iter()).any(|e| e.is_impossible);
    let post = SquadPostConfig {
        max_answer_len: args.max_answer_len,
        null_threshold: args.null_threshold,
        version_2,
        ..SquadPostConfig::default()
    };
    let train_feats = squad_features(tok, &subsample(train, args.max_train_examples), &config, true)?;
    let dev_feats = squad_features(tok, dev, &config, false)?;
    let test_feats = squad_features(tok, test, &config, false)?;
    Ok(Prepared {
        name,
        head: HeadKind::Span,
        train: squad_to_features(&train_feats),
        dev: squad_to_features(&dev_feats),
        test: squad_to_features(&test_feats),
        score_dev: Box::new(move |o| squad_scores(dev, &dev_feats, &post, o)),
        score_test: Box::new(move |o| squad_scores(test, &test_feats, &post, o)),
    })
}

/// The data of any format, owned here so that the prepared task can borrow it.
enum Loaded {
    Text(TextTask),
    Conll(TaggingTask),
    Squad((Vec<SquadExample>, Vec<SquadExample>, Vec<SquadExample>), String),
}

fn load(args: &FinetuneArgs) -> Result<Loaded> {
    match args.format {
        Format::Text => Ok(Loaded::Text(load_task(args)?)),
        Format::Conll | Format::Squad => {
            let (Some(train), Some(dev)) = (&args.train, &args.dev) else {
                bail!("--format {:?} needs --train FILE and --dev FILE", args.format)
            };
            if args.format == Format::Conll {
                return Ok(Loaded::Conll(load_conll(train, dev, args.test.as_deref())?));
            }
            let test = match &args.test {
                Some(t) => read_squad(t)?,
                None => Vec::new(),
            };
            let name = train.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "squad".into());
            Ok(Loaded::Squad((read_squad(train)?, read_squad(dev)?, test), name))
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
    let max_len = args.max_seq_len.min(encoder_config.max_position_embeddings);
    let loaded = load(args)?;
    let task = match &loaded {
        Loaded::Text(t) => prepare_text(args, &tok, max_len, t)?,
        Loaded::Conll(t) => prepare_conll(args, &tok, max_len, t)?,
        Loaded::Squad(d, name) => prepare_squad(args, &tok, max_len, d, name.clone())?,
    };
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
        let config = FinetuneConfig {
            learning_rate: args.lr,
            epochs: args.epochs,
            batch_size: args.batch_size,
            warmup_proportion: args.warmup,
            layer_decay: args.layer_decay,
            depth_rule: match args.depth_rule {
                Depth::Reference => DepthRule::Reference,
                Depth::Contiguous => DepthRule::Contiguous,
            },
            weight_decay: args.weight_decay,
            bias_correction: args.bias_correction,
            seed,
            chunk_size: Some(backend::DEFAULT_CHUNK),
            ..FinetuneConfig::default()
        };
        let encoder = match args.init {
            Init::Pretrained => hf::load_encoder::<AutodiffBackend>(&args.model, &device)?,
            Init::Random => ElectraModel::<AutodiffBackend>::init(&encoder_config, seed, &device)?,
        };
        let mut model = TaskModel::new(encoder, task.head.clone(), style, seed, &device)?;
        if let Some(p) = args.dropout {
            if !(0.0..1.0).contains(&p) {
                bail!("--dropout must be in [0, 1), got {p}");
            }
            model = model.with_dropout(p);
        }
        let out = args.out.join(format!("seed-{seed}"));
        let bar = ProgressBar::new(1).with_style(
            ProgressStyle::with_template("seed {prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(seed.to_string());
        let progress = Bar { bar };
        let score_dev = |o: &Outputs| (task.score_dev)(o).map_err(|e| electra_finetune::Error::Invalid(format!("{e:#}")));
        let result = electra_finetune::finetune(model, &config, &task.train, &task.dev, &score_dev, &out, &progress)?;
        progress.bar.finish_and_clear();
        hf::copy_tokenizer_files(&args.model, &out)?;
        let test_scores = if task.test.is_empty() {
            None
        } else {
            let best = TaskModel::<Backend>::load(&out, &device)?;
            Some((task.score_test)(&electra_finetune::predict(&best, &task.test, 64, backend::DEFAULT_CHUNK))?)
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
    println!("models and metrics in {}/seed-*/, summary in {}", args.out.display(), args.out.join("summary.json").display());
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
                let t = Tensor::<Backend, 1>::from_floats(o.as_slice(), &device);
                let p = softmax(t, 0).into_data().convert::<f32>().to_vec::<f32>().unwrap_or_default();
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
