//! Metric records, the metrics file (JSON Lines) and the AUC.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Metrics of one optimiser step (means over its micro-batches).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepMetrics {
    /// Steps done.
    pub step: u64,
    /// `mlm_loss + disc_weight * disc_loss`.
    pub loss: f64,
    /// Generator cross-entropy at the chosen positions.
    pub mlm_loss: f64,
    /// Discriminator binary cross-entropy over real tokens.
    pub disc_loss: f64,
    /// Generator argmax accuracy at the chosen positions.
    pub gen_accuracy: f64,
    /// Discriminator accuracy over real tokens.
    pub disc_accuracy: f64,
    /// Fraction of real tokens that were replaced.
    pub replaced_fraction: f64,
    /// Learning rate used by this step.
    pub learning_rate: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Tokens (padded batch size x length) per second since the previous step.
    pub tokens_per_sec: f64,
    /// Seconds since the start of this invocation.
    pub elapsed_secs: f64,
    /// The loss scale of the step (f16 training only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_scale: Option<f64>,
}

/// Metrics on the held-out split.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalMetrics {
    /// Steps done.
    pub step: u64,
    /// Generator loss.
    pub mlm_loss: f64,
    /// Discriminator loss.
    pub disc_loss: f64,
    /// Generator accuracy at the chosen positions.
    pub gen_accuracy: f64,
    /// Accuracy of always predicting the most frequent target (the unigram baseline).
    pub unigram_accuracy: f64,
    /// Discriminator accuracy over real tokens.
    pub disc_accuracy: f64,
    /// Precision of "replaced" at threshold 0.5.
    pub precision: f64,
    /// Recall of "replaced" at threshold 0.5.
    pub recall: f64,
    /// Area under the ROC curve of the discriminator's probabilities.
    pub auc: f64,
    /// The AUC of scoring each token by its rarity alone (unigram surprisal over the training
    /// split), on the same tokens: what a discriminator that ignores context reaches. `auc` above
    /// it means the discriminator uses context. Absent in metrics files of older runs.
    #[serde(default)]
    pub rarity_auc: Option<f64>,
    /// The context probe that rarity cannot carry: the mean of the discriminator's AUCs within
    /// bins of tokens of similar frequency ([`crate::eval::binned_auc`]). Absent without the
    /// rarity baseline and in older metrics files.
    #[serde(default)]
    pub binned_auc: Option<f64>,
    /// The rarity scorer's binned AUC, on the same tokens: what is left of rarity within the
    /// bins (near 0.5).
    #[serde(default)]
    pub binned_rarity_auc: Option<f64>,
    /// The second context probe: the discriminator's AUC on the same held-out examples and
    /// positions with every replacement drawn from the training split's unigram distribution
    /// instead of the generator, so that replaced tokens are as rare as the originals.
    #[serde(default)]
    pub unigram_auc: Option<f64>,
    /// The rarity scorer's AUC on the unigram probe (near 0.5 by construction).
    #[serde(default)]
    pub unigram_rarity_auc: Option<f64>,
    /// Fraction of real tokens that were replaced.
    pub replaced_fraction: f64,
    /// Examples evaluated.
    pub examples: usize,
}

/// How far above its rarity baseline a context probe must be for [`EvalMetrics::reads_context`].
pub const CONTEXT_MARGIN: f64 = 0.05;

impl EvalMetrics {
    /// Whether the discriminator reads context: both probes ([`EvalMetrics::binned_auc`] and
    /// [`EvalMetrics::unigram_auc`]) at least [`CONTEXT_MARGIN`] above their rarity baselines.
    /// `None` when the probes were not computed.
    pub fn reads_context(&self) -> Option<bool> {
        let binned = self.binned_auc? - self.binned_rarity_auc?;
        let unigram = self.unigram_auc? - self.unigram_rarity_auc?;
        Some(binned >= CONTEXT_MARGIN && unigram >= CONTEXT_MARGIN)
    }
}

/// ROC AUC of `(score, is_positive)` pairs (ties count one half); 0.5 when either class is
/// absent.
pub fn auc(scored: &[(f32, bool)]) -> f64 {
    let positives = scored.iter().filter(|s| s.1).count();
    let negatives = scored.len() - positives;
    if positives == 0 || negatives == 0 {
        return 0.5;
    }
    let mut sorted: Vec<(f32, bool)> = scored.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Sum of the (average) ranks of the positives.
    let mut rank_sum = 0.0f64;
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1].0 == sorted[i].0 {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += avg_rank * sorted[i..=j].iter().filter(|s| s.1).count() as f64;
        i = j + 1;
    }
    let p = positives as f64;
    (rank_sum - p * (p + 1.0) / 2.0) / (p * negatives as f64)
}

/// The run's `metrics.jsonl`: one record per logged step or evaluation.
pub struct MetricsFile {
    file: std::fs::File,
    path: PathBuf,
}

impl MetricsFile {
    /// Opens the file for a run starting at `start`: a fresh run truncates it; a resumed run
    /// keeps the records up to `start` and drops later ones (written after the checkpoint).
    pub fn open(path: &Path, start: u64) -> Result<Self> {
        let kept = if start == 0 {
            String::new()
        } else {
            std::fs::read_to_string(path)
                .unwrap_or_default()
                .lines()
                .filter(|l| {
                    serde_json::from_str::<serde_json::Value>(l)
                        .ok()
                        .and_then(|v| v["metrics"]["step"].as_u64())
                        .is_some_and(|s| s <= start)
                })
                .map(|l| format!("{l}\n"))
                .collect()
        };
        crate::hf_write(path, kept.as_bytes())?;
        let file = std::fs::OpenOptions::new().append(true).open(path).map_err(|e| Error::io(path, e))?;
        Ok(Self { file, path: path.to_path_buf() })
    }

    /// Appends one record.
    pub fn write(&mut self, value: &serde_json::Value) -> Result<()> {
        writeln!(self.file, "{value}").map_err(|e| Error::io(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_of_known_rankings() {
        assert_eq!(auc(&[(0.1, false), (0.2, false), (0.8, true), (0.9, true)]), 1.0);
        assert_eq!(auc(&[(0.1, true), (0.9, false)]), 0.0);
        // One positive above one of two negatives: 0.5.
        assert_eq!(auc(&[(0.1, false), (0.5, true), (0.9, false)]), 0.5);
        // Ties count one half.
        assert_eq!(auc(&[(0.5, true), (0.5, false)]), 0.5);
        assert_eq!(auc(&[(0.5, true)]), 0.5);
    }
}
