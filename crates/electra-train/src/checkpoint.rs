//! A run's identity and checkpoints: `run.json` (the run id, the vocabulary and the data the
//! run started with), `checkpoints/step-NNNNNNNN/` (model, optimiser, `state.json` naming the
//! run), atomic saving and replacing, pruning of this run's checkpoints only, and the checks a
//! resume must pass.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::Optimizer;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, NamedMpkFileRecorder, Recorder};
use burn::tensor::backend::AutodiffBackend;
use electra_model::{ElectraPreTraining, hf};
use electra_tokenizer::PrepareSettings;
use serde::{Deserialize, Serialize};

use crate::config::PretrainConfig;
use crate::optim::Optim;
use crate::seed::derive_seed;
use crate::{Error, Result};

/// The run's identity file in the run directory.
pub const RUN_FILE: &str = "run.json";
/// The resolved config in the run directory.
pub const CONFIG_FILE: &str = "config.json";
/// The checkpoints' directory in the run directory.
pub const CHECKPOINTS_DIR: &str = "checkpoints";

/// Format 1: `step`, `format`. Format 2 adds `run_id`.
const CHECKPOINT_FORMAT: u32 = 2;

/// What a run directory records about the run that owns it (`run.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// A random id drawn when the run started; every checkpoint of the run carries it.
    pub run_id: String,
    /// Hex SHA-256 of the vocabulary the run trains with.
    pub vocab_sha256: String,
    /// The settings of the prepared data (its `manifest.json`): corpus files and sizes,
    /// vocabulary, length, seed, split.
    pub data: PrepareSettings,
}

impl RunRecord {
    /// A new run over `data` with the vocabulary `vocab_sha256`, with a fresh id.
    #[must_use]
    pub fn new(vocab_sha256: &str, data: PrepareSettings) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default();
        let id = derive_seed(nanos, u64::from(std::process::id()));
        Self { run_id: format!("{id:016x}"), vocab_sha256: vocab_sha256.to_string(), data }
    }

    /// Reads `dir/run.json`; `None` when the directory has none (a run from before run ids).
    ///
    /// # Errors
    /// A `run.json` that cannot be read or parsed.
    pub fn load(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(RUN_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| Error::Checkpoint { path, message: format!("unreadable run record: {e}") }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// Writes `dir/run.json` atomically.
    ///
    /// # Errors
    /// The write.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).unwrap_or_default();
        Ok(hf::write_atomic(&dir.join(RUN_FILE), text.as_bytes())?)
    }

    /// Whether a resumed run may continue this one: the same vocabulary and the same data.
    ///
    /// # Errors
    /// [`Error::Resume`] naming the first difference.
    pub fn check_same_inputs(&self, now: &RunRecord, dir: &Path) -> Result<()> {
        let refuse = |what: String| Err(Error::Resume { dir: dir.to_path_buf(), message: what });
        if self.vocab_sha256 != now.vocab_sha256 {
            return refuse(format!(
                "the run started with the vocabulary sha256 {} but this one has {}",
                self.vocab_sha256, now.vocab_sha256
            ));
        }
        if let Some(diff) = now.data.diff(&self.data) {
            return refuse(format!("the prepared data differs from the run's ({diff})"));
        }
        Ok(())
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct CheckpointState {
    step: u64,
    format: u32,
    #[serde(default)]
    run_id: Option<String>,
    /// The optimiser's loss scale (f16 training).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    loss_scale: Option<crate::optim::LossScale>,
}

/// A complete checkpoint found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// The step it was written after.
    pub step: u64,
    /// Its directory.
    pub dir: PathBuf,
    /// The run that wrote it (`None` for checkpoints from before run ids).
    pub run_id: Option<String>,
}

/// The complete checkpoints under `root` (`step-NNNNNNNN/` with a valid `state.json`), by step.
/// Hidden directories (`.step-*.partial`, `.step-*.old`) are never listed.
///
/// # Errors
/// `root` exists but cannot be listed.
pub fn list_checkpoints(root: &Path) -> Result<Vec<CheckpointInfo>> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(root, e)),
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let dir = entry.path();
        let Some(step) = dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("step-"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(dir.join("state.json")) else { continue };
        let Ok(state) = serde_json::from_str::<CheckpointState>(&text) else { continue };
        if state.step == step && (1..=CHECKPOINT_FORMAT).contains(&state.format) {
            found.push(CheckpointInfo { step, dir, run_id: state.run_id });
        }
    }
    found.sort_by_key(|c| c.step);
    Ok(found)
}

