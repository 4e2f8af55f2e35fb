//! HuggingFace model directories: import and export.
//!
//! A model directory holds `config.json` and `model.safetensors` (or `pytorch_model.bin`, read
//! with the `pytorch` feature, on by default), and usually `vocab.txt` / `tokenizer.json`. Tensor names are HuggingFace's, which the modules use
//! directly; the only mappings applied here are:
//!
//! | checkpoint                                   | this crate                          |
//! |----------------------------------------------|-------------------------------------|
//! | `electra.` / `bert.` / no prefix             | detected, then stripped             |
//! | dense `weight` `[out, in]`                   | `Linear::weight` `[in, out]`        |
//! | `LayerNorm.gamma` / `LayerNorm.beta` (old TF) | `LayerNorm.weight` / `LayerNorm.bias` |
//! | `generator_lm_head.weight`, `cls.predictions.decoder.weight` | tied: not stored, checked equal to the word embeddings |
//! | `cls.predictions.decoder.bias`               | same tensor as `cls.predictions.bias` |
//! | `embeddings.position_ids` (a buffer)         | ignored                             |
//!
//! A tensor the model needs that is absent or mis-shaped is an error naming it and both shapes;
//! checkpoint tensors the model does not use (a discriminator head when loading a bare encoder,
//! say) are listed in an `info` log.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::tensor::TensorData;
use safetensors::{Dtype, SafeTensors};

use crate::config::ElectraConfig;
use crate::model::{Discriminator, ElectraModel, Generator};
use crate::params::{Kind, ParamSink, ParamSource, transpose};
use crate::{Error, Result};

/// Weight file names, in order of preference.
pub const SAFETENSORS_FILE: &str = "model.safetensors";
/// The PyTorch pickle weights file.
pub const PYTORCH_FILE: &str = "pytorch_model.bin";
/// The HuggingFace config file.
pub const CONFIG_FILE: &str = "config.json";
/// Tokenizer files copied along with a model.
pub const TOKENIZER_FILES: [&str; 4] =
    ["vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"];

#[derive(Debug)]
struct RawTensor {
    shape: Vec<usize>,
    values: Vec<f32>,
}

/// All tensors of one checkpoint file, as f32, by name.
#[derive(Debug)]
pub struct TensorMap {
    file: String,
    tensors: HashMap<String, RawTensor>,
    used: HashSet<String>,
    prefix: String,
}

fn floats_from_bytes(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
    match dtype {
        Dtype::F32 => Some(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()),
        Dtype::F16 => Some(
            bytes.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        ),
        Dtype::BF16 => Some(
            bytes.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        ),
        Dtype::F64 => Some(
            bytes
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
                .collect(),
        ),
        _ => None,
    }
}

impl TensorMap {
    fn new(file: &Path, tensors: HashMap<String, RawTensor>) -> Self {
        let prefix = ["electra", "bert"]
            .into_iter()
            .find(|p| tensors.keys().any(|k| k.starts_with(&format!("{p}.embeddings."))))
            .unwrap_or("")
            .to_string();
        Self { file: file.display().to_string(), tensors, used: HashSet::new(), prefix }
    }

