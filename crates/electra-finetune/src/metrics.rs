//! Evaluation metrics: accuracy, binary F1, Matthews correlation (binary and multi-class, as
//! scikit-learn), Pearson and Spearman correlation (average ranks for ties, as SciPy), SQuAD
//! exact match and F1 (as the official v1.1/v2.0 scripts), entity-level F1 for BIO/IOB tags (as
//! `seqeval`'s default mode), and the median over seeds.
//!
//! Scores are fractions in `[0, 1]` (correlations in `[-1, 1]`); multiply by 100 for the
//! percentages papers report. Where a metric is undefined (no positive prediction, a constant
//! input), it is 0, as scikit-learn does for F1 and MCC.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::data::{Label, SquadExample};
use crate::{Error, Result};

/// A metric a text task reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// Fraction of correct class predictions.
    Accuracy,
    /// F1 of one class against the rest (GLUE MRPC/QQP: class 1).
    F1 {
        /// Index of the positive class.
        positive: usize,
    },
    /// Matthews correlation coefficient (GLUE CoLA).
    Matthews,
    /// Pearson correlation of predicted and gold values.
    Pearson,
    /// Spearman rank correlation of predicted and gold values.
    Spearman,
}

impl MetricKind {
    /// Short name: `accuracy`, `f1`, `mcc`, `pearson`, `spearman`.
    pub fn name(self) -> &'static str {
        match self {
            MetricKind::Accuracy => "accuracy",
            MetricKind::F1 { .. } => "f1",
            MetricKind::Matthews => "mcc",
            MetricKind::Pearson => "pearson",
            MetricKind::Spearman => "spearman",
        }
    }

    /// Whether the metric reads class predictions (else real values).
    pub fn is_classification(self) -> bool {
        matches!(
            self,
            MetricKind::Accuracy | MetricKind::F1 { .. } | MetricKind::Matthews
        )
    }

    /// Computes the metric on labels: [`Label::Class`] for the classification metrics,
    /// [`Label::Value`] for the correlations.
    ///
    /// # Errors
    /// Lengths differ, the input is empty, or a label is of the other kind.
    pub fn compute(self, predictions: &[Label], gold: &[Label]) -> Result<f64> {
        same_len(predictions.len(), gold.len())?;
        if self.is_classification() {
            let p = classes(predictions)?;
            let g = classes(gold)?;
            match self {
                MetricKind::Accuracy => accuracy(&p, &g),
                MetricKind::F1 { positive } => Ok(binary_f1(&p, &g, positive)?.f1),
                _ => matthews_corrcoef(&p, &g),
            }
        } else {
            let p = values(predictions)?;
            let g = values(gold)?;
            match self {
                MetricKind::Pearson => pearson(&p, &g),
                _ => spearman(&p, &g),
            }
        }
    }
}

fn classes(labels: &[Label]) -> Result<Vec<usize>> {
    labels
        .iter()
        .map(|l| match l {
            Label::Class(c) => Ok(*c),
            Label::Value(_) => Err(Error::Invalid(
                "a classification metric was given a real-valued label".into(),
            )),
        })
        .collect()
}

fn values(labels: &[Label]) -> Result<Vec<f64>> {
    labels
        .iter()
        .map(|l| match l {
            Label::Value(v) => Ok(f64::from(*v)),
            Label::Class(_) => Err(Error::Invalid(
                "a correlation metric was given a class label".into(),
            )),
        })
        .collect()
}

/// Computes each metric, in order: `(name, value)` pairs whose first is the main score.
///
/// # Errors
/// As [`MetricKind::compute`].
pub fn compute_metrics(
    metrics: &[MetricKind],
    predictions: &[Label],
    gold: &[Label],
) -> Result<Vec<(String, f64)>> {
    metrics
        .iter()
        .map(|m| Ok((m.name().to_owned(), m.compute(predictions, gold)?)))
        .collect()
}

fn same_len(a: usize, b: usize) -> Result<()> {
    if a != b {
        return Err(Error::Invalid(format!(
            "metric inputs differ in length: {a} predictions, {b} gold labels"
        )));
    }
    if a == 0 {
        return Err(Error::Invalid("metric on an empty set".into()));
    }
    Ok(())
}

/// Fraction of positions where `predictions` equals `gold`.
///
/// # Errors
/// Lengths differ or are 0.
pub fn accuracy(predictions: &[usize], gold: &[usize]) -> Result<f64> {
    same_len(predictions.len(), gold.len())?;
    let correct = predictions.iter().zip(gold).filter(|(p, g)| p == g).count();
    Ok(correct as f64 / gold.len() as f64)
}