/// The newest complete checkpoint under `root` of the run `run_id` (with `None`, of any run).
///
/// # Errors
/// As [`list_checkpoints`].
pub fn latest_checkpoint(root: &Path, run_id: Option<&str>) -> Result<Option<CheckpointInfo>> {
    Ok(list_checkpoints(root)?.into_iter().rev().find(|c| run_id.is_none() || c.run_id.as_deref() == run_id))
}

/// A pre-training module and its optimiser.
type ModelAndOptim<B> = (ElectraPreTraining<B>, Optim<ElectraPreTraining<B>, B>);

/// Reads the model and optimiser (with its loss scale) of a checkpoint into `model` and `optim`.
///
/// # Errors
/// [`Error::Checkpoint`] when the files do not match the model.
pub fn load_checkpoint<B: AutodiffBackend>(
    dir: &Path,
    model: ElectraPreTraining<B>,
    optim: Optim<ElectraPreTraining<B>, B>,
    device: &B::Device,
) -> Result<ModelAndOptim<B>> {
    let recorder = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
    let bad = |e: String| Error::Checkpoint { path: dir.to_path_buf(), message: e };
    let model = model.load_file(dir.join("model"), &recorder, device).map_err(|e| bad(e.to_string()))?;
    let record = recorder.load(dir.join("optimizer"), device).map_err(|e| bad(e.to_string()))?;
    let mut optim = optim.load_record(record);
    let state = dir.join("state.json");
    let text = std::fs::read_to_string(&state).map_err(|e| Error::io(&state, e))?;
    optim.loss_scale = serde_json::from_str::<CheckpointState>(&text).map_err(|e| bad(format!("state.json: {e}")))?.loss_scale;
    Ok((model, optim))
}

/// Writes a checkpoint of step `step` for the run `run_id` atomically: everything goes to a
/// hidden `.step-N.partial` directory first. A checkpoint already at that step is replaced
/// without a moment where neither exists on disk: the old one is renamed aside
/// (`.step-N.old`), the new one renamed in, then the old one deleted. Then this run's oldest
/// checkpoints beyond `keep` are removed, never the one just written and never another run's.
///
/// # Errors
/// Serialising or writing; on error the partial directory is removed and an existing
/// checkpoint at that step is kept.
pub fn save_checkpoint<B: AutodiffBackend>(
    root: &Path,
    step: u64,
    run_id: &str,
    model: &ElectraPreTraining<B>,
    optim: &Optim<ElectraPreTraining<B>, B>,
    keep: usize,
) -> Result<PathBuf> {
    let name = format!("step-{step:08}");
    let tmp = root.join(format!(".{name}.partial"));
    let old = root.join(format!(".{name}.old"));
    let dir = root.join(&name);
    std::fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
    restore_interrupted_replace(&dir, &old)?;
    let fail = |e: String| Error::Checkpoint { path: tmp.clone(), message: e };
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let result = (|| -> Result<()> {
        // Serialised in memory (the same bytes NamedMpkFileRecorder writes and reads), then
        // written and synced by write_atomic, so that a failed write (a full disk, say) is an
        // I/O error naming the file and the OS's reason rather than an encoder error.
        let recorder = NamedMpkBytesRecorder::<FullPrecisionSettings>::new();
        let model_bytes = recorder.record(model.clone().into_record(), ()).map_err(|e| fail(e.to_string()))?;
        hf::write_atomic(&tmp.join("model.mpk"), &model_bytes)?;
        drop(model_bytes);
        let optim_bytes = recorder.record(optim.to_record(), ()).map_err(|e| fail(e.to_string()))?;
        hf::write_atomic(&tmp.join("optimizer.mpk"), &optim_bytes)?;
        drop(optim_bytes);
        let state =
            CheckpointState { step, format: CHECKPOINT_FORMAT, run_id: Some(run_id.to_string()), loss_scale: optim.loss_scale };
        hf::write_atomic(&tmp.join("state.json"), serde_json::to_string(&state).unwrap_or_default().as_bytes())?;
        replace_dir(&tmp, &dir, &old)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    tracing::info!(step, dir = %dir.display(), "checkpoint written");
    prune(root, keep, run_id, step);
    Ok(dir)
}

/// Moves `new` to `dir`; an existing `dir` is renamed to `old` first and deleted last.
fn replace_dir(new: &Path, dir: &Path, old: &Path) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        // Never replace what is not a checkpoint directory.
        return Err(Error::Checkpoint { path: dir.to_path_buf(), message: "exists and is not a directory".into() });
    }
    let replacing = dir.exists();
    if replacing {
        if old.exists() {
            std::fs::remove_dir_all(old).map_err(|e| Error::io(old, e))?;
        }
        std::fs::rename(dir, old).map_err(|e| Error::io(dir, e))?;
    }
    if let Err(e) = std::fs::rename(new, dir) {
        if replacing {
            // Put the good checkpoint back.
            let _ = std::fs::rename(old, dir);
        }
        return Err(Error::io(dir, e));
    }
    if replacing && let Err(e) = std::fs::remove_dir_all(old) {
        tracing::warn!(dir = %old.display(), "cannot remove the replaced checkpoint: {e}");
    }
    Ok(())
}