    /// Reads a `.safetensors` file (f32, f16, bf16 or f64 tensors).
    pub fn read_safetensors(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| Error::BadCheckpoint {
            path: path.to_path_buf(),
            message: format!("not a safetensors file: {e}"),
        })?;
        let mut tensors = HashMap::new();
        for (name, view) in st.tensors() {
            // Integer buffers (position_ids) are never parameters.
            let Some(values) = floats_from_bytes(view.dtype(), view.data()) else {
                tracing::debug!(tensor = %name, dtype = ?view.dtype(), "skipping non-float tensor");
                continue;
            };
            tensors.insert(name, RawTensor { shape: view.shape().to_vec(), values });
        }
        Ok(Self::new(path, tensors))
    }

    /// Reads a PyTorch `pytorch_model.bin` (zip or legacy pickle).
    ///
    /// # Errors
    /// [`Error::PytorchDisabled`] in a build without the `pytorch` feature.
    #[cfg(not(feature = "pytorch"))]
    pub fn read_pytorch(path: &Path) -> Result<Self> {
        Err(Error::PytorchDisabled(path.to_path_buf()))
    }

    /// Reads a PyTorch `pytorch_model.bin` (zip or legacy pickle; the `pytorch` feature, on by
    /// default).
    ///
    /// # Errors
    /// The file is not a readable PyTorch checkpoint.
    #[cfg(feature = "pytorch")]
    pub fn read_pytorch(path: &Path) -> Result<Self> {
        let reader = burn_store::pytorch::PytorchReader::new(path).map_err(|e| Error::BadCheckpoint {
            path: path.to_path_buf(),
            message: format!("not a readable PyTorch checkpoint: {e}"),
        })?;
        let mut tensors = HashMap::new();
        for (name, snapshot) in reader.into_tensors() {
            if !snapshot.dtype.is_float() {
                continue;
            }
            let data = snapshot.to_data().map_err(|e| Error::BadCheckpoint {
                path: path.to_path_buf(),
                message: format!("tensor `{name}`: {e:?}"),
            })?;
            let shape = data.shape.to_vec();
            let values = data.convert::<f32>().to_vec::<f32>().map_err(|e| Error::BadCheckpoint {
                path: path.to_path_buf(),
                message: format!("tensor `{name}`: {e:?}"),
            })?;
            tensors.insert(name, RawTensor { shape, values });
        }
        Ok(Self::new(path, tensors))
    }

    /// Reads the weights of a model directory (`model.safetensors`, else `pytorch_model.bin`,
    /// which needs the `pytorch` feature: without it, [`Error::PytorchDisabled`]).
    pub fn read_dir(dir: &Path) -> Result<Self> {
        let st = dir.join(SAFETENSORS_FILE);
        if st.is_file() {
            return Self::read_safetensors(&st);
        }
        let pt = dir.join(PYTORCH_FILE);
        if pt.is_file() {
            return Self::read_pytorch(&pt);
        }
        Err(Error::NoWeights(dir.to_path_buf()))
    }

    /// The detected model prefix: `electra`, `bert` or empty.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Number of tensors in the file.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether the file holds no tensors.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    fn resolve(&self, name: &str) -> Option<String> {
        if self.tensors.contains_key(name) {
            return Some(name.to_string());
        }
        // TF-era BERT checkpoints name LayerNorm parameters gamma/beta.
        let alias = if let Some(stem) = name.strip_suffix("LayerNorm.weight") {
            format!("{stem}LayerNorm.gamma")
        } else if let Some(stem) = name.strip_suffix("LayerNorm.bias") {
            format!("{stem}LayerNorm.beta")
        } else if name == "cls.predictions.bias" {
            "cls.predictions.decoder.bias".to_string()
        } else {
            return None;
        };
        self.tensors.contains_key(&alias).then_some(alias)
    }

    /// Names the model did not use, ignoring buffers and tied duplicates.
    fn unused(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .tensors
            .keys()
            .filter(|k| !self.used.contains(*k))
            .map(String::as_str)
            .filter(|k| {
                !k.ends_with("position_ids")
                    && *k != "generator_lm_head.weight"
                    && *k != "cls.predictions.decoder.weight"
                    && *k != "cls.predictions.decoder.bias"
            })
            .collect();
        names.sort_unstable();
        names
    }

    /// Checks that a tied output weight, if stored, equals the word embeddings (read back from
    /// the device only when the checkpoint stores one).
    fn check_tied(&self, word_table: impl FnOnce() -> TensorData) {
        let stored: Vec<(&str, &RawTensor)> = ["generator_lm_head.weight", "cls.predictions.decoder.weight"]
            .into_iter()
            .filter_map(|name| self.tensors.get(name).map(|t| (name, t)))
            .collect();
        if stored.is_empty() {
            return;
        }
        let table = word_table();
        for (tied, t) in stored {
            let same = table.as_slice::<f32>().map(|w| w == t.values.as_slice()).unwrap_or(false);
            if !same {
                tracing::warn!(
                    file = %self.file,
                    "`{tied}` differs from the word embeddings; the output layer is tied to the embeddings as in HuggingFace, so it is ignored"
                );
            }
        }
    }

    /// Logs (at `info`) the tensors of the file that no `take` used, naming `what` was loaded.
    pub fn report_unused(&self, what: &str) {
        let unused = self.unused();
        if !unused.is_empty() {
            tracing::info!(
                file = %self.file,
                "{} tensors not used by {what}: {}",
                unused.len(),
                unused.join(", ")
            );
        }
    }
}

