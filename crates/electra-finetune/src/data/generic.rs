//! Generic labelled text files: TSV (no quoting), CSV (RFC 4180 quoting) or JSON Lines, chosen
//! by extension (`.tsv`, `.csv`, `.jsonl`/`.json`; each optionally `.xz`-compressed).
//!
//! Fields (header names, case-insensitive): the text in `text` (or `sentence`, `text_a`,
//! `sentence1`), an optional second text in `text_b` (or `sentence2`), the `label`, and for a
//! single file holding every split, `split` (`train`, `dev`/`validation`, `test`). Other fields
//! are ignored. String labels make a classification task whose labels are those of the training
//! split, sorted (numerically when they are all integers); with
//! [`GenericOptions::regression`] labels are real numbers.

use std::collections::BTreeSet;
use std::path::Path;

use super::io::{
    format_extension, json_kind, location, parse_value, read_csv, read_jsonl, read_tsv,
    sort_labels, stem,
};
use super::{Label, Split, TaskKind, TextExample, TextTask, default_metrics};
use crate::{Error, Result};

/// Header names accepted for the first text.
const TEXT_A: [&str; 4] = ["text", "sentence", "text_a", "sentence1"];
/// Header names accepted for the second text.
const TEXT_B: [&str; 2] = ["text_b", "sentence2"];
const LABEL: &str = "label";
const SPLIT: &str = "split";

/// How to read generic task files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenericOptions {
    /// Task name; default: the file name without extensions (single file) or the train file's
    /// directory name.
    pub name: Option<String>,
    /// Labels are real numbers (regression) instead of class names.
    pub regression: bool,
}

/// An example before its label is resolved.
#[derive(Debug, Clone)]
pub(crate) struct RawExample {
    pub line: u64,
    pub text_a: String,
    pub text_b: Option<String>,
    /// The label as written; `None` or empty when absent.
    pub label: Option<String>,
}

/// Resolves labels: class names against `kind`'s list, values parsed as numbers. With
/// `require_label` an absent or empty label is an error; without, it gives an unlabelled
/// example.
pub(crate) fn to_examples(
    path: &Path,
    raw: Vec<RawExample>,
    kind: &TaskKind,
    label_field: &str,
    require_label: bool,
) -> Result<Vec<TextExample>> {
    raw.into_iter()
        .map(|r| {
            let label = match r.label.as_deref().map(str::trim).filter(|l| !l.is_empty()) {
                None if require_label => {
                    return Err(Error::Parse {
                        path: path.to_path_buf(),
                        line: r.line,
                        message: format!("field {label_field} is empty"),
                    });
                }
                None => None,
                Some(value) => Some(match kind {
                    TaskKind::Regression => {
                        Label::Value(parse_value(path, r.line, label_field, value)?)
                    }
                    TaskKind::Classification { labels } => {
                        match labels.iter().position(|l| l == value) {
                            Some(i) => Label::Class(i),
                            None => {
                                return Err(Error::UnknownLabel {
                                    path: path.to_path_buf(),
                                    line: r.line,
                                    label: value.to_owned(),
                                    known: labels.clone(),
                                });
                            }
                        }
                    }
                }),
            };
            Ok(TextExample {
                text_a: r.text_a,
                text_b: r.text_b,
                label,
                location: location(path, r.line),
            })
        })
        .collect()
}

/// A record of a generic file with the split it names (if any).
struct Record {
    raw: RawExample,
    split: Option<Split>,
}

/// Reads a generic file. `label_required`: the file must have a label field; `with_split`: it
/// must have a split field.
fn read_records(path: &Path, label_required: bool, with_split: bool) -> Result<Vec<Record>> {
    let ext = format_extension(path);
    match ext.as_str() {
        "tsv" => table_records(path, read_tsv(path)?, label_required, with_split),
        "csv" => table_records(path, read_csv(path)?, label_required, with_split),
        "jsonl" | "json" => json_records(path, label_required, with_split),
        _ => Err(Error::Invalid(format!(
            "{}: unknown task file format {ext:?} (expected .tsv, .csv, .jsonl or .json, optionally .xz)",
            path.display()
        ))),
    }
}

fn missing(path: &Path, line: u64, names: &[&str]) -> Error {
    Error::MissingField {
        path: path.to_path_buf(),
        line,
        field: names.join("|"),
    }
}

