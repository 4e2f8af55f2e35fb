//! The on-disk format of a prepared pre-training dataset, its writer and its reader.
//!
//! # Layout
//!
//! A prepared dataset is a directory holding `manifest.json` and, per split (`train`,
//! `validation`), shards numbered from 0:
//!
//! - `{split}-{NNNNN}.ids` — the token ids of the shard's examples, concatenated without
//!   padding (`[CLS] A [SEP] (B [SEP])` each), as little-endian `u16` when the vocabulary has at
//!   most 65,536 entries and `u32` otherwise ([`Dtype`], recorded in the manifest). No header:
//!   `numpy.fromfile(path, "<u2")` reads it.
//! - `{split}-{NNNNN}.idx` — one 16-byte little-endian record per example:
//!   `start: u64` (offset of its first token in the `.ids` file, in tokens), `len: u32`
//!   (tokens), `segment_b_start: u32` (index within the example of the first token of type 1;
//!   equal to `len` when there is no segment B).
//!
//! Both files are flat arrays of fixed-size little-endian values, so they can be memory-mapped
//! (`numpy.memmap(path, dtype=[("start","<u8"),("len","<u4"),("b","<u4")])`). This crate reads
//! them with positioned reads instead (the workspace forbids `unsafe`, which mapping needs);
//! the OS page cache makes repeated reads as cheap.
//!
//! `manifest.json` ([`Manifest`]) records the format version, the vocabulary's SHA-256
//! ([`crate::WordPieceTokenizer::vocab_sha256`]), the vocabulary size, `max_seq_len`, the dtype,
//! the settings that determine the content, document/example/token counts per split and every
//! shard with its example count and SHA-256 checksums.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::corpus::{InputFile, ReadStats};
use crate::error::{Error, Result};
use crate::packing::Example;
use crate::tokenizer::{SpecialTokens, hex};

/// The manifest's `format` value.
pub const FORMAT_NAME: &str = "electra-pretraining-shards";
/// The current format version.
pub const FORMAT_VERSION: u32 = 1;
/// The manifest's file name.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Bytes per index record.
pub const INDEX_RECORD_BYTES: usize = 16;

/// The integer type of stored token ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// Little-endian `u16` (vocabularies of at most 65,536 entries).
    U16,
    /// Little-endian `u32`.
    U32,
}

impl Dtype {
    /// `U16` when every id of a vocabulary of `vocab_size` entries fits in 16 bits.
    pub fn for_vocab_size(vocab_size: usize) -> Self {
        if vocab_size <= 1 << 16 {
            Dtype::U16
        } else {
            Dtype::U32
        }
    }

    /// Bytes per id.
    pub fn width(self) -> usize {
        match self {
            Dtype::U16 => 2,
            Dtype::U32 => 4,
        }
    }
}

/// A dataset split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Training examples.
    Train,
    /// Held-out examples (whole documents are held out).
    Validation,
}

impl Split {
    /// `"train"` or `"validation"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Validation => "validation",
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finished shard.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShardInfo {
    /// Its split.
    pub split: Split,
    /// Its number within the split.
    pub index: usize,
    /// The ids file name (relative to the dataset directory).
    pub ids_file: String,
    /// The index file name.
    pub index_file: String,
    /// Number of examples.
    pub examples: u64,
    /// Number of tokens (`[CLS]`/`[SEP]` included, no padding).
    pub tokens: u64,
    /// Hex SHA-256 of the ids file.
    pub ids_sha256: String,
    /// Hex SHA-256 of the index file.
    pub index_sha256: String,
}

/// The settings that determine a prepared dataset's content.
///
/// Two preparations with equal settings produce byte-identical shards, whatever the number of
/// workers.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PrepareSettings {
    /// Hex SHA-256 of the vocabulary (see [`crate::WordPieceTokenizer::vocab_sha256`]).
    pub vocab_sha256: String,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Whether text was lower-cased.
    pub lowercase: bool,
    /// Whether accents were stripped.
    pub strip_accents: bool,
    /// The special token ids.
    pub special_tokens: SpecialTokens,
    /// Maximum example length, `[CLS]`/`[SEP]` included.
    pub max_seq_len: usize,
    /// The stored id type.
    pub dtype: Dtype,
    /// The packing seed.
    pub seed: u64,
    /// Fraction of documents held out for validation.
    pub validation_fraction: f64,
    /// Examples per shard (the last shard of a split may hold fewer).
    pub shard_size: usize,
    /// Documents are grouped into chunks of about this many bytes of text; each chunk is
    /// packed with its own seed.
    pub chunk_bytes: usize,
    /// The corpus files, in reading order, with their sizes.
    pub inputs: Vec<InputFile>,
}