/// A process killed between the two renames of [`replace_dir`] leaves `old` and no `dir`:
/// put `old` back. With both present, `dir` is the complete new one and `old` is stale.
fn restore_interrupted_replace(dir: &Path, old: &Path) -> Result<()> {
    if !old.exists() {
        return Ok(());
    }
    if dir.exists() {
        std::fs::remove_dir_all(old).map_err(|e| Error::io(old, e))
    } else {
        tracing::warn!(dir = %dir.display(), "restoring a checkpoint whose replacement was interrupted");
        std::fs::rename(old, dir).map_err(|e| Error::io(dir, e))
    }
}

/// Removes the run `run_id`'s oldest checkpoints beyond `keep` (at least the one just written,
/// `written`, is always kept); other runs' checkpoints are never touched.
fn prune(root: &Path, keep: usize, run_id: &str, written: u64) {
    let Ok(all) = list_checkpoints(root) else { return };
    let mine: Vec<CheckpointInfo> = all
        .into_iter()
        .filter(|c| c.run_id.as_deref() == Some(run_id) && c.step != written)
        .collect();
    // `keep` counts the one just written.
    let excess = mine.len().saturating_sub(keep.saturating_sub(1));
    for c in mine.into_iter().take(excess) {
        if let Err(e) = std::fs::remove_dir_all(&c.dir) {
            tracing::warn!(dir = %c.dir.display(), "cannot remove old checkpoint: {e}");
        }
    }
}

/// The config a run directory was started with (`config.json`).
///
/// # Errors
/// [`Error::Resume`] when it is missing or does not parse.
pub fn saved_config(dir: &Path) -> Result<PretrainConfig> {
    let path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::Resume {
        dir: dir.to_path_buf(),
        message: format!("cannot read {}: {e}; the checkpoint cannot be matched to a config", path.display()),
    })?;
    serde_json::from_str(&text).map_err(|e| Error::Resume {
        dir: dir.to_path_buf(),
        message: format!("{} does not parse as a training config: {e}", path.display()),
    })
}

