//! Reading text input line by line and writing JSON Lines output.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};

/// Reads every line of `path` as UTF-8 (without the line terminator). Invalid UTF-8 is an error
/// naming the file and line.
pub fn read_lines(path: &Path) -> Result<Vec<String>> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut reader = BufReader::new(file);
    let mut lines = Vec::new();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .with_context(|| format!("{}: read error after line {}", path.display(), lines.len()))?;
        if n == 0 {
            break;
        }
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        match std::str::from_utf8(&buf) {
            Ok(s) => lines.push(s.to_string()),
            Err(e) => bail!(
                "{}:{}: invalid UTF-8 at byte {} of the line",
                path.display(),
                lines.len() + 1,
                e.valid_up_to()
            ),
        }
    }
    Ok(lines)
}

/// A JSON Lines writer to a file, written to a temporary name and renamed on `finish`, so that
/// an interrupted command never leaves a truncated output that looks complete.
pub struct JsonLines {
    out: BufWriter<std::fs::File>,
    tmp: std::path::PathBuf,
    path: std::path::PathBuf,
}

impl JsonLines {
    /// Opens `path` for writing (through a temporary file beside it).
    pub fn create(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let file = std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        Ok(Self { out: BufWriter::new(file), tmp, path: path.to_path_buf() })
    }

    /// Writes one record.
    pub fn write(&mut self, value: &serde_json::Value) -> Result<()> {
        serde_json::to_writer(&mut self.out, value)?;
        self.out.write_all(b"\n")?;
        Ok(())
    }

    /// Flushes and moves the output into place.
    pub fn finish(mut self) -> Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_all()?;
        std::fs::rename(&self.tmp, &self.path)
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        Ok(())
    }
}