impl PrepareSettings {
    /// The first setting that differs from `expected`, as `"name: found X, expected Y"`.
    pub fn diff(&self, expected: &PrepareSettings) -> Option<String> {
        let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
            (serde_json::to_value(self), serde_json::to_value(expected))
        else {
            return (self != expected).then(|| "settings differ".to_owned());
        };
        for (key, found) in &a {
            let wanted = b.get(key).unwrap_or(&serde_json::Value::Null);
            if found != wanted {
                let short = |v: &serde_json::Value| {
                    let s = v.to_string();
                    if s.len() > 200 {
                        // `str::floor_char_boundary` needs Rust 1.91; this crate's floor is 1.85.
                        let end = (0..=200).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
                        format!("{}...", &s[..end])
                    } else {
                        s
                    }
                };
                return Some(format!(
                    "{key}: found {}, expected {}",
                    short(found),
                    short(wanted)
                ));
            }
        }
        None
    }
}

/// Counts for one split.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SplitCounts {
    /// Documents assigned to the split.
    pub documents: u64,
    /// Examples written.
    pub examples: u64,
    /// Tokens written (`[CLS]`/`[SEP]` included).
    pub tokens: u64,
    /// Number of shards.
    pub shards: usize,
}

/// `manifest.json`: everything needed to read and to trust a prepared dataset.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// [`FORMAT_VERSION`] at writing time.
    pub format_version: u32,
    /// The settings that determined the content.
    pub settings: PrepareSettings,
    /// Training split counts.
    pub train: SplitCounts,
    /// Validation split counts.
    pub validation: SplitCounts,
    /// Lines read and skipped.
    pub read_stats: ReadStats,
    /// Bytes of corpus read from disk.
    pub input_bytes: u64,
    /// Every shard, train first, in order.
    pub shards: Vec<ShardInfo>,
}

impl Manifest {
    /// Reads `dir/manifest.json`, refusing other formats and versions.
    ///
    /// # Errors
    /// I/O and JSON errors; [`Error::Mismatch`] for another format or version.
    pub fn load(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST_FILE);
        let bytes = std::fs::read(&path).map_err(|e| Error::io("failed to read", &path, e))?;
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|source| Error::Json {
                path: path.clone(),
                source,
            })?;
        let format = value.get("format").and_then(|v| v.as_str()).unwrap_or("");
        let version = value
            .get("format_version")
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        if format != FORMAT_NAME || version != u64::from(FORMAT_VERSION) {
            return Err(Error::Mismatch {
                dir: dir.to_path_buf(),
                message: format!(
                    "format {format:?} version {version}, expected {FORMAT_NAME:?} version {FORMAT_VERSION}"
                ),
            });
        }
        serde_json::from_value(value).map_err(|source| Error::Json { path, source })
    }

    /// Writes `dir/manifest.json` atomically (temporary file, then rename).
    ///
    /// # Errors
    /// I/O errors.
    pub fn save(&self, dir: &Path) -> Result<()> {
        write_json_atomic(&dir.join(MANIFEST_FILE), self)
    }

    /// Counts of `split`.
    pub fn split(&self, split: Split) -> &SplitCounts {
        match split {
            Split::Train => &self.train,
            Split::Validation => &self.validation,
        }
    }
}