/// Checks that `config` may continue the run saved in `dir` from `checkpoint`: the saved
/// config equals it except for `steps`, and the checkpoint's step is not past `config.steps`.
///
/// # Errors
/// [`Error::Resume`] naming the first difference.
pub fn check_resumable(dir: &Path, config: &PretrainConfig, checkpoint: &CheckpointInfo) -> Result<()> {
    let refuse = |message: String| Err(Error::Resume { dir: dir.to_path_buf(), message });
    if checkpoint.step > config.steps {
        return refuse(format!(
            "its newest checkpoint ({}) is at step {}, past this config's {} steps; raise `steps` (or --steps) to at least {}",
            checkpoint.dir.display(),
            checkpoint.step,
            config.steps,
            checkpoint.step
        ));
    }
    let saved = saved_config(dir)?;
    let comparable = PretrainConfig { steps: config.steps, ..saved };
    if &comparable != config {
        let diff = config_diff(&comparable, config).unwrap_or_else(|| "settings differ".into());
        return refuse(format!(
            "the config differs from the one the run started with ({diff}); only `steps` may change"
        ));
    }
    Ok(())
}

/// The first field that differs between two configs, as `"name: saved X, now Y"`.
fn config_diff(saved: &PretrainConfig, now: &PretrainConfig) -> Option<String> {
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(saved), serde_json::to_value(now))
    else {
        return None;
    };
    a.iter().find_map(|(key, was)| {
        let is = b.get(key).unwrap_or(&serde_json::Value::Null);
        (was != is).then(|| format!("{key}: saved {was}, now {is}"))
    })
}

#[cfg(test)]
mod tests {
    use burn::backend::{Autodiff, Flex};
    use electra_model::{ElectraConfig, PreTrainingConfig};

    use super::*;
    use crate::optim::ElectraAdam;

    type B = Autodiff<Flex>;

