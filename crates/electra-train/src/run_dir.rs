//! Output directories of runs: a fresh run never writes into a directory that holds another
//! run's files. Pre-training and fine-tuning both claim their `--out` here.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// How a run may use an output directory that already has content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutMode {
    /// Only an empty or missing directory (or one without any of the run's files).
    Fresh,
    /// Continue the run the directory holds.
    Resume,
    /// Delete the run's files first (HuggingFace's `overwrite_output_dir`).
    Overwrite,
}

impl OutMode {
    /// The mode from a command line's `--resume` and `--overwrite` flags.
    ///
    /// # Errors
    /// Both flags at once.
    pub fn from_flags(resume: bool, overwrite: bool) -> Result<Self> {
        match (resume, overwrite) {
            (true, true) => Err(Error::Config("--resume and --overwrite exclude each other".into())),
            (true, false) => Ok(Self::Resume),
            (false, true) => Ok(Self::Overwrite),
            (false, false) => Ok(Self::Fresh),
        }
    }
}

/// The entries of `dir` that belong to a run: those named in `markers`, plus every entry whose
/// name starts with one of `prefixes` (e.g. `seed-`). Sorted.
pub fn run_entries(dir: &Path, markers: &[&str], prefixes: &[&str]) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if markers.contains(&name.as_ref()) || prefixes.iter().any(|p| name.starts_with(p)) {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

/// Makes `dir` ready for a run that writes `markers` (and `prefixed*` entries): creates it;
/// with [`OutMode::Fresh`] refuses it when it already holds any of them, naming them; with
/// [`OutMode::Overwrite`] deletes them first (nothing else in the directory is touched);
/// with [`OutMode::Resume`] leaves them for the caller to check. Returns whether the directory
/// held a run.
///
/// # Errors
/// [`Error::RunExists`] for a fresh run into an existing run, or the I/O error.
pub fn claim(dir: &Path, mode: OutMode, markers: &[&str], prefixed: Option<&str>) -> Result<bool> {
    claim_entries(dir, mode, markers, prefixed.as_slice())
}

/// [`claim`] with several name prefixes.
///
/// # Errors
/// As [`claim`].
pub fn claim_entries(dir: &Path, mode: OutMode, markers: &[&str], prefixes: &[&str]) -> Result<bool> {
    let found = run_entries(dir, markers, prefixes)?;
    let held = !found.is_empty();
    match mode {
        OutMode::Fresh if held => {
            let names: Vec<String> = found
                .iter()
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect();
            return Err(Error::RunExists { dir: dir.to_path_buf(), found: names.join(", ") });
        }
        OutMode::Overwrite => {
            for p in &found {
                let removed = if p.is_dir() { std::fs::remove_dir_all(p) } else { std::fs::remove_file(p) };
                removed.map_err(|e| Error::io(p, e))?;
            }
            if held {
                tracing::info!(dir = %dir.display(), removed = found.len(), "--overwrite: cleared the previous run");
            }
        }
        _ => {}
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    Ok(held)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_run_is_refused_an_existing_run_and_overwrite_clears_only_its_files() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dir = tmp.path().join("run");
        assert!(!claim(&dir, OutMode::Fresh, &["config.json"], Some("seed-")).unwrap_or_else(|e| panic!("{e}")));
        std::fs::write(dir.join("config.json"), "{}").unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir(dir.join("seed-1")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join("notes.txt"), "mine").unwrap_or_else(|e| panic!("{e}"));
        let err = claim(&dir, OutMode::Fresh, &["config.json"], Some("seed-")).err().map(|e| e.to_string());
        let msg = err.unwrap_or_default();
        assert!(msg.contains("config.json, seed-1") && msg.contains("--resume") && msg.contains("--overwrite"), "{msg}");
        assert!(claim(&dir, OutMode::Resume, &["config.json"], None).unwrap_or_else(|e| panic!("{e}")));
        assert!(claim(&dir, OutMode::Overwrite, &["config.json"], Some("seed-")).unwrap_or_else(|e| panic!("{e}")));
        assert!(!dir.join("config.json").exists() && !dir.join("seed-1").exists());
        assert!(dir.join("notes.txt").exists(), "a file that is not the run's was deleted");
        assert!(OutMode::from_flags(true, true).is_err());
    }
}