/// Writes `value` as pretty JSON to `path` via a temporary file and a rename.
pub(crate) fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let json = serde_json::to_vec_pretty(value).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    std::fs::write(&tmp, &json).map_err(|e| Error::io("failed to write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("failed to write", path, e))
}

/// The file names of shard `index` of `split`: `(ids, index)`.
pub fn shard_file_names(split: Split, index: usize) -> (String, String) {
    let stem = format!("{}-{index:05}", split.as_str());
    (format!("{stem}.ids"), format!("{stem}.idx"))
}

/// A writer for one shard.
pub(crate) struct ShardWriter {
    split: Split,
    index: usize,
    dtype: Dtype,
    ids_path: PathBuf,
    idx_path: PathBuf,
    ids: BufWriter<File>,
    idx: BufWriter<File>,
    ids_hash: Sha256,
    idx_hash: Sha256,
    examples: u64,
    tokens: u64,
    scratch: Vec<u8>,
}

impl ShardWriter {
    pub(crate) fn create(dir: &Path, split: Split, index: usize, dtype: Dtype) -> Result<Self> {
        let (ids_name, idx_name) = shard_file_names(split, index);
        let ids_path = dir.join(ids_name);
        let idx_path = dir.join(idx_name);
        let ids =
            File::create(&ids_path).map_err(|e| Error::io("failed to create", &ids_path, e))?;
        let idx =
            File::create(&idx_path).map_err(|e| Error::io("failed to create", &idx_path, e))?;
        Ok(ShardWriter {
            split,
            index,
            dtype,
            ids_path,
            idx_path,
            ids: BufWriter::with_capacity(1 << 20, ids),
            idx: BufWriter::with_capacity(1 << 16, idx),
            ids_hash: Sha256::new(),
            idx_hash: Sha256::new(),
            examples: 0,
            tokens: 0,
            scratch: Vec::new(),
        })
    }

    pub(crate) fn examples(&self) -> u64 {
        self.examples
    }

    pub(crate) fn write(&mut self, ex: &Example) -> Result<()> {
        self.scratch.clear();
        match self.dtype {
            Dtype::U16 => {
                for &id in &ex.input_ids {
                    let v = u16::try_from(id).map_err(|_| {
                        Error::Internal(format!("token id {id} does not fit the u16 shard format"))
                    })?;
                    self.scratch.extend_from_slice(&v.to_le_bytes());
                }
            }
            Dtype::U32 => {
                for &id in &ex.input_ids {
                    self.scratch.extend_from_slice(&id.to_le_bytes());
                }
            }
        }
        self.ids
            .write_all(&self.scratch)
            .map_err(|e| Error::io("failed to write", &self.ids_path, e))?;
        self.ids_hash.update(&self.scratch);
        let mut rec = [0u8; INDEX_RECORD_BYTES];
        rec[..8].copy_from_slice(&self.tokens.to_le_bytes());
        rec[8..12].copy_from_slice(&(ex.input_ids.len() as u32).to_le_bytes());
        rec[12..].copy_from_slice(&(ex.segment_b_start as u32).to_le_bytes());
        self.idx
            .write_all(&rec)
            .map_err(|e| Error::io("failed to write", &self.idx_path, e))?;
        self.idx_hash.update(rec);
        self.examples += 1;
        self.tokens += ex.input_ids.len() as u64;
        Ok(())
    }

    pub(crate) fn finish(self) -> Result<ShardInfo> {
        let ShardWriter {
            split,
            index,
            ids_path,
            idx_path,
            ids,
            idx,
            ids_hash,
            idx_hash,
            examples,
            tokens,
            ..
        } = self;
        for (w, path) in [(ids, &ids_path), (idx, &idx_path)] {
            let f = w
                .into_inner()
                .map_err(|e| Error::io("failed to write", path, e.into_error()))?;
            f.sync_all()
                .map_err(|e| Error::io("failed to write", path, e))?;
        }
        let name = |p: &Path| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        Ok(ShardInfo {
            split,
            index,
            ids_file: name(&ids_path),
            index_file: name(&idx_path),
            examples,
            tokens,
            ids_sha256: hex(&ids_hash.finalize()),
            index_sha256: hex(&idx_hash.finalize()),
        })
    }
}

/// Checks that a finished shard's files exist with the sizes its counts imply.
pub(crate) fn check_shard_files(dir: &Path, shard: &ShardInfo, dtype: Dtype) -> Result<()> {
    let expect = [
        (&shard.ids_file, shard.tokens * dtype.width() as u64),
        (
            &shard.index_file,
            shard.examples * INDEX_RECORD_BYTES as u64,
        ),
    ];
    for (name, size) in expect {
        let path = dir.join(name);
        let meta = std::fs::metadata(&path).map_err(|e| Error::io("failed to read", &path, e))?;
        if meta.len() != size {
            return Err(Error::Mismatch {
                dir: dir.to_path_buf(),
                message: format!("{name} has {} bytes, expected {size}", meta.len()),
            });
        }
    }
    Ok(())
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.read_exact_at(buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset) {
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "failed to fill whole buffer",
                ));
            }
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[derive(Debug)]
struct OpenShard {
    ids: File,
    idx: File,
    ids_path: PathBuf,
    idx_path: PathBuf,
    examples: usize,
    tokens: u64,
}