fn parse_split(path: &Path, line: u64, value: &str) -> Result<Split> {
    Split::parse(value).ok_or_else(|| Error::Parse {
        path: path.to_path_buf(),
        line,
        message: format!("field split: unknown split {value:?} (expected train, dev or test)"),
    })
}

fn table_records(
    path: &Path,
    rows: Vec<super::io::Row>,
    label_required: bool,
    with_split: bool,
) -> Result<Vec<Record>> {
    let mut rows = rows.into_iter();
    let Some(header) = rows.next() else {
        // an empty file: the caller reports the split that should have had examples
        return Ok(Vec::new());
    };
    let names: Vec<String> = header
        .fields
        .iter()
        .map(|f| f.trim().to_ascii_lowercase())
        .collect();
    let find = |candidates: &[&str]| {
        candidates
            .iter()
            .find_map(|c| names.iter().position(|n| n == c))
    };
    let text_a = find(&TEXT_A).ok_or_else(|| missing(path, header.line, &TEXT_A))?;
    let text_b = find(&TEXT_B);
    let label = find(&[LABEL]);
    if label_required && label.is_none() {
        return Err(missing(path, header.line, &[LABEL]));
    }
    let split = if with_split {
        Some(find(&[SPLIT]).ok_or_else(|| missing(path, header.line, &[SPLIT]))?)
    } else {
        None
    };
    rows.map(|row| {
        if row.fields.len() != names.len() {
            return Err(Error::Columns {
                path: path.to_path_buf(),
                line: row.line,
                expected: names.len(),
                found: row.fields.len(),
            });
        }
        let split = split
            .map(|i| parse_split(path, row.line, &row.fields[i]))
            .transpose()?;
        Ok(Record {
            raw: RawExample {
                line: row.line,
                text_a: row.fields[text_a].clone(),
                text_b: text_b.map(|i| row.fields[i].clone()),
                label: label.map(|i| row.fields[i].clone()),
            },
            split,
        })
    })
    .collect()
}

fn json_records(path: &Path, label_required: bool, with_split: bool) -> Result<Vec<Record>> {
    let mut out = Vec::new();
    for (line, map) in read_jsonl(path)? {
        // keys compared case-insensitively
        let get = |names: &[&str]| -> Result<Option<String>> {
            let Some(value) = map
                .iter()
                .find_map(|(k, v)| names.iter().any(|n| k.eq_ignore_ascii_case(n)).then_some(v))
            else {
                return Ok(None);
            };
            match value {
                serde_json::Value::Null => Ok(None),
                serde_json::Value::String(s) => Ok(Some(s.clone())),
                serde_json::Value::Number(n) => Ok(Some(n.to_string())),
                serde_json::Value::Bool(b) => Ok(Some(b.to_string())),
                other => Err(Error::Parse {
                    path: path.to_path_buf(),
                    line,
                    message: format!(
                        "field {}: expected a string or a number, found {}",
                        names[0],
                        json_kind(other)
                    ),
                }),
            }
        };
        let text_a = get(&TEXT_A)?.ok_or_else(|| missing(path, line, &TEXT_A))?;
        let text_b = get(&TEXT_B)?;
        let label = get(&[LABEL])?;
        if label_required && label.is_none() {
            return Err(missing(path, line, &[LABEL]));
        }
        let split = if with_split {
            let value = get(&[SPLIT])?.ok_or_else(|| missing(path, line, &[SPLIT]))?;
            Some(parse_split(path, line, &value)?)
        } else {
            None
        };
        out.push(Record {
            raw: RawExample {
                line,
                text_a,
                text_b,
                label,
            },
            split,
        });
    }
    Ok(out)
}

/// The task kind from the training labels: regression, or the sorted set of class names.
fn infer_kind(path: &Path, train: &[RawExample], regression: bool) -> Result<TaskKind> {
    if regression {
        return Ok(TaskKind::Regression);
    }
    let set: BTreeSet<&str> = train
        .iter()
        .filter_map(|r| r.label.as_deref().map(str::trim).filter(|l| !l.is_empty()))
        .collect();
    let mut labels: Vec<String> = set.into_iter().map(str::to_owned).collect();
    sort_labels(&mut labels);
    if labels.len() < 2 {
        return Err(Error::Invalid(format!(
            "{}: the training split has {} distinct label(s) ({}); classification needs at least 2",
            path.display(),
            labels.len(),
            labels.join(", ")
        )));
    }
    Ok(TaskKind::Classification { labels })
}

