//! Task assembly: loaded task data (text, CoNLL, SQuAD) turned into [`Feature`]s for
//! [`finetune`](crate::finetune), with the head it needs and the scorers that turn a split's raw
//! [`Outputs`] into [`Scores`] (text metrics, entity F1 over words, SQuAD EM/F1 over answers).
//!
//! ```no_run
//! # fn main() -> electra_finetune::Result<()> {
//! use std::path::Path;
//! use electra_finetune::data::read_squad;
//! use electra_finetune::task::{TaskData, TaskOptions, prepare};
//! # let tok: electra_tokenizer::WordPieceTokenizer = todo!();
//! let data = TaskData::Squad {
//!     name: "squad".into(),
//!     train: read_squad(Path::new("train-v1.1.json"))?,
//!     dev: read_squad(Path::new("dev-v1.1.json"))?,
//!     test: Vec::new(),
//! };
//! let task = prepare(&tok, data, &TaskOptions::default())?;
//! // electra_finetune::finetune(model, &config, &task.train, &task.dev, &|o| task.score_dev(o), ...)
//! # Ok(()) }
//! ```

use electra_tokenizer::WordPieceTokenizer;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::data::{
    Label, SquadConfig, SquadExample, SquadFeature, SquadPostConfig, TaggedSentence, TaggingFeature, TaggingTask,
    TaskKind, TextExample, TextTask, squad_features, squad_predictions, tagging_features, text_features,
    word_predictions,
};
use crate::metrics::{self, MetricKind};
use crate::model::HeadKind;
use crate::run::{Feature, Outputs, Scores, Target};
use crate::Result;

/// Loaded task data of any format.
#[derive(Debug, Clone)]
pub enum TaskData {
    /// Sentence(-pair) classification or regression (GLUE, generic files).
    Text(TextTask),
    /// Token tagging (CoNLL files).
    Conll(TaggingTask),
    /// Extractive question answering (SQuAD v1.1 or v2.0 files).
    Squad {
        /// The task's name.
        name: String,
        /// Training questions.
        train: Vec<SquadExample>,
        /// Dev questions.
        dev: Vec<SquadExample>,
        /// Test questions (may be empty).
        test: Vec<SquadExample>,
    },
}

/// How task data becomes features.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskOptions {
    /// Maximum tokens per input, `[CLS]`/`[SEP]` included (at most the model's positions).
    pub max_seq_len: usize,
    /// Use at most this many training examples: the first ones after a fixed-seed shuffle, the
    /// same subset for every run ([`subsample`]).
    pub max_train_examples: Option<usize>,
    /// SQuAD: tokens between the starts of consecutive context windows.
    pub doc_stride: usize,
    /// SQuAD: question tokens kept.
    pub max_query_len: usize,
    /// SQuAD: longest answer in tokens.
    pub max_answer_len: usize,
    /// SQuAD 2.0: answer nothing when the null score exceeds the best span's by more than this.
    pub null_threshold: f32,
}

impl Default for TaskOptions {
    fn default() -> Self {
        Self {
            max_seq_len: 128,
            max_train_examples: None,
            doc_stride: 128,
            max_query_len: 64,
            max_answer_len: 30,
            null_threshold: 0.0,
        }
    }
}

/// Scores raw model outputs of one split.
pub type Scorer = Box<dyn Fn(&Outputs) -> Result<Scores> + Send + Sync>;

/// A task turned into features, with its head and its scorers.
pub struct PreparedTask {
    /// The task's name.
    pub name: String,
    /// The head the task needs.
    pub head: HeadKind,
    /// Training features (possibly subsampled).
    pub train: Vec<Feature>,
    /// Dev features.
    pub dev: Vec<Feature>,
    /// Labelled test features (empty when the test split is absent or unlabelled).
    pub test: Vec<Feature>,
    score_dev: Scorer,
    score_test: Scorer,
}

impl std::fmt::Debug for PreparedTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedTask")
            .field("name", &self.name)
            .field("head", &self.head)
            .field("train", &self.train.len())
            .field("dev", &self.dev.len())
            .field("test", &self.test.len())
            .finish_non_exhaustive()
    }
}