/// Precision, recall and F1 of one class.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BinaryF1 {
    /// TP / (TP + FP); 0 when nothing was predicted positive.
    pub precision: f64,
    /// TP / (TP + FN); 0 when no gold label is positive.
    pub recall: f64,
    /// Harmonic mean of precision and recall; 0 when both are 0.
    pub f1: f64,
}

/// F1 of class `positive` against all others (scikit-learn `f1_score(average="binary",
/// pos_label=positive, zero_division=0)`).
///
/// # Errors
/// Lengths differ or are 0.
pub fn binary_f1(predictions: &[usize], gold: &[usize], positive: usize) -> Result<BinaryF1> {
    same_len(predictions.len(), gold.len())?;
    let (mut tp, mut fp, mut fn_) = (0usize, 0usize, 0usize);
    for (&p, &g) in predictions.iter().zip(gold) {
        match (p == positive, g == positive) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, true) => fn_ += 1,
            (false, false) => {}
        }
    }
    Ok(prf(tp, tp + fp, tp + fn_))
}

/// Precision, recall, F1 from counts (0 where undefined).
fn prf(correct: usize, predicted: usize, actual: usize) -> BinaryF1 {
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let precision = ratio(correct, predicted);
    let recall = ratio(correct, actual);
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    BinaryF1 {
        precision,
        recall,
        f1,
    }
}

/// Matthews correlation coefficient for any number of classes, as scikit-learn computes it
/// from the confusion matrix (Gorodkin's R_K); 0 when undefined (one side constant).
///
/// # Errors
/// Lengths differ or are 0.
pub fn matthews_corrcoef(predictions: &[usize], gold: &[usize]) -> Result<f64> {
    same_len(predictions.len(), gold.len())?;
    let mut t_sum: HashMap<usize, u64> = HashMap::new();
    let mut p_sum: HashMap<usize, u64> = HashMap::new();
    let mut correct = 0u64;
    for (&p, &g) in predictions.iter().zip(gold) {
        *t_sum.entry(g).or_default() += 1;
        *p_sum.entry(p).or_default() += 1;
        correct += u64::from(p == g);
    }
    let n = gold.len() as f64;
    let dot = |a: &HashMap<usize, u64>, b: &HashMap<usize, u64>| -> f64 {
        a.iter()
            .map(|(k, &v)| v as f64 * b.get(k).copied().unwrap_or(0) as f64)
            .sum()
    };
    let cov_ytyp = correct as f64 * n - dot(&t_sum, &p_sum);
    let cov_ypyp = n * n - dot(&p_sum, &p_sum);
    let cov_ytyt = n * n - dot(&t_sum, &t_sum);
    if cov_ypyp == 0.0 || cov_ytyt == 0.0 {
        return Ok(0.0);
    }
    Ok(cov_ytyp / (cov_ytyt * cov_ypyp).sqrt())
}

/// Pearson correlation; 0 when undefined (a constant input, fewer than 2 points).
///
/// # Errors
/// Lengths differ or are 0, or a value is not finite.
pub fn pearson(x: &[f64], y: &[f64]) -> Result<f64> {
    same_len(x.len(), y.len())?;
    if x.iter().chain(y).any(|v| !v.is_finite()) {
        return Err(Error::Invalid("correlation of a non-finite value".into()));
    }
    let n = x.len() as f64;
    let mx = x.iter().sum::<f64>() / n;
    let my = y.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (dx, dy) = (a - mx, b - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx == 0.0 || syy == 0.0 {
        return Ok(0.0);
    }
    Ok((sxy / (sxx.sqrt() * syy.sqrt())).clamp(-1.0, 1.0))
}

/// 1-based ranks, ties given the average of the ranks they span (SciPy `rankdata("average")`).
pub fn average_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        // positions i..=j share the ranks i+1..=j+1
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = rank;
        }
        i = j + 1;
    }
    ranks
}

/// Spearman rank correlation: Pearson on average ranks; 0 when undefined.
///
/// # Errors
/// As [`pearson`].
pub fn spearman(x: &[f64], y: &[f64]) -> Result<f64> {
    same_len(x.len(), y.len())?;
    if x.iter().chain(y).any(|v| !v.is_finite()) {
        return Err(Error::Invalid("correlation of a non-finite value".into()));
    }
    pearson(&average_ranks(x), &average_ranks(y))
}

/// The median (mean of the two middle values for an even count); `None` for an empty slice.
/// NaNs sort last.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

// ---------------------------------------------------------------------------------------------
// SQuAD