    fn tiny_model(seed: u64) -> ElectraPreTraining<B> {
        let mut c = ElectraConfig::small();
        c.vocab_size = 20;
        c.embedding_size = Some(4);
        c.hidden_size = 4;
        c.num_hidden_layers = 1;
        c.num_attention_heads = 1;
        c.intermediate_size = 8;
        c.max_position_embeddings = 8;
        let cfg = PreTrainingConfig::new(c, 1.0).unwrap_or_else(|e| panic!("{e}"));
        ElectraPreTraining::<B>::init(&cfg, seed, &Default::default()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn save(root: &Path, step: u64, run: &str, model: &ElectraPreTraining<B>, keep: usize) -> PathBuf {
        let optim = ElectraAdam::new(0.9, 0.999, 1e-6, 0.0, false).init::<B, ElectraPreTraining<B>>();
        save_checkpoint(root, step, run, model, &optim, keep).unwrap_or_else(|e| panic!("{e}"))
    }

    fn word_table(m: &ElectraPreTraining<B>) -> Vec<f32> {
        electra_model::input::to_host_f32(m.embeddings.word_table())
    }

    fn hidden_entries(root: &Path) -> Vec<String> {
        let rd = std::fs::read_dir(root).unwrap_or_else(|e| panic!("{e}"));
        rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with('.')).collect()
    }

    #[test]
    fn the_f16_loss_scale_is_saved_and_loaded_with_the_checkpoint() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = tmp.path().join("checkpoints");
        let adam = || ElectraAdam::new(0.9, 0.999, 1e-6, 0.0, false).init::<B, ElectraPreTraining<B>>();
        let mut optim = adam();
        let scale = crate::optim::LossScale { scale: 1024.0, good_steps: 7 };
        optim.loss_scale = Some(scale);
        let dir = save_checkpoint(&root, 3, "run", &tiny_model(1), &optim, 3).unwrap_or_else(|e| panic!("{e}"));
        let (_, loaded) = load_checkpoint(&dir, tiny_model(2), adam(), &Default::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(loaded.loss_scale, Some(scale));
        // A checkpoint without one (f32 and bf16 runs) loads as none, even over a set one.
        let plain = save(&root, 4, "run", &tiny_model(1), 3);
        let state = std::fs::read_to_string(plain.join("state.json")).unwrap_or_default();
        assert!(!state.contains("loss_scale"), "{state}");
        let (_, loaded) = load_checkpoint(&plain, tiny_model(2), optim, &Default::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(loaded.loss_scale, None);
    }

    #[test]
    fn re_saving_a_step_replaces_it_and_leaves_nothing_aside() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = tmp.path().join("checkpoints");
        let (a, b) = (tiny_model(1), tiny_model(2));
        assert_ne!(word_table(&a), word_table(&b));
        let dir = save(&root, 2, "run", &a, 3);
        save(&root, 2, "run", &b, 3);
        let optim = ElectraAdam::new(0.9, 0.999, 1e-6, 0.0, false).init::<B, ElectraPreTraining<B>>();
        let (loaded, _) = load_checkpoint(&dir, tiny_model(3), optim, &Default::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(word_table(&loaded), word_table(&b), "the second save did not replace the first");
        assert!(hidden_entries(&root).is_empty(), "{:?}", hidden_entries(&root));
    }

    #[test]
    fn a_replace_interrupted_between_its_renames_is_undone() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = tmp.path().join("checkpoints");
        let dir = save(&root, 4, "run", &tiny_model(1), 3);
        // Killed after renaming the good checkpoint aside, before renaming the new one in.
        let old = root.join(".step-00000004.old");
        std::fs::rename(&dir, &old).unwrap_or_else(|e| panic!("{e}"));
        assert!(latest_checkpoint(&root, Some("run")).unwrap_or_else(|e| panic!("{e}")).is_none());
        restore_interrupted_replace(&dir, &old).unwrap_or_else(|e| panic!("{e}"));
        let latest = latest_checkpoint(&root, Some("run")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(latest.map(|c| c.step), Some(4));
        assert!(!old.exists());
    }

    #[test]
    fn a_resume_with_another_vocabulary_or_data_is_refused_naming_both() {
        let dir = std::path::Path::new("runs/x");
        let data: PrepareSettings = serde_json::from_value(serde_json::json!({
            "vocab_sha256": "aa", "vocab_size": 10, "lowercase": true, "strip_accents": true,
            "special_tokens": {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4},
            "max_seq_len": 32, "dtype": "u16", "seed": 0, "validation_fraction": 0.1,
            "shard_size": 10, "chunk_bytes": 100, "inputs": []
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let saved = RunRecord::new("aa", data.clone());
        assert!(saved.check_same_inputs(&RunRecord::new("aa", data.clone()), dir).is_ok());
        let err = saved.check_same_inputs(&RunRecord::new("bb", data.clone()), dir).err().map(|e| e.to_string());
        let msg = err.unwrap_or_default();
        assert!(msg.contains("vocabulary sha256 aa") && msg.contains("this one has bb"), "{msg}");
        let other = PrepareSettings { seed: 5, ..data };
        let err = saved.check_same_inputs(&RunRecord::new("aa", other), dir).err().map(|e| e.to_string());
        let msg = err.unwrap_or_default();
        assert!(msg.contains("prepared data differs") && msg.contains("seed"), "{msg}");
    }

    #[test]
    fn pruning_keeps_the_checkpoint_just_written_and_other_runs_checkpoints() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = tmp.path().join("checkpoints");
        let m = tiny_model(1);
        // Another run's checkpoints at higher steps than this run will reach.
        save(&root, 200, "other", &m, 5);
        save(&root, 300, "other", &m, 5);
        for step in [50, 100, 120] {
            save(&root, step, "mine", &m, 2);
        }
        let steps = |run: &str| -> Vec<u64> {
            list_checkpoints(&root)
                .unwrap_or_else(|e| panic!("{e}"))
                .into_iter()
                .filter(|c| c.run_id.as_deref() == Some(run))
                .map(|c| c.step)
                .collect()
        };
        assert_eq!(steps("mine"), [100, 120]);
        assert_eq!(steps("other"), [200, 300]);
        // keep = 1 keeps exactly the one just written, even below another run's steps.
        save(&root, 130, "mine", &m, 1);
        assert_eq!(steps("mine"), [130]);
        assert_eq!(latest_checkpoint(&root, Some("mine")).unwrap_or_else(|e| panic!("{e}")).map(|c| c.step), Some(130));
    }
}
