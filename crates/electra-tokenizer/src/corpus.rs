//! Finding corpus files and reading them as documents.
//!
//! Two formats are read, each optionally compressed (`.gz` with the `gzip` feature, `.zst`
//! with the `zstd` feature):
//!
//! - **text** (`.txt`): one sentence or paragraph per line, a blank (whitespace-only) line
//!   between documents; the end of a file also ends a document;
//! - **JSON lines** (`.jsonl`): one JSON object per line with a string field `text`; each record
//!   is one document, split into lines on `\n` (blank lines inside a record are dropped).
//!
//! Lines are stripped of surrounding whitespace as Python's `str.strip()` does. A line that is
//! not UTF-8, a JSON line that does not parse or has no `text`, and a line longer than
//! [`MAX_LINE_BYTES`] are *skipped and counted* (the first one's file and line are kept for
//! the report), or are an error in strict mode.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// Longest line read; longer lines are skipped (lenient) or an error (strict).
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// How a corpus file is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Plain file.
    None,
    /// gzip (`.gz`).
    Gzip,
    /// Zstandard (`.zst`).
    Zstd,
}

/// How a corpus file's content is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputFormat {
    /// One line per sentence, blank lines between documents.
    Text,
    /// One JSON object per line with a `text` field; one document per record.
    Jsonl,
}

/// One resolved corpus file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InputFile {
    /// The file.
    pub path: PathBuf,
    /// Its layout.
    pub format: InputFormat,
    /// Its compression.
    pub compression: Compression,
    /// Its size on disk in bytes.
    pub bytes: u64,
}

/// Splits `name` into (format, compression) if its extension is a known corpus extension.
fn classify(path: &Path) -> Option<(InputFormat, Compression)> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    let (stem, compression) = if let Some(s) = name.strip_suffix(".gz") {
        (s, Compression::Gzip)
    } else if let Some(s) = name.strip_suffix(".zst") {
        (s, Compression::Zstd)
    } else {
        (name.as_str(), Compression::None)
    };
    if stem.ends_with(".txt") {
        Some((InputFormat::Text, compression))
    } else if stem.ends_with(".jsonl") {
        Some((InputFormat::Jsonl, compression))
    } else {
        None
    }
}

fn input_file(path: PathBuf, format: InputFormat, compression: Compression) -> Result<InputFile> {
    let meta = std::fs::metadata(&path).map_err(|e| Error::io("failed to read", &path, e))?;
    Ok(InputFile {
        path,
        format,
        compression,
        bytes: meta.len(),
    })
}

fn walk_dir(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("failed to list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("failed to list", dir, e))?;
        let path = entry.path();
        let ty = entry
            .file_type()
            .map_err(|e| Error::io("failed to read", &path, e))?;
        if ty.is_dir() {
            walk_dir(&path, out)?;
        } else if classify(&path).is_some() && path.is_file() {
            out.push(path);
        }
    }
    Ok(())
}