impl PreparedTask {
    /// The dev scores of `outputs` (the model's raw outputs on [`PreparedTask::dev`], in order);
    /// the first picks the best epoch.
    ///
    /// # Errors
    /// Outputs that do not match the split.
    pub fn score_dev(&self, outputs: &Outputs) -> Result<Scores> {
        (self.score_dev)(outputs)
    }

    /// The test scores of `outputs` (the model's raw outputs on [`PreparedTask::test`]).
    ///
    /// # Errors
    /// Outputs that do not match the split.
    pub fn score_test(&self, outputs: &Outputs) -> Result<Scores> {
        (self.score_test)(outputs)
    }
}

/// Turns loaded task data into features, a head and scorers, with `tok` and `options`.
///
/// # Errors
/// A tokenizer error, or SQuAD examples that cannot be windowed.
pub fn prepare(tok: &WordPieceTokenizer, data: TaskData, options: &TaskOptions) -> Result<PreparedTask> {
    match data {
        TaskData::Text(task) => prepare_text(tok, task, options),
        TaskData::Conll(task) => prepare_conll(tok, task, options),
        TaskData::Squad { name, train, dev, test } => prepare_squad(tok, name, &train, dev, test, options),
    }
}

/// The first `n` items after a fixed-seed shuffle (the same subset for every run); all of them,
/// in order, without `n` or when `n` is at least their number.
pub fn subsample<T: Clone>(items: &[T], n: Option<usize>) -> Vec<T> {
    let mut items = items.to_vec();
    if let Some(n) = n.filter(|&n| n < items.len()) {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        items.shuffle(&mut rng);
        items.truncate(n);
    }
    items
}

/// Index of the largest value (`None` for an empty slice).
pub fn argmax(values: &[f32]) -> Option<usize> {
    values.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i)
}

