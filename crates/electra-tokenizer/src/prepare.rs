//! Turning a text corpus into shards of packed pre-training examples.
//!
//! # Pipeline
//!
//! One reader thread reads documents from the inputs in order ([`crate::corpus`]), assigns each
//! to the training or validation split by its index, and groups consecutive documents into
//! *chunks* of about `chunk_bytes` ([`CHUNK_BYTES`] by default) bytes of text. `num_workers` threads tokenise chunks and
//! pack them with [`ExampleBuilder`]s seeded from `(seed, chunk index, split)`. The calling
//! thread writes the chunks' examples in chunk order to fixed-size shards
//! ([`crate::dataset`]). The output depends on the settings ([`PrepareSettings`]) only, not on
//! the number of workers.
//!
//! # Validation split
//!
//! By document: document `i` (0-based, counted over all inputs) is held out when
//! `floor((i + 1) * f) > floor(i * f)` for `f = validation_fraction`, i.e. evenly spaced
//! documents making up exactly the fraction `f`.
//!
//! # Memory bound
//!
//! At most `2 * num_workers + 2` chunks are in flight (queued, being packed, or waiting to be
//! written in order). A chunk holds at most `chunk_bytes` of text plus one document, and its
//! packed examples take about as many bytes again (4-byte ids, roughly one token per 4-5
//! bytes of English), so memory stays near
//! `(2 * num_workers + 2) * 3 * max(chunk_bytes, largest document)` plus the tokenizer
//! (a few MB) and two 1 MiB write buffers: about 30 MiB with 16 workers on ordinary text.
//! A single line is read whole up to [`crate::corpus::MAX_LINE_BYTES`] (64 MiB).
//!
//! # Resuming
//!
//! After each finished shard, `prepare-state.json` in the output directory records the
//! finished shards and, for each split, the position (chunk, example) where the next shard
//! starts. A new run with the same settings re-reads the input up to the earliest of those
//! chunks without tokenising it and writes only the missing shards. When everything is done
//! the state file is replaced by `manifest.json`; a run over a finished directory returns its
//! manifest without work. Different settings are refused with a message naming the first
//! differing value.

use std::collections::BTreeMap;

use crate::Cancel;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender};
use std::sync::{Condvar, Mutex};

use crate::corpus::{Document, DocumentReader, ReadStats, resolve_inputs};
use crate::dataset::{
    Dtype, FORMAT_NAME, FORMAT_VERSION, MANIFEST_FILE, Manifest, PrepareSettings, ShardInfo,
    ShardWriter, Split, SplitCounts, check_shard_files, write_json_atomic,
};
use crate::error::{Error, Result};
use crate::packing::{Example, ExampleBuilder};
use crate::tokenizer::{NormalizerOptions, WordPieceTokenizer};

/// Default chunk size: documents are grouped into chunks of about this many bytes of text
/// (256 KiB).
pub const CHUNK_BYTES: usize = 256 << 10;
/// The resume state file's name.
pub const STATE_FILE: &str = "prepare-state.json";

/// What to prepare and how.
#[derive(Debug, Clone, PartialEq)]
pub struct PrepareConfig {
    /// Corpus files, directories or glob patterns (see [`crate::corpus::resolve_inputs`]).
    pub inputs: Vec<PathBuf>,
    /// The vocabulary: a `vocab.txt`, a `tokenizer.json` or a model directory (see
    /// [`WordPieceTokenizer::from_path`]).
    pub vocab: PathBuf,
    /// Overrides the tokenizer's lower-casing (and accent stripping with it) when set.
    pub lowercase: Option<bool>,
    /// Where the shards and `manifest.json` go (created if missing).
    pub out_dir: PathBuf,
    /// Maximum example length, `[CLS]`/`[SEP]` included (at least 5).
    pub max_seq_len: usize,
    /// Seed of the packing's random draws.
    pub seed: u64,
    /// Fraction of documents held out for validation, in `[0, 1)`.
    pub validation_fraction: f64,
    /// Tokenising threads; 0 uses every core.
    pub num_workers: usize,
    /// Examples per shard.
    pub shard_size: usize,
    /// Fail on the first unreadable line instead of skipping and counting it.
    pub strict: bool,
    /// Bytes of text per chunk (the unit of parallel work and of seeding); part of the
    /// settings, so changing it changes the output. Default [`CHUNK_BYTES`].
    pub chunk_bytes: usize,
}