/// Expands inputs into corpus files, in a deterministic order.
///
/// Each input is a file (`.jsonl[.gz|.zst]` is read as JSON lines, anything else as text), a
/// directory (searched recursively for `.txt` and `.jsonl` files, optionally `.gz`/`.zst`,
/// sorted by path) or a glob pattern (`data/*.txt`, matches sorted). A file listed twice is
/// read once.
///
/// # Errors
/// [`Error::NoInputFiles`] when an input matches nothing (or `inputs` is empty); I/O errors.
pub fn resolve_inputs<P: AsRef<Path>>(inputs: &[P]) -> Result<Vec<InputFile>> {
    if inputs.is_empty() {
        return Err(Error::NoInputFiles("an empty input list".into()));
    }
    let mut out: Vec<InputFile> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for input in inputs {
        let input = input.as_ref();
        let mut found: Vec<InputFile> = Vec::new();
        if input.is_dir() {
            let mut paths = Vec::new();
            walk_dir(input, &mut paths)?;
            paths.sort();
            for p in paths {
                if let Some((f, c)) = classify(&p) {
                    found.push(input_file(p, f, c)?);
                }
            }
        } else if input.is_file() {
            let (f, c) = classify(input).unwrap_or_else(|| {
                let c = match input.extension().and_then(|e| e.to_str()) {
                    Some("gz") => Compression::Gzip,
                    Some("zst") => Compression::Zstd,
                    _ => Compression::None,
                };
                (InputFormat::Text, c)
            });
            found.push(input_file(input.to_path_buf(), f, c)?);
        } else {
            let pattern = input.to_string_lossy();
            let looks_like_glob = pattern.contains(['*', '?', '[']);
            if looks_like_glob {
                let paths = glob::glob(&pattern)
                    .map_err(|e| Error::Config(format!("invalid glob pattern {pattern}: {e}")))?;
                let mut matched = Vec::new();
                for p in paths {
                    let p = p.map_err(|e| {
                        let path = e.path().to_path_buf();
                        Error::io("failed to read", path, e.into())
                    })?;
                    if p.is_file() && classify(&p).is_some() {
                        matched.push(p);
                    }
                }
                matched.sort();
                for p in matched {
                    if let Some((f, c)) = classify(&p) {
                        found.push(input_file(p, f, c)?);
                    }
                }
            } else {
                return Err(Error::io(
                    "failed to read",
                    input,
                    std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
                ));
            }
        }
        if found.is_empty() {
            return Err(Error::NoInputFiles(input.display().to_string()));
        }
        for f in found {
            if seen.insert(f.path.clone()) {
                out.push(f);
            }
        }
    }
    Ok(out)
}

/// A reader that counts the bytes read through it (compressed bytes, for progress).
struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

fn open_reader(file: &InputFile, count: Arc<AtomicU64>) -> Result<Box<dyn BufRead + Send>> {
    let f = File::open(&file.path).map_err(|e| Error::io("failed to open", &file.path, e))?;
    let counted = CountingReader { inner: f, count };
    match file.compression {
        Compression::None => Ok(Box::new(BufReader::with_capacity(1 << 16, counted))),
        #[cfg(feature = "gzip")]
        Compression::Gzip => Ok(Box::new(BufReader::with_capacity(
            1 << 16,
            flate2::read::MultiGzDecoder::new(BufReader::new(counted)),
        ))),
        #[cfg(feature = "zstd")]
        Compression::Zstd => {
            let dec = zstd::stream::read::Decoder::new(counted)
                .map_err(|e| Error::io("failed to open", &file.path, e))?;
            Ok(Box::new(BufReader::with_capacity(1 << 16, dec)))
        }
        #[allow(unreachable_patterns)]
        other => Err(Error::Config(format!(
            "{}: {other:?} input needs electra-tokenizer's `{}` feature, which this build leaves out",
            file.path.display(),
            format!("{other:?}").to_lowercase()
        ))),
    }
}

/// Whether `c` is whitespace for Python's `str.strip()` / `str.isspace()`.
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `s` stripped of leading and trailing (Python) whitespace.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

/// Counts of lines read and skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReadStats {
    /// Physical lines read (blank lines included).
    pub lines: u64,
    /// Lines skipped because they were not UTF-8.
    pub invalid_utf8_lines: u64,
    /// JSON lines skipped because they did not parse or had no string `text`.
    pub invalid_json_lines: u64,
    /// Lines skipped because they exceeded [`MAX_LINE_BYTES`].
    pub overlong_lines: u64,
    /// `file:line` of the first skipped line, if any.
    pub first_skipped: Option<String>,
}

impl ReadStats {
    /// Total number of skipped lines.
    pub fn skipped(&self) -> u64 {
        self.invalid_utf8_lines + self.invalid_json_lines + self.overlong_lines
    }
}

/// One document: its non-blank, stripped lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Document {
    /// The lines, stripped of surrounding whitespace, none blank.
    pub lines: Vec<String>,
    /// Bytes of text in the document (for chunking).
    pub bytes: usize,
}

#[derive(Debug, serde::Deserialize)]
struct JsonRecord {
    text: Option<serde_json::Value>,
}

/// Reads documents from a list of corpus files, one file after the other.
pub struct DocumentReader {
    files: Vec<InputFile>,
    next_file: usize,
    current: Option<(usize, Box<dyn BufRead + Send>, u64)>,
    strict: bool,
    stats: ReadStats,
    bytes_read: Arc<AtomicU64>,
    buf: Vec<u8>,
}