/// The official SQuAD answer normalisation: lower-case, remove ASCII punctuation, remove the
/// articles `a`, `an`, `the` (as whole words), collapse whitespace.
pub fn normalize_answer(text: &str) -> String {
    let lower = text.to_lowercase();
    let no_punct: String = lower
        .chars()
        .filter(|c| !c.is_ascii_punctuation())
        .collect();
    // `re.sub(r"\b(a|an|the)\b", " ", text)`: articles between word boundaries
    let mut no_articles = String::with_capacity(no_punct.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if matches!(word.as_str(), "a" | "an" | "the") {
            out.push(' ');
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in no_punct.chars() {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut no_articles);
            no_articles.push(c);
        }
    }
    flush(&mut word, &mut no_articles);
    no_articles.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether the normalised texts are equal.
pub fn squad_exact(prediction: &str, gold: &str) -> bool {
    normalize_answer(prediction) == normalize_answer(gold)
}

/// Token-overlap F1 of the normalised texts; when either has no token, 1 if both have none,
/// else 0 (the v2.0 script's rule).
pub fn squad_f1(prediction: &str, gold: &str) -> f64 {
    let p = normalize_answer(prediction);
    let g = normalize_answer(gold);
    let p: Vec<&str> = p.split_whitespace().collect();
    let g: Vec<&str> = g.split_whitespace().collect();
    if p.is_empty() || g.is_empty() {
        return f64::from(u8::from(p == g));
    }
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for t in &g {
        *counts.entry(t).or_default() += 1;
    }
    let mut same = 0usize;
    for t in &p {
        if let Some(c) = counts.get_mut(t)
            && *c > 0
        {
            *c -= 1;
            same += 1;
        }
    }
    prf(same, p.len(), g.len()).f1
}

/// SQuAD scores, fractions in `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SquadScores {
    /// Exact match over all questions.
    pub exact: f64,
    /// F1 over all questions.
    pub f1: f64,
    /// Number of questions.
    pub total: usize,
    /// Questions with an answer.
    pub has_answer_total: usize,
    /// Exact match on questions with an answer (`None` if there are none).
    pub has_answer_exact: Option<f64>,
    /// F1 on questions with an answer.
    pub has_answer_f1: Option<f64>,
    /// Unanswerable questions (SQuAD 2.0).
    pub no_answer_total: usize,
    /// Exact match (= F1) on unanswerable questions.
    pub no_answer_exact: Option<f64>,
    /// Predictions missing for a question (scored 0).
    pub missing: usize,
}

/// Scores predictions as the official evaluation scripts do: per question the maximum exact
/// match and F1 over the gold answers (those whose normalised text is not empty); a question
/// without one (unanswerable) has the gold answer `""`. A question without a prediction scores
/// 0, as in v1.1 (the v2.0 script would leave it out); it is counted in `missing`.
///
/// # Errors
/// `examples` is empty.
pub fn squad_evaluate(
    examples: &[SquadExample],
    predictions: &BTreeMap<String, String>,
) -> Result<SquadScores> {
    if examples.is_empty() {
        return Err(Error::Invalid("squad evaluation of no question".into()));
    }
    let (mut exact, mut f1) = (0.0, 0.0);
    let (mut has_exact, mut has_f1, mut has_n) = (0.0, 0.0, 0usize);
    let (mut no_exact, mut no_n) = (0.0, 0usize);
    let mut missing = 0usize;
    for ex in examples {
        let mut gold: Vec<&str> = ex
            .answers
            .iter()
            .map(|a| a.text.as_str())
            .filter(|t| !normalize_answer(t).is_empty())
            .collect();
        let answerable = !gold.is_empty();
        if !answerable {
            gold.push("");
        }
        let (e, f) = match predictions.get(&ex.id) {
            Some(pred) => (
                gold.iter()
                    .map(|g| f64::from(u8::from(squad_exact(pred, g))))
                    .fold(0.0, f64::max),
                gold.iter().map(|g| squad_f1(pred, g)).fold(0.0, f64::max),
            ),
            None => {
                missing += 1;
                (0.0, 0.0)
            }
        };
        exact += e;
        f1 += f;
        if answerable {
            has_exact += e;
            has_f1 += f;
            has_n += 1;
        } else {
            no_exact += e;
            no_n += 1;
        }
    }
    if missing > 0 {
        tracing::warn!(missing, "squad questions without a prediction scored 0");
    }
    let n = examples.len() as f64;
    let mean = |s: f64, k: usize| (k > 0).then(|| s / k as f64);
    Ok(SquadScores {
        exact: exact / n,
        f1: f1 / n,
        total: examples.len(),
        has_answer_total: has_n,
        has_answer_exact: mean(has_exact, has_n),
        has_answer_f1: mean(has_f1, has_n),
        no_answer_total: no_n,
        no_answer_exact: mean(no_exact, no_n),
        missing,
    })
}

