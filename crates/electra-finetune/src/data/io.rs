//! Reading task files: whole files (optionally `.xz`), lines with UTF-8 checks, TSV without
//! quoting, CSV with RFC 4180 quoting, JSON Lines.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// `"file:line"`.
pub(crate) fn location(path: &Path, line: u64) -> String {
    format!("{}:{line}", path.display())
}

/// The file's bytes; a `.xz` file is decompressed.
pub(crate) fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut bytes = Vec::new();
    if is_xz(path) {
        lzma_rust2::XzReader::new(std::io::BufReader::new(file), true)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io(path, e))?;
    } else {
        std::io::BufReader::new(file)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io(path, e))?;
    }
    Ok(bytes)
}

fn is_xz(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("xz"))
}

/// The extension that says the format: the last one, or the one before `.xz`, lower-cased.
pub(crate) fn format_extension(path: &Path) -> String {
    let inner: PathBuf = if is_xz(path) {
        path.with_extension("")
    } else {
        path.to_path_buf()
    };
    inner
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

/// The file name without its format extension(s) (`sms_spam.tsv.xz` -> `sms_spam`).
pub(crate) fn stem(path: &Path) -> String {
    let mut p = path.to_path_buf();
    if is_xz(&p) {
        p = p.with_extension("");
    }
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The lines of `bytes` with their 1-based numbers: `\r\n` or `\n` endings, a UTF-8 byte order
/// mark at the start removed, every line checked to be UTF-8. A final newline does not make an
/// extra empty line.
pub(crate) fn lines<'a>(path: &Path, bytes: &'a [u8]) -> Result<Vec<(u64, &'a str)>> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if body.is_empty() {
        return Ok(Vec::new());
    }
    body.split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, line)| {
            let number = i as u64 + 1;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            std::str::from_utf8(line)
                .map(|text| (number, text))
                .map_err(|_| Error::InvalidUtf8 {
                    path: path.to_path_buf(),
                    line: number,
                })
        })
        .collect()
}

/// One row of a table file.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    /// 1-based line where the row starts.
    pub line: u64,
    /// The fields.
    pub fields: Vec<String>,
}

/// The non-empty rows of a TSV file: fields split at every tab, no quoting (as GLUE is read
/// with Python's `csv.reader(delimiter="\t", quotechar=None)`).
pub(crate) fn read_tsv(path: &Path) -> Result<Vec<Row>> {
    let bytes = read_bytes(path)?;
    Ok(lines(path, &bytes)?
        .into_iter()
        .filter(|(_, text)| !text.is_empty())
        .map(|(line, text)| Row {
            line,
            fields: text.split('\t').map(str::to_owned).collect(),
        })
        .collect())
}

/// The rows of a CSV file: comma-separated, `"`-quoted fields (which may span lines); empty
/// lines skipped. Each field must be UTF-8.
pub(crate) fn read_csv(path: &Path) -> Result<Vec<Row>> {
    let bytes = read_bytes(path)?;
    let body = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(body);
    let mut rows = Vec::new();
    let mut record = csv::ByteRecord::new();
    // The csv crate's own line count lags after `\r\n` endings: lines are counted here from
    // the record's byte offset (past the line ending it may point at), incrementally.
    let (mut counted_to, mut line) = (0usize, 1u64);
    let mut line_of = |byte: usize| {
        let start = byte
            + body
                .get(byte..)
                .unwrap_or_default()
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
        let start = start.min(body.len()).max(counted_to);
        line += body[counted_to..start]
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u64;
        counted_to = start;
        line
    };
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(0, |p| line_of(p.byte() as usize));
                return Err(Error::Parse {
                    path: path.to_path_buf(),
                    line,
                    message: format!("invalid csv: {e}"),
                });
            }
        }
        let line = record.position().map_or(0, |p| line_of(p.byte() as usize));
        let fields = record
            .iter()
            .map(|f| {
                std::str::from_utf8(f)
                    .map(str::to_owned)
                    .map_err(|_| Error::InvalidUtf8 {
                        path: path.to_path_buf(),
                        line,
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        rows.push(Row { line, fields });
    }
    Ok(rows)
}

/// The non-blank lines of a JSON Lines file, each parsed as a JSON object.
pub(crate) fn read_jsonl(
    path: &Path,
) -> Result<Vec<(u64, serde_json::Map<String, serde_json::Value>)>> {
    let bytes = read_bytes(path)?;
    let mut out = Vec::new();
    for (line, text) in lines(path, &bytes)? {
        if text.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| Error::Parse {
            path: path.to_path_buf(),
            line,
            message: format!("invalid json: {e}"),
        })?;
        match value {
            serde_json::Value::Object(map) => out.push((line, map)),
            other => {
                return Err(Error::Parse {
                    path: path.to_path_buf(),
                    line,
                    message: format!("expected a json object, found {}", json_kind(&other)),
                });
            }
        }
    }
    Ok(out)
}

/// "a string", "an array", ...
pub(crate) fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Sorts label names: numerically when all are integers, else as strings.
pub(crate) fn sort_labels(labels: &mut [String]) {
    let numeric: Option<Vec<i64>> = labels.iter().map(|l| l.parse::<i64>().ok()).collect();
    if numeric.is_some() {
        labels.sort_by_key(|l| l.parse::<i64>().unwrap_or(0));
    } else {
        labels.sort();
    }
}

/// Parses a regression value, naming the file, line and field when it is not a finite number.
pub(crate) fn parse_value(path: &Path, line: u64, field: &str, value: &str) -> Result<f32> {
    match value.trim().parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(Error::Parse {
            path: path.to_path_buf(),
            line,
            message: format!("field {field}: cannot parse {value:?} as a finite number"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_strip_bom_and_crlf() {
        let got = lines(Path::new("x"), b"\xef\xbb\xbfa\r\nb\n\nc\n").expect("utf8");
        assert_eq!(got, vec![(1, "a"), (2, "b"), (3, ""), (4, "c")]);
        assert!(lines(Path::new("x"), b"").expect("empty").is_empty());
        let err = lines(Path::new("x"), b"ok\n\xff\n").expect_err("bad utf8");
        assert_eq!(err.to_string(), "x:2: invalid utf-8");
    }

    #[test]
    fn extensions() {
        assert_eq!(format_extension(Path::new("a/b.TSV.xz")), "tsv");
        assert_eq!(format_extension(Path::new("a/b.jsonl")), "jsonl");
        assert_eq!(stem(Path::new("a/sms_spam.tsv.xz")), "sms_spam");
    }

    #[test]
    fn labels_sort_numerically_when_all_are_integers() {
        let mut l: Vec<String> = ["10", "2", "1"].iter().map(|s| s.to_string()).collect();
        sort_labels(&mut l);
        assert_eq!(l, ["1", "2", "10"]);
        let mut l: Vec<String> = ["b", "10", "a"].iter().map(|s| s.to_string()).collect();
        sort_labels(&mut l);
        assert_eq!(l, ["10", "a", "b"]);
    }
}