impl ParamSource for TensorMap {
    fn take(&mut self, name: &str, shape: &[usize], kind: Kind) -> Result<TensorData> {
        let expected: Vec<usize> =
            if kind == Kind::Dense { vec![shape[1], shape[0]] } else { shape.to_vec() };
        let Some(key) = self.resolve(name) else {
            return Err(Error::MissingTensor { file: self.file.clone(), name: name.to_string(), expected });
        };
        let raw = &self.tensors[&key];
        if raw.shape != expected {
            return Err(Error::ShapeMismatch {
                file: self.file.clone(),
                name: key,
                expected,
                found: raw.shape.clone(),
            });
        }
        let values = if kind == Kind::Dense {
            transpose(&raw.values, expected[0], expected[1])
        } else {
            raw.values.clone()
        };
        self.used.insert(key);
        Ok(TensorData::new(values, shape.to_vec()))
    }

    fn contains(&self, name: &str) -> bool {
        self.resolve(name).is_some()
    }
}

/// Collects tensors in HuggingFace names and PyTorch layout, for writing.
#[derive(Debug, Default)]
pub struct TensorCollector {
    tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
}

impl ParamSink for TensorCollector {
    fn put(&mut self, name: &str, data: TensorData, kind: Kind) {
        let shape = data.shape.to_vec();
        let values = data.to_vec::<f32>().unwrap_or_default();
        let (shape, values) = if kind == Kind::Dense {
            (vec![shape[1], shape[0]], transpose(&values, shape[0], shape[1]))
        } else {
            (shape, values)
        };
        self.tensors.insert(name.to_string(), (shape, values));
    }
}

impl TensorCollector {
    /// The collected tensor names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.tensors.keys().map(String::as_str).collect()
    }

    /// Serialises the tensors as safetensors bytes (f32, metadata `format: pt`, which
    /// `transformers` requires).
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = self
            .tensors
            .iter()
            .map(|(n, (s, v))| (n.clone(), s.clone(), v.iter().flat_map(|x| x.to_le_bytes()).collect()))
            .collect();
        let views = bytes
            .iter()
            .map(|(n, s, b)| {
                safetensors::tensor::TensorView::new(Dtype::F32, s.clone(), b).map(|v| (n.clone(), v))
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::BadCheckpoint { path: PathBuf::new(), message: e.to_string() })?;
        let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
        safetensors::serialize(views, Some(metadata))
            .map_err(|e| Error::BadCheckpoint { path: PathBuf::new(), message: e.to_string() })
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, flushed to disk,
/// then renamed over the target. A crash leaves either the old file or the new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// Reads and validates `DIR/config.json`.
pub fn load_config(dir: &Path) -> Result<ElectraConfig> {
    ElectraConfig::from_file(dir.join(CONFIG_FILE))
}

/// Loads a bare encoder from any ELECTRA or BERT directory (`ElectraModel`, `BertModel`, or the
/// encoder part of `ElectraForPreTraining`, `ElectraForMaskedLM`, `BertForMaskedLM`, ...).
pub fn load_encoder<B: Backend>(dir: &Path, device: &B::Device) -> Result<ElectraModel<B>> {
    let config = load_config(dir)?;
    let mut map = TensorMap::read_dir(dir)?;
    let prefix = map.prefix().to_string();
    let model = ElectraModel::build(&config, &mut map, &prefix, device)?;
    map.report_unused("the encoder");
    Ok(model)
}

/// Loads a discriminator (`ElectraForPreTraining`).
pub fn load_discriminator<B: Backend>(dir: &Path, device: &B::Device) -> Result<Discriminator<B>> {
    let config = load_config(dir)?;
    let mut map = TensorMap::read_dir(dir)?;
    let prefix = map.prefix().to_string();
    let model = Discriminator::build(&config, &mut map, &prefix, device)?;
    map.report_unused("the discriminator");
    Ok(model)
}

/// Loads a generator (`ElectraForMaskedLM` or `BertForMaskedLM`), with the size from the
/// directory's own config.
pub fn load_generator<B: Backend>(dir: &Path, device: &B::Device) -> Result<Generator<B>> {
    let config = load_config(dir)?;
    let mut map = TensorMap::read_dir(dir)?;
    let prefix = map.prefix().to_string();
    let model = Generator::build(&config, &mut map, &prefix, device)?;
    map.check_tied(|| model.electra.embeddings.word_table().into_data().convert::<f32>());
    map.report_unused("the generator");
    Ok(model)
}

/// Writes `tensors` as `DIR/model.safetensors` and `config` as `DIR/config.json` with the given
/// HuggingFace architecture name, each atomically.
pub fn save_dir(dir: &Path, config: &ElectraConfig, architecture: &str, tensors: &TensorCollector) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    write_atomic(&dir.join(SAFETENSORS_FILE), &tensors.to_safetensors()?)?;
    write_atomic(&dir.join(CONFIG_FILE), config.to_json(architecture).as_bytes())?;
    tracing::info!(dir = %dir.display(), architecture, tensors = tensors.tensors.len(), "saved model");
    Ok(())
}