impl std::fmt::Debug for DocumentReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocumentReader")
            .field("files", &self.files.len())
            .field("next_file", &self.next_file)
            .field("strict", &self.strict)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

enum LineRead {
    Eof,
    Line,
    Overlong,
}

impl DocumentReader {
    /// A reader over `files`; `strict` turns skipped lines into errors.
    pub fn new(files: Vec<InputFile>, strict: bool) -> Self {
        DocumentReader {
            files,
            next_file: 0,
            current: None,
            strict,
            stats: ReadStats::default(),
            bytes_read: Arc::new(AtomicU64::new(0)),
            buf: Vec::with_capacity(1 << 16),
        }
    }

    /// Line counts so far.
    pub fn stats(&self) -> &ReadStats {
        &self.stats
    }

    /// Bytes read from disk so far (compressed size for compressed files).
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }

    fn skip(&mut self, path: &Path, line: u64, kind: &str) {
        match kind {
            "utf8" => self.stats.invalid_utf8_lines += 1,
            "json" => self.stats.invalid_json_lines += 1,
            _ => self.stats.overlong_lines += 1,
        }
        if self.stats.first_skipped.is_none() {
            let loc = format!("{}:{line}", path.display());
            tracing::warn!(location = %loc, kind, "skipping unreadable line");
            self.stats.first_skipped = Some(loc);
        }
    }

    /// Reads one physical line into `self.buf` (without the newline).
    fn read_line(reader: &mut dyn BufRead, buf: &mut Vec<u8>, path: &Path) -> Result<LineRead> {
        buf.clear();
        let mut limited = reader.take(MAX_LINE_BYTES as u64 + 1);
        let n = limited
            .read_until(b'\n', buf)
            .map_err(|e| Error::io("failed to read", path, e))?;
        if n == 0 {
            return Ok(LineRead::Eof);
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
            return Ok(LineRead::Line);
        }
        if buf.len() > MAX_LINE_BYTES {
            // discard the rest of the line
            let reader = limited.into_inner();
            loop {
                let chunk = reader
                    .fill_buf()
                    .map_err(|e| Error::io("failed to read", path, e))?;
                if chunk.is_empty() {
                    break;
                }
                if let Some(pos) = chunk.iter().position(|&b| b == b'\n') {
                    reader.consume(pos + 1);
                    break;
                }
                let len = chunk.len();
                reader.consume(len);
            }
            buf.clear();
            return Ok(LineRead::Overlong);
        }
        Ok(LineRead::Line)
    }

    /// The next document, `None` at the end of the last file.
    ///
    /// # Errors
    /// I/O errors; in strict mode, the first unreadable line.
    pub fn next_document(&mut self) -> Result<Option<Document>> {
        let mut doc = Document::default();
        loop {
            if self.current.is_none() {
                if self.next_file >= self.files.len() {
                    return Ok(if doc.lines.is_empty() {
                        None
                    } else {
                        Some(doc)
                    });
                }
                let idx = self.next_file;
                self.next_file += 1;
                let reader = open_reader(&self.files[idx], self.bytes_read.clone())?;
                tracing::debug!(path = %self.files[idx].path.display(), "reading");
                self.current = Some((idx, reader, 0));
            }
            let Some((idx, reader, line_no)) = self.current.as_mut() else {
                continue;
            };
            let idx = *idx;
            let format = self.files[idx].format;
            let mut buf = std::mem::take(&mut self.buf);
            let read = Self::read_line(reader.as_mut(), &mut buf, &self.files[idx].path);
            *line_no += 1;
            let line_no = *line_no;
            let read = match read {
                Ok(r) => r,
                Err(e) => {
                    self.buf = buf;
                    return Err(e);
                }
            };
            let path = self.files[idx].path.clone();
            match read {
                LineRead::Eof => {
                    self.current = None;
                    self.buf = buf;
                    if !doc.lines.is_empty() {
                        return Ok(Some(doc));
                    }
                    continue;
                }
                LineRead::Overlong => {
                    self.stats.lines += 1;
                    self.buf = buf;
                    if self.strict {
                        return Err(Error::Parse {
                            path,
                            line: line_no,
                            message: format!("line longer than {MAX_LINE_BYTES} bytes"),
                        });
                    }
                    self.skip(&path, line_no, "overlong");
                    continue;
                }
                LineRead::Line => {}
            }
            self.stats.lines += 1;
            let text = match std::str::from_utf8(&buf) {
                Ok(t) => t,
                Err(_) => {
                    self.buf = buf;
                    if self.strict {
                        return Err(Error::InvalidUtf8 {
                            path,
                            line: line_no,
                        });
                    }
                    self.skip(&path, line_no, "utf8");
                    continue;
                }
            };
            match format {
                InputFormat::Text => {
                    let line = py_strip(text);
                    if line.is_empty() {
                        self.buf = buf;
                        if !doc.lines.is_empty() {
                            return Ok(Some(doc));
                        }
                    } else {
                        doc.bytes += line.len();
                        doc.lines.push(line.to_owned());
                        self.buf = buf;
                    }
                }
                InputFormat::Jsonl => {
                    if py_strip(text).is_empty() {
                        self.buf = buf;
                        continue;
                    }
                    let parsed = match serde_json::from_str::<JsonRecord>(text) {
                        Ok(JsonRecord {
                            text: Some(serde_json::Value::String(s)),
                        }) => Ok(s),
                        Ok(_) => Err("record has no string field \"text\"".to_owned()),
                        Err(e) => Err(format!("invalid json: {e}")),
                    };
                    self.buf = buf;
                    let record_text = match parsed {
                        Ok(s) => s,
                        Err(message) => {
                            if self.strict {
                                return Err(Error::Parse {
                                    path,
                                    line: line_no,
                                    message,
                                });
                            }
                            self.skip(&path, line_no, "json");
                            continue;
                        }
                    };
                    let mut record = Document::default();
                    for l in record_text.split('\n') {
                        let l = py_strip(l);
                        if !l.is_empty() {
                            record.bytes += l.len();
                            record.lines.push(l.to_owned());
                        }
                    }
                    if !record.lines.is_empty() {
                        // a text document cannot be open here: jsonl files hold whole records
                        return Ok(Some(record));
                    }
                }
            }
        }
    }
}