/// Random access to one split of a prepared dataset.
///
/// `Send + Sync`: [`get`](Self::get) takes `&self` and may be called from many threads.
#[derive(Debug)]
pub struct ShardReader {
    dir: PathBuf,
    split: Split,
    manifest: Manifest,
    shards: Vec<OpenShard>,
    /// `ends[i]` = number of examples in shards `0..=i`.
    ends: Vec<usize>,
}

impl ShardReader {
    /// Opens `split` of the dataset in `dir`, checking that it was prepared with the vocabulary
    /// whose SHA-256 is `expected_vocab_sha256` and with `max_seq_len == expected_max_len`.
    ///
    /// # Errors
    /// [`Error::Mismatch`] naming both values when the vocabulary hash or the length differ, or
    /// when a shard file has the wrong size; I/O and JSON errors.
    pub fn open(
        dir: impl AsRef<Path>,
        split: Split,
        expected_vocab_sha256: &str,
        expected_max_len: usize,
    ) -> Result<Self> {
        let dir = dir.as_ref();
        let manifest = Manifest::load(dir)?;
        let s = &manifest.settings;
        if !s.vocab_sha256.eq_ignore_ascii_case(expected_vocab_sha256) {
            return Err(Error::Mismatch {
                dir: dir.to_path_buf(),
                message: format!(
                    "it was prepared with vocabulary sha256 {} but the tokenizer's is {}",
                    s.vocab_sha256, expected_vocab_sha256
                ),
            });
        }
        if s.max_seq_len != expected_max_len {
            return Err(Error::Mismatch {
                dir: dir.to_path_buf(),
                message: format!(
                    "it was prepared with max_seq_len {} but {} was expected",
                    s.max_seq_len, expected_max_len
                ),
            });
        }
        let mut shards = Vec::new();
        let mut ends = Vec::new();
        let mut total = 0usize;
        for info in manifest.shards.iter().filter(|sh| sh.split == split) {
            check_shard_files(dir, info, s.dtype)?;
            let ids_path = dir.join(&info.ids_file);
            let idx_path = dir.join(&info.index_file);
            let ids =
                File::open(&ids_path).map_err(|e| Error::io("failed to open", &ids_path, e))?;
            let idx =
                File::open(&idx_path).map_err(|e| Error::io("failed to open", &idx_path, e))?;
            total += info.examples as usize;
            ends.push(total);
            shards.push(OpenShard {
                ids,
                idx,
                ids_path,
                idx_path,
                examples: info.examples as usize,
                tokens: info.tokens,
            });
        }
        tracing::debug!(dir = %dir.display(), %split, examples = total, shards = shards.len(), "opened dataset");
        Ok(ShardReader {
            dir: dir.to_path_buf(),
            split,
            manifest,
            shards,
            ends,
        })
    }