fn empty(path: &Path, split: Split) -> Error {
    Error::EmptySplit {
        path: path.to_path_buf(),
        split: split.as_str().to_owned(),
    }
}

fn non_empty(path: &Path, split: Split, examples: &[TextExample]) -> Result<()> {
    if examples.is_empty() {
        return Err(empty(path, split));
    }
    Ok(())
}

fn finish(
    name: String,
    kind: TaskKind,
    train: Vec<TextExample>,
    dev: Vec<TextExample>,
    test: Vec<TextExample>,
) -> TextTask {
    tracing::info!(
        task = %name,
        train = train.len(),
        dev = dev.len(),
        test = test.len(),
        labels = kind.num_outputs(),
        "loaded task"
    );
    TextTask {
        name,
        metrics: default_metrics(&kind),
        kind,
        train,
        dev,
        test,
        extra_dev: Vec::new(),
    }
}

/// Loads a task from separate train, dev and (optional) test files, each TSV, CSV or JSON
/// Lines with a header (see the module docs). Train and dev need labels; test labels are
/// optional (rows with an empty label are unlabelled).
///
/// # Errors
/// Unreadable file, unknown format, invalid UTF-8, missing field, wrong column count, empty
/// label, unparsable value (regression), a dev/test label not in the training set, an empty
/// train or dev file, fewer than two training labels; each names the file and line.
pub fn load_generic_files(
    train: &Path,
    dev: &Path,
    test: Option<&Path>,
    options: &GenericOptions,
) -> Result<TextTask> {
    let raw_train: Vec<RawExample> = read_records(train, true, false)?
        .into_iter()
        .map(|r| r.raw)
        .collect();
    if raw_train.is_empty() {
        return Err(empty(train, Split::Train));
    }
    let kind = infer_kind(train, &raw_train, options.regression)?;
    let train_examples = to_examples(train, raw_train, &kind, LABEL, true)?;
    non_empty(train, Split::Train, &train_examples)?;
    let raw_dev = read_records(dev, true, false)?
        .into_iter()
        .map(|r| r.raw)
        .collect();
    let dev_examples = to_examples(dev, raw_dev, &kind, LABEL, true)?;
    non_empty(dev, Split::Dev, &dev_examples)?;
    let test_examples = match test {
        Some(test) => {
            let raw = read_records(test, false, false)?
                .into_iter()
                .map(|r| r.raw)
                .collect();
            to_examples(test, raw, &kind, LABEL, false)?
        }
        None => Vec::new(),
    };
    let name = options.name.clone().unwrap_or_else(|| {
        train
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| stem(train))
    });
    Ok(finish(
        name,
        kind,
        train_examples,
        dev_examples,
        test_examples,
    ))
}

/// Loads a task from one file with a `split` field (`train`, `dev`, `test`), such as
/// `sms_spam.tsv.xz` (`split<TAB>label<TAB>text[<TAB>extra...]`). Train and dev rows need
/// labels; test rows may leave the label empty.
///
/// # Errors
/// As [`load_generic_files`], plus a missing `split` field or an unknown split value; an
/// empty train or dev split names the file and the split.
pub fn load_generic_single(path: &Path, options: &GenericOptions) -> Result<TextTask> {
    let records = read_records(path, true, true)?;
    let mut splits: [Vec<RawExample>; 3] = Default::default();
    for record in records {
        let index = match record.split {
            Some(Split::Train) => 0,
            Some(Split::Dev) => 1,
            _ => 2,
        };
        splits[index].push(record.raw);
    }
    let [raw_train, raw_dev, raw_test] = splits;
    if raw_train.is_empty() {
        return Err(empty(path, Split::Train));
    }
    let kind = infer_kind(path, &raw_train, options.regression)?;
    let train = to_examples(path, raw_train, &kind, LABEL, true)?;
    non_empty(path, Split::Train, &train)?;
    let dev = to_examples(path, raw_dev, &kind, LABEL, true)?;
    non_empty(path, Split::Dev, &dev)?;
    let test = to_examples(path, raw_test, &kind, LABEL, false)?;
    let name = options.name.clone().unwrap_or_else(|| stem(path));
    Ok(finish(name, kind, train, dev, test))
}