impl Iterator for DocumentReader {
    type Item = Result<Document>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_document().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_extensions() {
        let c = |s: &str| classify(Path::new(s));
        assert_eq!(c("a.txt"), Some((InputFormat::Text, Compression::None)));
        assert_eq!(c("a.TXT.gz"), Some((InputFormat::Text, Compression::Gzip)));
        assert_eq!(
            c("x/a.jsonl.zst"),
            Some((InputFormat::Jsonl, Compression::Zstd))
        );
        assert_eq!(c("a.json"), None);
        assert_eq!(c("a.md"), None);
    }

    /// A `.zst` input is decoded with the `zstd` feature, and refused naming the feature without it.
    #[test]
    fn a_zstd_input_needs_the_zstd_feature() {
        let dir = std::env::temp_dir().join(format!("electra-tokenizer-zst-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("a.txt.zst");
        // "hi\n" compressed by the zstd command-line tool (frame with checksum).
        let bytes: [u8; 16] =
            [0x28, 0xb5, 0x2f, 0xfd, 0x04, 0x58, 0x19, 0x00, 0x00, 0x68, 0x69, 0x0a, 0x34, 0x3d, 0x50, 0x92];
        std::fs::write(&path, bytes).expect("write");
        let files = resolve_inputs(&[&path]).expect("resolve");
        let mut reader = DocumentReader::new(files, true);
        let got = reader.next_document();
        std::fs::remove_dir_all(&dir).ok();
        if cfg!(feature = "zstd") {
            let doc = got.expect("decoded").expect("one document");
            assert_eq!(doc.lines, vec!["hi".to_string()]);
        } else {
            let e = got.expect_err("refused").to_string();
            assert!(e.contains("`zstd` feature") && e.contains("a.txt.zst"), "{e}");
        }
    }

    #[test]
    fn python_strip_semantics() {
        assert_eq!(py_strip("  a b \t\r"), "a b");
        assert_eq!(py_strip("\u{1f}\u{a0}x\u{3000}"), "x");
        assert_eq!(py_strip("\u{200b}"), "\u{200b}");
        assert_eq!(py_strip(" \u{85} "), "");
    }
}