/// The tensors of an encoder as they would be written (HF names, PyTorch layout).
pub fn collect_encoder<B: Backend>(model: &ElectraModel<B>) -> TensorCollector {
    let mut c = TensorCollector::default();
    model.visit("", &mut c);
    c
}

/// Writes a bare encoder as `ElectraModel` / `BertModel`.
pub fn save_encoder<B: Backend>(model: &ElectraModel<B>, dir: &Path) -> Result<()> {
    let arch = if model.config.is_bert() { "BertModel" } else { "ElectraModel" };
    save_dir(dir, &model.config, arch, &collect_encoder(model))
}

/// The tensors of a discriminator as they would be written.
pub fn collect_discriminator<B: Backend>(model: &Discriminator<B>) -> TensorCollector {
    let mut c = TensorCollector::default();
    model.visit("electra", &mut c);
    c
}

/// Writes a discriminator as `ElectraForPreTraining`.
pub fn save_discriminator<B: Backend>(model: &Discriminator<B>, dir: &Path) -> Result<()> {
    save_dir(dir, model.config(), "ElectraForPreTraining", &collect_discriminator(model))
}

/// The tensors of a generator as they would be written (the tied output weight is not stored,
/// as `transformers` does).
pub fn collect_generator<B: Backend>(model: &Generator<B>) -> TensorCollector {
    let mut c = TensorCollector::default();
    let prefix = if model.config().is_bert() { "bert" } else { "electra" };
    model.visit(prefix, &mut c);
    c
}

/// Writes a generator as `ElectraForMaskedLM` / `BertForMaskedLM`.
pub fn save_generator<B: Backend>(model: &Generator<B>, dir: &Path) -> Result<()> {
    let arch = if model.config().is_bert() { "BertForMaskedLM" } else { "ElectraForMaskedLM" };
    save_dir(dir, model.config(), arch, &collect_generator(model))
}

/// Copies the tokenizer files that exist in `from` (vocab.txt, tokenizer.json, ...) to `to`.
pub fn copy_tokenizer_files(from: &Path, to: &Path) -> Result<usize> {
    let mut n = 0;
    for name in TOKENIZER_FILES {
        let src = from.join(name);
        if src.is_file() {
            let bytes = std::fs::read(&src).map_err(|e| Error::io(&src, e))?;
            write_atomic(&to.join(name), &bytes)?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `pytorch_model.bin` is read with the `pytorch` feature (here: refused as not a
    /// checkpoint) and refused naming the feature without it.
    #[test]
    fn a_pytorch_bin_needs_the_pytorch_feature() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(PYTORCH_FILE), b"not a pickle").expect("write");
        let e = TensorMap::read_dir(dir.path()).expect_err("no checkpoint");
        if cfg!(feature = "pytorch") {
            assert!(matches!(e, Error::BadCheckpoint { .. }), "{e}");
        } else {
            assert!(matches!(e, Error::PytorchDisabled(_)), "{e}");
            assert!(e.to_string().contains("`pytorch` feature"), "{e}");
        }
    }
}