fn text_to_features(tok: &WordPieceTokenizer, examples: &[TextExample], max_len: usize) -> Result<Vec<Feature>> {
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

/// Predicted labels from raw outputs: argmax for classification, the value for regression.
fn text_predictions(kind: &TaskKind, outputs: &Outputs) -> Vec<Label> {
    outputs
        .iter()
        .map(|o| match kind {
            TaskKind::Regression => Label::Value(o.first().copied().unwrap_or(0.0)),
            TaskKind::Classification { .. } => Label::Class(argmax(o).unwrap_or(0)),
        })
        .collect()
}

/// The text task's metrics of `outputs` against the labels of `gold`.
pub fn text_scores(kinds: &[MetricKind], task: &TaskKind, outputs: &Outputs, gold: &[TextExample]) -> Result<Scores> {
    let pred = text_predictions(task, outputs);
    let gold: Vec<Label> = gold.iter().filter_map(|e| e.label).collect();
    metrics::compute_metrics(kinds, &pred, &gold)
}

fn prepare_text(tok: &WordPieceTokenizer, task: TextTask, options: &TaskOptions) -> Result<PreparedTask> {
    let max_len = options.max_seq_len;
    let train = text_to_features(tok, &subsample(&task.train, options.max_train_examples), max_len)?;
    let dev = text_to_features(tok, &task.dev, max_len)?;
    let labelled_test: Vec<TextExample> = task.test.iter().filter(|e| e.label.is_some()).cloned().collect();
    let test = text_to_features(tok, &labelled_test, max_len)?;
    let head = match &task.kind {
        TaskKind::Classification { labels } => HeadKind::Sequence { labels: labels.clone() },
        TaskKind::Regression => HeadKind::Regression,
    };
    let (metrics, kind) = (task.metrics.clone(), task.kind.clone());
    let (test_metrics, test_kind) = (task.metrics, task.kind);
    let dev_examples = task.dev;
    Ok(PreparedTask {
        name: task.name,
        head,
        train,
        dev,
        test,
        score_dev: Box::new(move |o| text_scores(&metrics, &kind, o, &dev_examples)),
        score_test: Box::new(move |o| text_scores(&test_metrics, &test_kind, o, &labelled_test)),
    })
}

/// Entity F1, precision and recall (seqeval's) and word accuracy of token outputs: each word's
/// label is its first sub-word's argmax (words cut by the length limit get the `O` label, or
/// label 0 without one).
pub fn tagging_scores(
    labels: &[String],
    feats: &[TaggingFeature],
    gold: &[TaggedSentence],
    outputs: &Outputs,
) -> Result<Scores> {
    let n = labels.len().max(1);
    let mut gold_tags = Vec::with_capacity(gold.len());
    let mut pred_tags = Vec::with_capacity(gold.len());
    let fallback = labels.iter().position(|l| l == "O").unwrap_or(0);
    let name = |i: usize| labels.get(i).cloned().unwrap_or_default();
    for ((f, s), o) in feats.iter().zip(gold).zip(outputs) {
        let token_preds: Vec<usize> = o.chunks(n).map(|c| argmax(c).unwrap_or(fallback)).collect();
        let words = word_predictions(f, &token_preds, fallback);
        pred_tags.push(words.iter().map(|&i| name(i)).collect::<Vec<_>>());
        gold_tags.push(s.labels.iter().map(|&i| name(i)).collect::<Vec<_>>());
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

fn prepare_conll(tok: &WordPieceTokenizer, task: TaggingTask, options: &TaskOptions) -> Result<PreparedTask> {
    let max_len = options.max_seq_len;
    let train_sentences = subsample(&task.train, options.max_train_examples);
    let train = tagging_to_features(&tagging_features(tok, &train_sentences, max_len)?);
    let dev_feats = tagging_features(tok, &task.dev, max_len)?;
    let test_feats = tagging_features(tok, &task.test, max_len)?;
    let labels = task.labels;
    let (dev_sentences, test_sentences) = (task.dev, task.test);
    Ok(PreparedTask {
        name: task.name,
        head: HeadKind::Token { labels: labels.clone() },
        train,
        dev: tagging_to_features(&dev_feats),
        test: tagging_to_features(&test_feats),
        score_dev: Box::new({
            let labels = labels.clone();
            move |o| tagging_scores(&labels, &dev_feats, &dev_sentences, o)
        }),
        score_test: Box::new(move |o| tagging_scores(&labels, &test_feats, &test_sentences, o)),
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

/// SQuAD's F1 and exact match (and, for v2.0, the has-answer / no-answer parts) of span outputs
/// (`[start, end]` interleaved per token, as [`predict`](crate::predict) gives them) on the
/// windows `feats` of `examples`.
pub fn squad_scores(
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

fn prepare_squad(
    tok: &WordPieceTokenizer,
    name: String,
    train: &[SquadExample],
    dev: Vec<SquadExample>,
    test: Vec<SquadExample>,
    options: &TaskOptions,
) -> Result<PreparedTask> {
    let config = SquadConfig {
        max_seq_len: options.max_seq_len,
        doc_stride: options.doc_stride,
        max_query_len: options.max_query_len,
    };
    let version_2 = train.iter().chain(dev.iter()).any(|e| e.is_impossible);
    let post = SquadPostConfig {
        max_answer_len: options.max_answer_len,
        null_threshold: options.null_threshold,
        version_2,
        ..SquadPostConfig::default()
    };
    let train_feats = squad_features(tok, &subsample(train, options.max_train_examples), &config, true)?;
    let dev_feats = squad_features(tok, &dev, &config, false)?;
    let test_feats = squad_features(tok, &test, &config, false)?;
    let test_post = post;
    Ok(PreparedTask {
        name,
        head: HeadKind::Span,
        train: squad_to_features(&train_feats),
        dev: squad_to_features(&dev_feats),
        test: squad_to_features(&test_feats),
        score_dev: Box::new(move |o| squad_scores(&dev, &dev_feats, &post, o)),
        score_test: Box::new(move |o| squad_scores(&test, &test_feats, &test_post, o)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsample_is_a_fixed_subset_and_argmax_takes_the_first_largest() {
        let items: Vec<u32> = (0..20).collect();
        let a = subsample(&items, Some(5));
        assert_eq!(a.len(), 5);
        assert_eq!(a, subsample(&items, Some(5)));
        assert_eq!(subsample(&items, None), items);
        assert_eq!(subsample(&items, Some(50)), items);
        assert_eq!(argmax(&[0.1, 0.7, 0.2, -1.0]), Some(1));
        assert_eq!(argmax(&[]), None);
    }
}