impl PrepareConfig {
    /// A configuration with the defaults: `max_seq_len` 128, seed 0, 1% validation, all
    /// cores, 100,000 examples per shard, lenient reading.
    pub fn new(
        inputs: Vec<PathBuf>,
        vocab: impl Into<PathBuf>,
        out_dir: impl Into<PathBuf>,
    ) -> Self {
        PrepareConfig {
            inputs,
            vocab: vocab.into(),
            lowercase: None,
            out_dir: out_dir.into(),
            max_seq_len: 128,
            seed: 0,
            validation_fraction: 0.01,
            num_workers: 0,
            shard_size: 100_000,
            strict: false,
            chunk_bytes: CHUNK_BYTES,
        }
    }
}

/// Progress callbacks for [`prepare`]; every method has an empty default. Events only:
/// stopping a preparation is [`Cancel`]'s job ([`prepare_until`]).
///
/// Called from several threads (hence `Sync`).
pub trait PrepareProgress: Sync {
    /// Once, with the total size of the inputs on disk.
    fn on_start(&self, _total_bytes: u64) {}
    /// Input bytes read from disk since the last call (compressed bytes for compressed files).
    fn on_bytes(&self, _bytes: u64) {}
    /// Examples written to `split` since the last call.
    fn on_examples(&self, _split: Split, _examples: u64) {}
    /// A shard was finished.
    fn on_shard(&self, _shard: &ShardInfo) {}
    /// Everything is written.
    fn on_finish(&self, _manifest: &Manifest) {}
}

/// A [`PrepareProgress`] that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl PrepareProgress for NoProgress {}