    /// Number of examples in the split.
    pub fn len(&self) -> usize {
        self.ends.last().copied().unwrap_or(0)
    }

    /// Whether the split has no example.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The split being read.
    pub fn split(&self) -> Split {
        self.split
    }

    /// The dataset's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The maximum example length.
    pub fn max_seq_len(&self) -> usize {
        self.manifest.settings.max_seq_len
    }

    /// Example `i` as `(input_ids, token_type_ids)`, unpadded.
    ///
    /// # Errors
    /// [`Error::OutOfRange`]; I/O errors; [`Error::Parse`] for a corrupt index record.
    pub fn get(&self, i: usize) -> Result<(Vec<u32>, Vec<u32>)> {
        let ex = self.get_example(i)?;
        let types = ex.token_type_ids();
        Ok((ex.input_ids, types))
    }

    /// Example `i` as an [`Example`].
    ///
    /// # Errors
    /// As [`Self::get`].
    pub fn get_example(&self, i: usize) -> Result<Example> {
        let len = self.len();
        if i >= len {
            return Err(Error::OutOfRange { index: i, len });
        }
        let s = self.ends.partition_point(|&end| end <= i);
        let shard = &self.shards[s];
        let local = i - if s == 0 { 0 } else { self.ends[s - 1] };
        let mut rec = [0u8; INDEX_RECORD_BYTES];
        read_exact_at(&shard.idx, &mut rec, (local * INDEX_RECORD_BYTES) as u64)
            .map_err(|e| Error::io("failed to read", &shard.idx_path, e))?;
        let le_u32 = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let start = u64::from_le_bytes([
            rec[0], rec[1], rec[2], rec[3], rec[4], rec[5], rec[6], rec[7],
        ]);
        let n = le_u32(&rec[8..12]) as usize;
        let b_start = le_u32(&rec[12..16]) as usize;
        let corrupt = || Error::Parse {
            path: shard.idx_path.clone(),
            line: local as u64 + 1,
            message: format!("corrupt index record (start {start}, len {n}, segment b {b_start})"),
        };
        if n == 0
            || n > self.manifest.settings.max_seq_len
            || b_start > n
            || start + n as u64 > shard.tokens
        {
            return Err(corrupt());
        }
        let width = self.manifest.settings.dtype.width();
        let mut bytes = vec![0u8; n * width];
        read_exact_at(&shard.ids, &mut bytes, start * width as u64)
            .map_err(|e| Error::io("failed to read", &shard.ids_path, e))?;
        let input_ids: Vec<u32> = match self.manifest.settings.dtype {
            Dtype::U16 => bytes
                .chunks_exact(2)
                .map(|c| u32::from(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            Dtype::U32 => bytes.chunks_exact(4).map(le_u32).collect(),
        };
        Ok(Example {
            input_ids,
            segment_b_start: b_start,
        })
    }

    /// Recomputes every shard's SHA-256 and compares it with the manifest.
    ///
    /// # Errors
    /// [`Error::Mismatch`] naming the first file whose checksum differs; I/O errors.
    pub fn verify_checksums(&self) -> Result<()> {
        for info in self
            .manifest
            .shards
            .iter()
            .filter(|s| s.split == self.split)
        {
            for (name, want) in [
                (&info.ids_file, &info.ids_sha256),
                (&info.index_file, &info.index_sha256),
            ] {
                let path = self.dir.join(name);
                let mut f = File::open(&path).map_err(|e| Error::io("failed to open", &path, e))?;
                let mut h = Sha256::new();
                std::io::copy(&mut f, &mut h).map_err(|e| Error::io("failed to read", &path, e))?;
                let got = hex(&h.finalize());
                if &got != want {
                    return Err(Error::Mismatch {
                        dir: self.dir.clone(),
                        message: format!("{name} has sha256 {got}, the manifest says {want}"),
                    });
                }
            }
        }
        Ok(())
    }

    /// Number of examples per shard, in order.
    pub fn shard_lengths(&self) -> Vec<usize> {
        self.shards.iter().map(|s| s.examples).collect()
    }
}