// ---------------------------------------------------------------------------------------------
// Entities

/// A labelled span of a tag sequence.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Entity {
    /// Entity type (`PER`, ...; `_` when the tag has none).
    pub kind: String,
    /// First position.
    pub start: usize,
    /// Last position (inclusive).
    pub end: usize,
}

/// Splits a tag into its prefix character and type, as `seqeval`: `B-PER` -> (`B`, `PER`),
/// `O` -> (`O`, `_`).
fn split_tag(tag: &str) -> (char, &str) {
    let mut chars = tag.chars();
    let prefix = chars.next().unwrap_or('O');
    let rest = chars.as_str();
    let kind = rest.split_once('-').map_or(rest, |(_, k)| k);
    (prefix, if kind.is_empty() { "_" } else { kind })
}

fn end_of_chunk(prev_tag: char, tag: char, prev_type: &str, kind: &str) -> bool {
    matches!(prev_tag, 'E' | 'S')
        || (matches!(prev_tag, 'B' | 'I') && matches!(tag, 'B' | 'S' | 'O'))
        || (prev_tag != 'O' && prev_tag != '.' && prev_type != kind)
}

fn start_of_chunk(prev_tag: char, tag: char, prev_type: &str, kind: &str) -> bool {
    matches!(tag, 'B' | 'S')
        || (matches!(prev_tag, 'E' | 'S' | 'O') && matches!(tag, 'E' | 'I'))
        || (tag != 'O' && tag != '.' && prev_type != kind)
}

/// The entities of one tag sequence (IOB1, IOB2/BIO, IOE, IOBES), by `seqeval`'s
/// `get_entities` rules: an `I-X` after `O` or after another type starts an entity.
pub fn get_entities<S: AsRef<str>>(tags: &[S]) -> Vec<Entity> {
    let mut entities = Vec::new();
    let (mut prev_tag, mut prev_type) = ('O', "");
    let mut begin = 0usize;
    let sentinel = std::iter::once(('O', "_"));
    for (i, (tag, kind)) in tags
        .iter()
        .map(|t| split_tag(t.as_ref()))
        .chain(sentinel)
        .enumerate()
    {
        if end_of_chunk(prev_tag, tag, prev_type, kind) {
            entities.push(Entity {
                kind: prev_type.to_owned(),
                start: begin,
                end: i - 1,
            });
        }
        if start_of_chunk(prev_tag, tag, prev_type, kind) {
            begin = i;
        }
        prev_tag = tag;
        prev_type = kind;
    }
    entities
}

/// Micro-averaged entity precision, recall and F1 with the counts behind them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EntityScores {
    /// Correct predicted entities / predicted entities.
    pub precision: f64,
    /// Correct predicted entities / gold entities.
    pub recall: f64,
    /// Harmonic mean (0 when undefined).
    pub f1: f64,
    /// Gold entities.
    pub gold: usize,
    /// Predicted entities.
    pub predicted: usize,
    /// Predicted entities identical to a gold one (type, start and end).
    pub correct: usize,
}

/// Entity-level scores over sentences of tags (`seqeval.metrics` `precision_score`,
/// `recall_score`, `f1_score` in the default, non-strict mode).
///
/// # Errors
/// The number of sentences, or of tags in a sentence, differs.
pub fn entity_scores<S: AsRef<str>, T: AsRef<str>>(
    gold: &[Vec<S>],
    predicted: &[Vec<T>],
) -> Result<EntityScores> {
    if gold.len() != predicted.len() {
        return Err(Error::Invalid(format!(
            "entity scores: {} gold and {} predicted sentences",
            gold.len(),
            predicted.len()
        )));
    }
    let (mut n_gold, mut n_pred, mut correct) = (0, 0, 0);
    for (i, (g, p)) in gold.iter().zip(predicted).enumerate() {
        if g.len() != p.len() {
            return Err(Error::Invalid(format!(
                "entity scores: sentence {i} has {} gold and {} predicted tags",
                g.len(),
                p.len()
            )));
        }
        let g: HashSet<Entity> = get_entities(g).into_iter().collect();
        let p: HashSet<Entity> = get_entities(p).into_iter().collect();
        n_gold += g.len();
        n_pred += p.len();
        correct += g.intersection(&p).count();
    }
    let s = prf(correct, n_pred, n_gold);
    Ok(EntityScores {
        precision: s.precision,
        recall: s.recall,
        f1: s.f1,
        gold: n_gold,
        predicted: n_pred,
        correct,
    })
}