/// Whether document `i` belongs to the validation split.
pub fn is_validation_document(i: u64, fraction: f64) -> bool {
    fraction > 0.0 && ((i + 1) as f64 * fraction).floor() > (i as f64 * fraction).floor()
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The packing seed of chunk `chunk` of `split` for the run seed `seed`.
pub fn chunk_seed(seed: u64, chunk: u64, split: Split) -> u64 {
    let s = match split {
        Split::Train => 0,
        Split::Validation => 1,
    };
    splitmix64(seed ^ splitmix64(chunk.wrapping_mul(2).wrapping_add(s)))
}

/// A position in the example stream of one split: example `skip` of chunk `chunk`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
struct Position {
    chunk: u64,
    skip: u64,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct StreamState {
    finished: Vec<ShardInfo>,
    next: Position,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct State {
    format: String,
    format_version: u32,
    settings: PrepareSettings,
    train: StreamState,
    validation: StreamState,
}

struct Chunk {
    index: u64,
    docs: Vec<(Document, Split)>,
}

struct ChunkResult {
    index: u64,
    train: Vec<Example>,
    validation: Vec<Example>,
}

struct ReaderSummary {
    stats: ReadStats,
    train_docs: u64,
    validation_docs: u64,
    bytes: u64,
    chunks: u64,
}

/// Chunk dispatch gate: the reader waits until the writer is within a window.
struct Gate {
    written: Mutex<u64>,
    cv: Condvar,
    abort: AtomicBool,
}

impl Gate {
    fn wait_for(&self, chunk: u64, window: u64) -> bool {
        let mut written = match self.written.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        while chunk >= *written + window && !self.abort.load(Ordering::Relaxed) {
            written = match self.cv.wait(written) {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
        }
        !self.abort.load(Ordering::Relaxed)
    }

    fn advance(&self, written: u64) {
        match self.written.lock() {
            Ok(mut g) => *g = written,
            Err(p) => *p.into_inner() = written,
        }
        self.cv.notify_all();
    }

    fn abort(&self) {
        self.abort.store(true, Ordering::Relaxed);
        let _guard = self.written.lock();
        self.cv.notify_all();
    }
}

/// Tokenises and packs the corpus described by `config` into shards; see the module docs.
///
/// # Errors
/// Invalid settings ([`Error::Config`]); unreadable inputs or vocabulary; in strict mode the
/// first unreadable line; [`Error::NoUsableText`] when no example could be built;
/// [`Error::Mismatch`] when `out_dir` holds a preparation with other settings.
pub fn prepare(config: &PrepareConfig, progress: &dyn PrepareProgress) -> Result<Manifest> {
    prepare_until(config, progress, &Cancel::new())
}

/// [`prepare`] that stops with [`Error::Interrupted`] after the chunk being written when
/// `cancel` is set (Ctrl-C, say); finished shards are kept and a later run resumes after them.
///
/// # Errors
/// As [`prepare`], and [`Error::Interrupted`].
pub fn prepare_until(config: &PrepareConfig, progress: &dyn PrepareProgress, cancel: &Cancel) -> Result<Manifest> {
    let mut tokenizer = WordPieceTokenizer::from_path(&config.vocab)?;
    if let Some(lowercase) = config.lowercase {
        tokenizer = tokenizer.with_normalizer_options(NormalizerOptions {
            lowercase,
            strip_accents: None,
        });
    }
    prepare_with_tokenizer(config, &tokenizer, progress, cancel)
}

/// [`prepare`] with an already loaded tokenizer (`config.vocab` and `config.lowercase` are
/// ignored).
///
/// # Errors
/// As [`prepare`].
pub fn prepare_with_tokenizer(
    config: &PrepareConfig,
    tokenizer: &WordPieceTokenizer,
    progress: &dyn PrepareProgress,
    cancel: &Cancel,
) -> Result<Manifest> {
    if config.max_seq_len < 5 || config.max_seq_len > u32::MAX as usize {
        return Err(Error::Config(format!(
            "max_seq_len must be at least 5, got {}",
            config.max_seq_len
        )));
    }
    if !(0.0..1.0).contains(&config.validation_fraction) {
        return Err(Error::Config(format!(
            "validation_fraction must be in [0, 1), got {}",
            config.validation_fraction
        )));
    }
    if config.shard_size == 0 || config.chunk_bytes == 0 {
        return Err(Error::Config(
            "shard_size and chunk_bytes must be positive".into(),
        ));
    }
    let inputs = resolve_inputs(&config.inputs)?;
    let options = tokenizer.normalizer_options();
    let settings = PrepareSettings {
        vocab_sha256: tokenizer.vocab_sha256().to_owned(),
        vocab_size: tokenizer.vocab_size(),
        lowercase: options.lowercase,
        strip_accents: options.strips_accents(),
        special_tokens: tokenizer.special_tokens(),
        max_seq_len: config.max_seq_len,
        dtype: Dtype::for_vocab_size(tokenizer.vocab_size()),
        seed: config.seed,
        validation_fraction: config.validation_fraction,
        shard_size: config.shard_size,
        chunk_bytes: config.chunk_bytes,
        inputs,
    };
    let out = config.out_dir.as_path();
    std::fs::create_dir_all(out).map_err(|e| Error::io("failed to create", out, e))?;

    // A finished preparation?
    if out.join(MANIFEST_FILE).is_file() {
        let manifest = Manifest::load(out)?;
        if let Some(diff) = manifest.settings.diff(&settings) {
            return Err(Error::Mismatch {
                dir: out.to_path_buf(),
                message: format!(
                    "it holds a dataset prepared with other settings ({diff}); remove it or choose another output directory"
                ),
            });
        }
        for shard in &manifest.shards {
            check_shard_files(out, shard, settings.dtype)?;
        }
        tracing::info!(dir = %out.display(), "dataset already prepared");
        progress.on_finish(&manifest);
        return Ok(manifest);
    }

    // An interrupted one?
    let state_path = out.join(STATE_FILE);
    let state = if state_path.is_file() {
        let bytes =
            std::fs::read(&state_path).map_err(|e| Error::io("failed to read", &state_path, e))?;
        let state: State = serde_json::from_slice(&bytes).map_err(|source| Error::Json {
            path: state_path.clone(),
            source,
        })?;
        if state.format != FORMAT_NAME || state.format_version != FORMAT_VERSION {
            return Err(Error::Mismatch {
                dir: out.to_path_buf(),
                message: format!(
                    "{STATE_FILE} has format version {}, expected {FORMAT_VERSION}",
                    state.format_version
                ),
            });
        }
        if let Some(diff) = state.settings.diff(&settings) {
            return Err(Error::Mismatch {
                dir: out.to_path_buf(),
                message: format!(
                    "it holds an interrupted preparation with other settings ({diff}); remove it or choose another output directory"
                ),
            });
        }
        for shard in state
            .train
            .finished
            .iter()
            .chain(&state.validation.finished)
        {
            check_shard_files(out, shard, settings.dtype)?;
        }
        tracing::info!(
            dir = %out.display(),
            train_shards = state.train.finished.len(),
            validation_shards = state.validation.finished.len(),
            "resuming an interrupted preparation"
        );
        state
    } else {
        State {
            format: FORMAT_NAME.to_owned(),
            format_version: FORMAT_VERSION,
            settings: settings.clone(),
            train: StreamState::default(),
            validation: StreamState::default(),
        }
    };

    run_pipeline(config, tokenizer, settings, state, progress, cancel)
}

fn run_pipeline(
    config: &PrepareConfig,
    tokenizer: &WordPieceTokenizer,
    settings: PrepareSettings,
    state: State,
    progress: &dyn PrepareProgress,
    cancel: &Cancel,
) -> Result<Manifest> {
    let out = config.out_dir.as_path();
    let workers = if config.num_workers == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        config.num_workers
    };
    let window = 2 * workers as u64 + 2;
    let start_chunk = state.train.next.chunk.min(state.validation.next.chunk);
    let total_bytes: u64 = settings.inputs.iter().map(|f| f.bytes).sum();
    progress.on_start(total_bytes);
    tracing::info!(
        files = settings.inputs.len(),
        bytes = total_bytes,
        workers,
        max_seq_len = settings.max_seq_len,
        "preparing pre-training shards"
    );

    let gate = Gate {
        written: Mutex::new(start_chunk),
        cv: Condvar::new(),
        abort: AtomicBool::new(false),
    };
    let mut writer = Writer::new(out, &settings, state)?;

    let (work_tx, work_rx) = std::sync::mpsc::sync_channel::<Chunk>(workers);
    let work_rx = Mutex::new(work_rx);
    let (res_tx, res_rx) = std::sync::mpsc::channel::<Result<ChunkResult>>();
    let outcome: Result<ReaderSummary> = std::thread::scope(|scope| {
        let reader = {
            let res_tx = res_tx.clone();
            let gate = &gate;
            let settings = &settings;
            scope.spawn(move || {
                let r = read_chunks(
                    settings,
                    config.strict,
                    start_chunk,
                    window,
                    gate,
                    &work_tx,
                    progress,
                );
                drop(work_tx);
                if let Err(e) = &r {
                    let _ = res_tx.send(Err(Error::Internal(format!("reader stopped: {e}"))));
                    gate.abort();
                }
                r
            })
        };
        for _ in 0..workers {
            let res_tx = res_tx.clone();
            let work_rx = &work_rx;
            let gate = &gate;
            let max_len = settings.max_seq_len;
            let seed = settings.seed;
            scope.spawn(move || pack_chunks(tokenizer, max_len, seed, work_rx, &res_tx, gate));
        }
        drop(res_tx);

        let written = writer.receive_all(&res_rx, start_chunk, &gate, progress, cancel);
        if written.is_err() {
            gate.abort();
        }
        // workers finding the receiver gone stop at their next chunk
        drop(res_rx);
        let summary = match reader.join() {
            Ok(r) => r,
            Err(_) => Err(Error::Internal("the reader thread panicked".into())),
        };
        // a reader error is the root cause; report it rather than the writer's echo of it
        match (summary, written) {
            (Err(e), _) => Err(e),
            (Ok(_), Err(e)) => Err(e),
            (Ok(Some(s)), Ok(())) => Ok(s),
            (Ok(None), Ok(())) => Err(Error::Internal("the reader stopped early".into())),
        }
    });
    let summary = outcome?;
    writer.finish(summary, progress)
}

/// The reader thread: documents -> chunks -> work queue.
fn read_chunks(
    settings: &PrepareSettings,
    strict: bool,
    start_chunk: u64,
    window: u64,
    gate: &Gate,
    work_tx: &SyncSender<Chunk>,
    progress: &dyn PrepareProgress,
) -> Result<Option<ReaderSummary>> {
    let mut reader = DocumentReader::new(settings.inputs.clone(), strict);
    let mut doc_index = 0u64;
    let mut train_docs = 0u64;
    let mut validation_docs = 0u64;
    let mut chunk_index = 0u64;
    let mut chunk: Vec<(Document, Split)> = Vec::new();
    let mut chunk_bytes = 0usize;
    let mut reported = 0u64;
    let flush = |chunk_index: u64, docs: Vec<(Document, Split)>| -> bool {
        if chunk_index < start_chunk {
            return true; // already written by an earlier run
        }
        if !gate.wait_for(chunk_index, window) {
            return false;
        }
        work_tx
            .send(Chunk {
                index: chunk_index,
                docs,
            })
            .is_ok()
    };
    while let Some(doc) = reader.next_document()? {
        let split = if is_validation_document(doc_index, settings.validation_fraction) {
            validation_docs += 1;
            Split::Validation
        } else {
            train_docs += 1;
            Split::Train
        };
        doc_index += 1;
        chunk_bytes += doc.bytes;
        chunk.push((doc, split));
        if chunk_bytes >= settings.chunk_bytes {
            if !flush(chunk_index, std::mem::take(&mut chunk)) {
                return Ok(None); // aborted by the writer, which reports why
            }
            chunk_index += 1;
            chunk_bytes = 0;
            let now = reader.bytes_read();
            progress.on_bytes(now - reported);
            reported = now;
        }
    }
    if !chunk.is_empty() {
        if !flush(chunk_index, chunk) {
            return Ok(None);
        }
        chunk_index += 1;
    }
    let now = reader.bytes_read();
    progress.on_bytes(now - reported);
    let stats = reader.stats().clone();
    if stats.skipped() > 0 {
        tracing::warn!(
            skipped = stats.skipped(),
            first = stats.first_skipped.as_deref().unwrap_or(""),
            "skipped unreadable lines"
        );
    }
    Ok(Some(ReaderSummary {
        stats,
        train_docs,
        validation_docs,
        bytes: now,
        chunks: chunk_index,
    }))
}

/// A worker thread: chunks -> tokenised, packed examples.
fn pack_chunks(
    tokenizer: &WordPieceTokenizer,
    max_len: usize,
    seed: u64,
    work_rx: &Mutex<Receiver<Chunk>>,
    res_tx: &Sender<Result<ChunkResult>>,
    gate: &Gate,
) {
    loop {
        let next = match work_rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(chunk) = next else { return };
        if gate.abort.load(Ordering::Relaxed) {
            continue;
        }
        let result = pack_chunk(tokenizer, max_len, seed, chunk);
        let failed = result.is_err();
        if res_tx.send(result).is_err() || failed {
            // keep draining the queue (without work) until the reader hangs up, so that a
            // reader blocked on a full queue is released
            gate.abort();
        }
    }
}

fn pack_chunk(
    tokenizer: &WordPieceTokenizer,
    max_len: usize,
    seed: u64,
    chunk: Chunk,
) -> Result<ChunkResult> {
    let special = tokenizer.special_tokens();
    let mut train = ExampleBuilder::new(
        max_len,
        special.cls,
        special.sep,
        chunk_seed(seed, chunk.index, Split::Train),
    )?;
    let mut validation = ExampleBuilder::new(
        max_len,
        special.cls,
        special.sep,
        chunk_seed(seed, chunk.index, Split::Validation),
    )?;
    let mut result = ChunkResult {
        index: chunk.index,
        train: Vec::new(),
        validation: Vec::new(),
    };
    let mut ids = Vec::new();
    for (doc, split) in chunk.docs {
        let (builder, out) = match split {
            Split::Train => (&mut train, &mut result.train),
            Split::Validation => (&mut validation, &mut result.validation),
        };
        for line in &doc.lines {
            tokenizer.encode_ids_into(line, &mut ids)?;
            out.extend(builder.add_line(&ids));
        }
        out.extend(builder.end_document());
    }
    Ok(result)
}

/// One split's output stream.
struct Stream {
    state: StreamState,
    open: Option<ShardWriter>,
}

/// The writing side: puts chunk results in order and into shards.
struct Writer<'a> {
    out: &'a Path,
    settings: &'a PrepareSettings,
    train: Stream,
    validation: Stream,
}

impl<'a> Writer<'a> {
    fn new(out: &'a Path, settings: &'a PrepareSettings, state: State) -> Result<Self> {
        Ok(Writer {
            out,
            settings,
            train: Stream {
                state: state.train,
                open: None,
            },
            validation: Stream {
                state: state.validation,
                open: None,
            },
        })
    }

    fn receive_all(
        &mut self,
        res_rx: &Receiver<Result<ChunkResult>>,
        start_chunk: u64,
        gate: &Gate,
        progress: &dyn PrepareProgress,
        cancel: &Cancel,
    ) -> Result<()> {
        let mut pending: BTreeMap<u64, ChunkResult> = BTreeMap::new();
        let mut next = start_chunk;
        for result in res_rx.iter() {
            let result = result?;
            pending.insert(result.index, result);
            while let Some(r) = pending.remove(&next) {
                self.write_chunk(r, progress)?;
                next += 1;
                gate.advance(next);
                if cancel.is_cancelled() {
                    tracing::info!(chunk = next, "preparation interrupted; rerun to resume");
                    return Err(Error::Interrupted);
                }
            }
        }
        if let Some((&first, _)) = pending.iter().next() {
            return Err(Error::Internal(format!(
                "chunk {next} never arrived (have {first})"
            )));
        }
        Ok(())
    }

    fn write_chunk(&mut self, r: ChunkResult, progress: &dyn PrepareProgress) -> Result<()> {
        let ChunkResult {
            index,
            train,
            validation,
        } = r;
        for (split, examples) in [(Split::Train, train), (Split::Validation, validation)] {
            let mut written = 0u64;
            for (k, ex) in examples.iter().enumerate() {
                let stream = match split {
                    Split::Train => &mut self.train,
                    Split::Validation => &mut self.validation,
                };
                let pos = stream.state.next;
                if index < pos.chunk || (index == pos.chunk && (k as u64) < pos.skip) {
                    continue; // in a shard finished by an earlier run
                }
                if stream.open.is_none() {
                    let shard_index = stream.state.finished.len();
                    stream.open = Some(ShardWriter::create(
                        self.out,
                        split,
                        shard_index,
                        self.settings.dtype,
                    )?);
                }
                let full = match stream.open.as_mut() {
                    Some(w) => {
                        w.write(ex)?;
                        w.examples() as usize >= self.settings.shard_size
                    }
                    None => false,
                };
                written += 1;
                if full {
                    let shard = match stream.open.take() {
                        Some(w) => w.finish()?,
                        None => continue,
                    };
                    stream.state.finished.push(shard.clone());
                    stream.state.next = Position {
                        chunk: index,
                        skip: k as u64 + 1,
                    };
                    progress.on_shard(&shard);
                    tracing::debug!(file = %shard.ids_file, examples = shard.examples, "shard finished");
                    self.save_state()?;
                }
            }
            if written > 0 {
                progress.on_examples(split, written);
            }
        }
        Ok(())
    }

    fn save_state(&self) -> Result<()> {
        let state = State {
            format: FORMAT_NAME.to_owned(),
            format_version: FORMAT_VERSION,
            settings: self.settings.clone(),
            train: self.train.state.clone(),
            validation: self.validation.state.clone(),
        };
        write_json_atomic(&self.out.join(STATE_FILE), &state)
    }

    fn finish(
        mut self,
        summary: ReaderSummary,
        progress: &dyn PrepareProgress,
    ) -> Result<Manifest> {
        for stream in [&mut self.train, &mut self.validation] {
            if let Some(w) = stream.open.take() {
                let shard = w.finish()?;
                progress.on_shard(&shard);
                stream.state.finished.push(shard);
            }
        }
        let counts = |s: &Stream, documents: u64| SplitCounts {
            documents,
            examples: s.state.finished.iter().map(|x| x.examples).sum(),
            tokens: s.state.finished.iter().map(|x| x.tokens).sum(),
            shards: s.state.finished.len(),
        };
        let train = counts(&self.train, summary.train_docs);
        let validation = counts(&self.validation, summary.validation_docs);
        if train.examples + validation.examples == 0 {
            let names: Vec<String> = self
                .settings
                .inputs
                .iter()
                .map(|f| f.path.display().to_string())
                .collect();
            let mut what = names.join(", ");
            if summary.stats.skipped() > 0 {
                what.push_str(&format!(
                    " ({} unreadable lines skipped, first at {})",
                    summary.stats.skipped(),
                    summary.stats.first_skipped.as_deref().unwrap_or("?")
                ));
            }
            return Err(Error::NoUsableText(what));
        }
        if self.settings.validation_fraction > 0.0 && validation.examples == 0 {
            tracing::warn!(
                documents = summary.train_docs,
                "no validation example: too few documents for the validation fraction"
            );
        }
        let mut shards = self.train.state.finished.clone();
        shards.extend(self.validation.state.finished.iter().cloned());
        let manifest = Manifest {
            format: FORMAT_NAME.to_owned(),
            format_version: FORMAT_VERSION,
            settings: self.settings.clone(),
            train,
            validation,
            read_stats: summary.stats,
            input_bytes: summary.bytes,
            shards,
        };
        manifest.save(self.out)?;
        let state_path = self.out.join(STATE_FILE);
        if state_path.exists() {
            std::fs::remove_file(&state_path)
                .map_err(|e| Error::io("failed to remove", &state_path, e))?;
        }
        tracing::info!(
            train_examples = manifest.train.examples,
            validation_examples = manifest.validation.examples,
            chunks = summary.chunks,
            "prepared"
        );
        progress.on_finish(&manifest);
        Ok(manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_documents_are_evenly_spaced() {
        let picked: Vec<u64> = (0..1000)
            .filter(|&i| is_validation_document(i, 0.01))
            .collect();
        assert_eq!(picked.len(), 10);
        assert_eq!(picked[0], 99);
        assert!((0..1000).all(|i| !is_validation_document(i, 0.0)));
        let half = (0..10).filter(|&i| is_validation_document(i, 0.5)).count();
        assert_eq!(half, 5);
    }

    #[test]
    fn chunk_seeds_differ() {
        let a = chunk_seed(0, 0, Split::Train);
        assert_ne!(a, chunk_seed(0, 0, Split::Validation));
        assert_ne!(a, chunk_seed(0, 1, Split::Train));
        assert_ne!(a, chunk_seed(1, 0, Split::Train));
        assert_eq!(a, chunk_seed(0, 0, Split::Train));
    }
}
