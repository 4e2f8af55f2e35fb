//! Task loaders on the committed samples (`tests/fixtures/tasks/`, see its README), feature
//! conversion with the BERT uncased vocabulary, and every bad-input error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use electra_finetune::Error;
use electra_finetune::data::{
    GenericOptions, GlueTask, Label, SquadConfig, SquadPostConfig, TaskKind, TextTask, load_conll,
    load_generic_files, load_generic_single, load_glue, read_conll, read_squad, squad_features,
    squad_predictions, tagging_features, text_features, word_predictions,
};
use electra_finetune::metrics::{MetricKind, squad_evaluate};
use electra_tokenizer::WordPieceTokenizer;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tasks")
}

fn glue(dir: &str) -> PathBuf {
    fixtures().join("glue").join(dir)
}

fn tokenizer() -> WordPieceTokenizer {
    let vocab = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../datasets/vocab/vocab.txt");
    WordPieceTokenizer::from_vocab_txt(vocab, true).expect("vocab")
}

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("electra-finetune-data")
        .join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).expect("clean scratch");
    }
    std::fs::create_dir_all(&dir).expect("scratch");
    dir
}

fn write(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).expect("write");
    path
}

fn labels(task: &TextTask) -> Vec<String> {
    task.kind.labels().to_vec()
}

fn at(path: &Path, line: u64) -> String {
    format!("{}:{line}", path.display())
}

/// Asserts the error message names `path:line` and contains each of `parts`.
fn assert_error(err: &Error, path: &Path, line: u64, parts: &[&str]) {
    let msg = err.to_string();
    assert!(
        msg.contains(&at(path, line)),
        "{msg:?} should name {}",
        at(path, line)
    );
    for part in parts {
        assert!(msg.contains(part), "{msg:?} should contain {part:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// GLUE

#[test]
fn glue_names_are_case_insensitive_with_aliases() {
    for (name, task) in [
        ("CoLA", GlueTask::Cola),
        ("sst-2", GlueTask::Sst2),
        ("SST2", GlueTask::Sst2),
        ("sts-b", GlueTask::Stsb),
        ("STSB", GlueTask::Stsb),
        ("sts_b", GlueTask::Stsb),
        ("MNLI", GlueTask::Mnli),
        ("mnli-mm", GlueTask::MnliMismatched),
        ("MNLI_MM", GlueTask::MnliMismatched),
        ("qnli", GlueTask::Qnli),
        ("Rte", GlueTask::Rte),
        ("wnli", GlueTask::Wnli),
        ("qqp", GlueTask::Qqp),
        ("mrpc", GlueTask::Mrpc),
    ] {
        assert_eq!(GlueTask::from_name(name).expect(name), task, "{name}");
        assert_eq!(name.parse::<GlueTask>().expect(name), task);
    }
    for task in GlueTask::ALL {
        assert_eq!(GlueTask::from_name(task.name()).expect("canonical"), task);
    }
    let err = GlueTask::from_name("squad").expect_err("not glue");
    assert!(err.to_string().contains("unknown task \"squad\""), "{err}");
}

#[test]
fn cola_headerless_train_and_headed_test() {
    let dir = glue("CoLA");
    let task = load_glue(GlueTask::Cola, &dir).expect("cola");
    assert_eq!(task.name, "cola");
    assert_eq!(labels(&task), ["0", "1"]);
    assert_eq!(task.metrics, [MetricKind::Matthews]);
    assert_eq!(
        (task.train.len(), task.dev.len(), task.test.len()),
        (4, 3, 2)
    );
    let first = &task.train[0];
    assert_eq!(first.text_a, "The cat slept on the warm mat.");
    assert_eq!(first.text_b, None);
    assert_eq!(first.label, Some(Label::Class(1)));
    assert_eq!(first.location, at(&dir.join("train.tsv"), 1));
    assert_eq!(task.train[1].label, Some(Label::Class(0)));
    assert_eq!(task.dev[2].text_a, "Which book did you say that he read?");
    assert_eq!(task.test[0].text_a, "The river flows to the sea.");
    assert_eq!(task.test[0].label, None);
    assert_eq!(task.test[0].location, at(&dir.join("test.tsv"), 2));
}

#[test]
fn sst2_single_sentences_without_quoting() {
    let task = load_glue(GlueTask::Sst2, &glue("SST-2")).expect("sst-2");
    assert_eq!(task.name, "sst-2");
    assert_eq!(
        (task.train.len(), task.dev.len(), task.test.len()),
        (4, 3, 2)
    );
    // quotes are text (no quoting), trailing spaces kept as in the file
    assert_eq!(task.train[2].text_a, "\"brilliant\" is too small a word ");
    assert_eq!(task.train[2].label, Some(Label::Class(1)));
    assert_eq!(task.train[3].label, Some(Label::Class(0)));
    assert_eq!(task.test[1].text_a, "nothing works here ");
    assert!(task.test.iter().all(|e| e.label.is_none()));
}

#[test]
fn mrpc_pairs_with_byte_order_mark() {
    let task = load_glue(GlueTask::Mrpc, &glue("MRPC")).expect("mrpc");
    assert_eq!(
        task.metrics,
        [MetricKind::Accuracy, MetricKind::F1 { positive: 1 }]
    );
    assert_eq!(
        (task.train.len(), task.dev.len(), task.test.len()),
        (3, 2, 1)
    );
    let e = &task.train[0];
    assert_eq!(
        e.text_a,
        "The company said profits rose 5 percent in the quarter."
    );
    assert_eq!(
        e.text_b.as_deref(),
        Some("Quarterly profits were up 5 percent, the company said.")
    );
    assert_eq!(e.label, Some(Label::Class(1)));
    assert_eq!(task.train[1].label, Some(Label::Class(0)));
    assert_eq!(
        task.test[0].text_b.as_deref(),
        Some("At noon the shop shuts.")
    );
    assert_eq!(task.test[0].label, None);
}

#[test]
fn stsb_is_regression() {
    let task = load_glue(GlueTask::Stsb, &glue("STS-B")).expect("sts-b");
    assert_eq!(task.kind, TaskKind::Regression);
    assert_eq!(task.kind.num_outputs(), 1);
    assert_eq!(task.metrics, [MetricKind::Spearman, MetricKind::Pearson]);
    assert_eq!(task.train[0].text_a, "A man is playing a guitar.");
    assert_eq!(
        task.train[0].text_b.as_deref(),
        Some("A man plays the guitar.")
    );
    assert_eq!(task.train[0].label, Some(Label::Value(4.8)));
    assert_eq!(task.train[1].label, Some(Label::Value(0.0)));
    assert_eq!(task.dev[1].label, Some(Label::Value(0.25)));
    assert_eq!(task.test.len(), 1);
    assert_eq!(task.test[0].label, None);
}

#[test]
fn qqp_skips_malformed_rows() {
    let dir = glue("QQP");
    let task = load_glue(GlueTask::Qqp, &dir).expect("qqp");
    // rows on lines 4 and 5 are one question broken over two lines: both skipped
    assert_eq!(task.train.len(), 3);
    assert_eq!(task.train[2].text_a, "How can I sleep better?");
    assert_eq!(task.train[2].location, at(&dir.join("train.tsv"), 6));
    assert_eq!(task.train[2].label, Some(Label::Class(1)));
    assert_eq!(task.test[0].text_a, "How do magnets work?");
    assert_eq!(
        task.test[0].text_b.as_deref(),
        Some("Why do magnets attract iron?")
    );
}

#[test]
fn mnli_matched_and_mismatched() {
    let dir = glue("MNLI");
    let task = load_glue(GlueTask::Mnli, &dir).expect("mnli");
    assert_eq!(labels(&task), ["contradiction", "entailment", "neutral"]);
    assert_eq!(
        task.train.iter().map(|e| e.label).collect::<Vec<_>>(),
        [
            Some(Label::Class(1)),
            Some(Label::Class(0)),
            Some(Label::Class(2))
        ]
    );
    assert_eq!(task.train[0].text_a, "The door was left open all night.");
    assert_eq!(
        task.train[0].text_b.as_deref(),
        Some("Someone forgot to close the door.")
    );
    // dev: gold_label is the last of 16 columns
    assert_eq!(task.dev.len(), 2);
    assert_eq!(task.dev[1].label, Some(Label::Class(0)));
    assert_eq!(task.extra_dev.len(), 1);
    assert_eq!(task.extra_dev[0].0, "mnli-mm");
    assert_eq!(task.extra_dev[0].1.len(), 3);
    assert_eq!(task.extra_dev[0].1[1].label, Some(Label::Class(2)));
    assert_eq!(task.test.len(), 1);
    assert_eq!(task.test[0].text_b.as_deref(), Some("The room had light."));

    let mm = load_glue(GlueTask::MnliMismatched, &dir).expect("mnli-mm");
    assert_eq!(mm.name, "mnli-mm");
    assert_eq!(mm.dev.len(), 3);
    assert_eq!(mm.dev[0].location, at(&dir.join("dev_mismatched.tsv"), 2));
    assert_eq!(mm.test.len(), 2);
    assert!(mm.extra_dev.is_empty());
}

#[test]
fn qnli_rte_wnli() {
    let qnli = load_glue(GlueTask::Qnli, &glue("QNLI")).expect("qnli");
    assert_eq!(labels(&qnli), ["entailment", "not_entailment"]);
    assert_eq!(qnli.train[1].text_a, "Who painted the mural?");
    assert_eq!(qnli.train[1].label, Some(Label::Class(1)));
    assert_eq!(
        qnli.test[0].text_b.as_deref(),
        Some("The lake lies north of the town.")
    );

    let rte = load_glue(GlueTask::Rte, &glue("RTE")).expect("rte");
    assert_eq!(labels(&rte), ["entailment", "not_entailment"]);
    assert_eq!(rte.metrics, [MetricKind::Accuracy]);
    assert_eq!(rte.dev[0].label, Some(Label::Class(1)));
    assert_eq!(rte.dev[1].text_b.as_deref(), Some("The lake froze."));

    let wnli = load_glue(GlueTask::Wnli, &glue("WNLI")).expect("wnli");
    assert_eq!(labels(&wnli), ["0", "1"]);
    assert_eq!(wnli.train[1].label, Some(Label::Class(0)));
    assert_eq!(wnli.test.len(), 1);
}

#[test]
fn glue_test_file_is_optional() {
    let dir = scratch("glue_no_test");
    std::fs::copy(glue("RTE").join("train.tsv"), dir.join("train.tsv")).expect("copy");
    std::fs::copy(glue("RTE").join("dev.tsv"), dir.join("dev.tsv")).expect("copy");
    let task = load_glue(GlueTask::Rte, &dir).expect("rte");
    assert!(task.test.is_empty());
    // but dev is not
    std::fs::remove_file(dir.join("dev.tsv")).expect("rm");
    let err = load_glue(GlueTask::Rte, &dir).expect_err("no dev");
    assert!(
        err.to_string()
            .contains(&dir.join("dev.tsv").display().to_string()),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Generic files

#[test]
fn generic_tsv_files() {
    let dir = fixtures().join("generic");
    let task = load_generic_files(
        &dir.join("train.tsv"),
        &dir.join("dev.tsv"),
        Some(&dir.join("test.tsv")),
        &GenericOptions::default(),
    )
    .expect("tsv");
    assert_eq!(task.name, "generic");
    assert_eq!(labels(&task), ["negative", "neutral", "positive"]);
    assert_eq!(task.metrics, [MetricKind::Accuracy]);
    assert_eq!(task.train[1].label, Some(Label::Class(0)));
    assert_eq!(task.train[3].text_a, "lovely view, will come back");
    assert_eq!(task.dev[2].label, Some(Label::Class(1)));
    assert_eq!(task.test.len(), 2);
    assert!(task.test.iter().all(|e| e.label.is_none()));
}

#[test]
fn generic_csv_with_quoting() {
    let dir = fixtures().join("generic");
    let task = load_generic_files(
        &dir.join("train.csv"),
        &dir.join("dev.csv"),
        None,
        &GenericOptions {
            name: Some("greetings".into()),
            regression: false,
        },
    )
    .expect("csv");
    assert_eq!(task.name, "greetings");
    assert_eq!(labels(&task), ["no", "yes"]);
    assert_eq!(
        task.metrics,
        [MetricKind::Accuracy, MetricKind::F1 { positive: 1 }]
    );
    assert_eq!(task.train[0].text_a, "Hello, world");
    assert_eq!(task.train[0].text_b.as_deref(), Some("a greeting"));
    assert_eq!(task.train[2].text_a, "She said \"hi\" twice");
    assert_eq!(task.train[3].text_a, "two\nlines");
    // a record's line is the line it starts on
    assert_eq!(task.train[3].location, at(&dir.join("train.csv"), 5));
    // dev columns in another order
    assert_eq!(task.dev[0].text_a, "Good morning, all");
    assert_eq!(task.dev[0].label, Some(Label::Class(1)));
    assert!(task.test.is_empty());
}

#[test]
fn generic_jsonl_numeric_labels_and_regression() {
    let dir = fixtures().join("generic");
    let task = load_generic_files(
        &dir.join("train.jsonl"),
        &dir.join("dev.jsonl"),
        None,
        &GenericOptions::default(),
    )
    .expect("jsonl");
    // integer labels sort numerically
    assert_eq!(labels(&task), ["1", "2", "10"]);
    assert_eq!(task.train[2].text_a, "ten");
    assert_eq!(task.train[2].label, Some(Label::Class(2)));
    assert_eq!(task.train[2].location, at(&dir.join("train.jsonl"), 4));
    // "1" (string) and 10 (number) name the same labels
    assert_eq!(task.dev[0].label, Some(Label::Class(0)));
    assert_eq!(task.dev[1].label, Some(Label::Class(2)));

    let reg = load_generic_files(
        &dir.join("scores_train.jsonl"),
        &dir.join("scores_dev.jsonl"),
        None,
        &GenericOptions {
            name: None,
            regression: true,
        },
    )
    .expect("regression");
    assert_eq!(reg.kind, TaskKind::Regression);
    assert_eq!(reg.metrics, [MetricKind::Spearman, MetricKind::Pearson]);
    assert_eq!(reg.train[0].text_a, "a cat");
    assert_eq!(reg.train[0].text_b.as_deref(), Some("a kitten"));
    assert_eq!(reg.train[0].label, Some(Label::Value(4.5)));
    assert_eq!(reg.dev[0].label, Some(Label::Value(4.0)));
}

#[test]
fn single_file_with_split_column_sms_spam_sample() {
    let path = fixtures().join("sms_spam_sample.tsv");
    let task = load_generic_single(&path, &GenericOptions::default()).expect("sms");
    assert_eq!(task.name, "sms_spam_sample");
    assert_eq!(labels(&task), ["ham", "spam"]);
    assert_eq!(
        task.metrics,
        [MetricKind::Accuracy, MetricKind::F1 { positive: 1 }]
    );
    assert_eq!(
        (task.train.len(), task.dev.len(), task.test.len()),
        (14, 5, 3)
    );
    assert_eq!(
        task.train[0].text_a,
        "Go until jurong point, crazy.. Available only in bugis n great world la e buffet... Cine there got amore wat..."
    );
    assert_eq!(task.train[0].label, Some(Label::Class(0)));
    assert_eq!(task.train[9].label, Some(Label::Class(1)));
    assert_eq!(task.train[0].location, at(&path, 2));
    // a double quote inside the text is text
    assert!(task.dev[4].text_a.contains("\"Divorce Barbie\""));
    assert_eq!(task.test[2].label, Some(Label::Class(1)));

    // the same file compressed with xz reads the same
    let xz_path = fixtures().join("sms_spam_sample.tsv.xz");
    let xz = load_generic_single(&xz_path, &GenericOptions::default()).expect("xz");
    assert_eq!(xz.name, "sms_spam_sample");
    assert_eq!(xz.kind, task.kind);
    let texts = |t: &TextTask| {
        t.train
            .iter()
            .chain(&t.dev)
            .chain(&t.test)
            .map(|e| (e.text_a.clone(), e.label))
            .collect::<Vec<_>>()
    };
    assert_eq!(texts(&xz), texts(&task));
    assert_eq!(xz.dev[0].location, at(&xz_path, 16));
}

/// The real task files of the shared data directory (not part of the repository: run with
/// `cargo test -p electra-finetune --test data -- --ignored` where `../shared` sits beside the
/// checkout).
#[test]
#[ignore = "needs ../shared/data/tasks beside the checkout"]
fn real_task_files() {
    let tasks = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/tasks");
    let sms = tasks.join("sms_spam.tsv.xz");
    assert!(sms.is_file(), "{} not found", sms.display());
    let task = load_generic_single(&sms, &GenericOptions::default()).expect("sms_spam");
    assert_eq!(task.name, "sms_spam");
    assert_eq!(labels(&task), ["ham", "spam"]);
    assert_eq!(
        (task.train.len(), task.dev.len(), task.test.len()),
        (3608, 467, 436)
    );
    let tweets = tasks.join("crowdflower_tweet_sentiment.tsv.xz");
    if tweets.is_file() {
        let task = load_generic_single(&tweets, &GenericOptions::default()).expect("tweets");
        assert_eq!(labels(&task), ["negative", "neutral", "positive"]);
        assert_eq!(
            (task.train.len(), task.dev.len(), task.test.len()),
            (29614, 3785, 3804)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

#[test]
fn unknown_label_in_dev_names_file_line_label_and_known_set() {
    let dir = scratch("unknown_label");
    let train = write(&dir, "train.tsv", b"text\tlabel\na\tpos\nb\tneg\n");
    let dev = write(&dir, "dev.tsv", b"text\tlabel\nc\tpos\nd\tmaybe\n");
    let err =
        load_generic_files(&train, &dev, None, &GenericOptions::default()).expect_err("unknown");
    assert!(matches!(err, Error::UnknownLabel { .. }), "{err:?}");
    assert_error(&err, &dev, 3, &["\"maybe\"", "neg, pos"]);
    // in a test file too
    let test = write(&dir, "test.tsv", b"text\tlabel\ne\t\nf\tbad\n");
    let err = load_generic_files(&train, &train, Some(&test), &GenericOptions::default())
        .expect_err("unknown");
    assert_error(&err, &test, 3, &["\"bad\""]);
    // and a GLUE label outside the task's list
    let glue_dir = scratch("unknown_glue_label");
    write(
        &glue_dir,
        "train.tsv",
        b"sentence\tlabel\ngood\t1\nbad\t2\n",
    );
    let err = load_glue(GlueTask::Sst2, &glue_dir).expect_err("label 2");
    assert_error(&err, &glue_dir.join("train.tsv"), 3, &["\"2\"", "0, 1"]);
}

#[test]
fn empty_splits_name_the_file_and_split() {
    let dir = scratch("empty_split");
    let single = write(
        &dir,
        "all.tsv",
        b"split\tlabel\ttext\ntrain\ta\tx\ntrain\tb\ty\ntest\ta\tz\n",
    );
    let err = load_generic_single(&single, &GenericOptions::default()).expect_err("no dev");
    assert!(matches!(err, Error::EmptySplit { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("{}: no dev examples", single.display())
    );

    let train = write(&dir, "train.tsv", b"text\tlabel\n");
    let dev = write(&dir, "dev.tsv", b"text\tlabel\nx\ta\n");
    let err =
        load_generic_files(&train, &dev, None, &GenericOptions::default()).expect_err("empty");
    assert_eq!(
        err.to_string(),
        format!("{}: no train examples", train.display())
    );
    let empty = write(&dir, "empty.jsonl", b"");
    let err =
        load_generic_files(&empty, &dev, None, &GenericOptions::default()).expect_err("empty");
    assert_eq!(
        err.to_string(),
        format!("{}: no train examples", empty.display())
    );

    let glue_dir = scratch("empty_glue_dev");
    write(
        &glue_dir,
        "train.tsv",
        b"index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n",
    );
    write(
        &glue_dir,
        "dev.tsv",
        b"index\tsentence1\tsentence2\tlabel\n",
    );
    let err = load_glue(GlueTask::Rte, &glue_dir).expect_err("empty dev");
    assert_eq!(
        err.to_string(),
        format!("{}: no dev examples", glue_dir.join("dev.tsv").display())
    );
}

#[test]
fn wrong_column_counts() {
    let dir = scratch("columns");
    let train = write(&dir, "train.tsv", b"text\tlabel\na\tx\nb\ty\textra\n");
    let err =
        load_generic_files(&train, &train, None, &GenericOptions::default()).expect_err("cols");
    assert!(matches!(err, Error::Columns { .. }), "{err:?}");
    assert_error(&err, &train, 3, &["expected 2 columns, found 3"]);

    let csv = write(&dir, "train.csv", b"text,label\na,x\nb\n");
    let err = load_generic_files(&csv, &csv, None, &GenericOptions::default()).expect_err("cols");
    assert_error(&err, &csv, 3, &["expected 2 columns, found 1"]);

    let glue_dir = scratch("columns_glue");
    write(
        &glue_dir,
        "train.tsv",
        b"index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\ta\tentailment\n",
    );
    let err = load_glue(GlueTask::Rte, &glue_dir).expect_err("cols");
    assert_error(
        &err,
        &glue_dir.join("train.tsv"),
        3,
        &["expected 4 columns, found 3"],
    );

    let cola = scratch("columns_cola");
    write(&cola, "train.tsv", b"s1\t1\t\tFine.\ns1\t0\t*\n");
    let err = load_glue(GlueTask::Cola, &cola).expect_err("cols");
    assert_error(
        &err,
        &cola.join("train.tsv"),
        2,
        &["expected 4 columns, found 3"],
    );
}

#[test]
fn missing_header_fields() {
    let dir = scratch("missing_field");
    let no_label = write(&dir, "train.tsv", b"text\tscore\na\t1\n");
    let err = load_generic_files(&no_label, &no_label, None, &GenericOptions::default())
        .expect_err("label");
    assert!(matches!(err, Error::MissingField { .. }), "{err:?}");
    assert_error(&err, &no_label, 1, &["missing field label"]);
    let no_text = write(&dir, "train2.tsv", b"body\tlabel\na\tx\n");
    let err =
        load_generic_files(&no_text, &no_text, None, &GenericOptions::default()).expect_err("text");
    assert_error(
        &err,
        &no_text,
        1,
        &["missing field text|sentence|text_a|sentence1"],
    );
    let no_split = write(&dir, "all.tsv", b"text\tlabel\na\tx\n");
    let err = load_generic_single(&no_split, &GenericOptions::default()).expect_err("split");
    assert_error(&err, &no_split, 1, &["missing field split"]);
    let jsonl = write(
        &dir,
        "train.jsonl",
        b"{\"text\": \"a\", \"label\": \"x\"}\n{\"label\": \"y\"}\n",
    );
    let err =
        load_generic_files(&jsonl, &jsonl, None, &GenericOptions::default()).expect_err("text");
    assert_error(&err, &jsonl, 2, &["missing field text"]);

    let glue_dir = scratch("missing_field_glue");
    write(&glue_dir, "train.tsv", b"text\tlabel\na\t1\n");
    let err = load_glue(GlueTask::Sst2, &glue_dir).expect_err("sentence");
    assert_error(
        &err,
        &glue_dir.join("train.tsv"),
        1,
        &["missing field sentence"],
    );
    write(
        &glue_dir,
        "train.tsv",
        b"id\tqid1\tqid2\tquestion1\tquestion2\n0\t1\t2\ta\tb\n",
    );
    let err = load_glue(GlueTask::Qqp, &glue_dir).expect_err("label");
    assert_error(
        &err,
        &glue_dir.join("train.tsv"),
        1,
        &["missing field is_duplicate"],
    );
}

#[test]
fn invalid_utf8_names_the_line() {
    let dir = scratch("utf8");
    let tsv = write(&dir, "train.tsv", b"text\tlabel\nok\ta\nbad \xff byte\tb\n");
    let err = load_generic_files(&tsv, &tsv, None, &GenericOptions::default()).expect_err("utf8");
    assert!(matches!(err, Error::InvalidUtf8 { .. }), "{err:?}");
    assert_eq!(err.to_string(), format!("{}: invalid utf-8", at(&tsv, 3)));
    let csv = write(
        &dir,
        "train.csv",
        b"text,label\nok,a\nok,b\n\"bad \xfe\",a\n",
    );
    let err = load_generic_files(&csv, &csv, None, &GenericOptions::default()).expect_err("utf8");
    assert_eq!(err.to_string(), format!("{}: invalid utf-8", at(&csv, 4)));
    let conll = write(&dir, "train.txt", b"EU B-ORG\n\nBad\xc3 O\n");
    let err = read_conll(&conll).expect_err("utf8");
    assert_eq!(err.to_string(), format!("{}: invalid utf-8", at(&conll, 3)));
}

#[test]
fn unparsable_regression_value() {
    let dir = scratch("float");
    let train = write(
        &dir,
        "train.tsv",
        b"sentence1\tsentence2\tlabel\na\tb\t1.5\nc\td\tfive\n",
    );
    let reg = GenericOptions {
        name: None,
        regression: true,
    };
    let err = load_generic_files(&train, &train, None, &reg).expect_err("float");
    assert_error(&err, &train, 3, &["field label", "\"five\""]);
    let nan = write(&dir, "nan.tsv", b"text\tlabel\na\tNaN\n");
    let err = load_generic_files(&nan, &nan, None, &reg).expect_err("nan");
    assert_error(&err, &nan, 2, &["\"NaN\""]);
    let glue_dir = scratch("float_glue");
    let mut stsb = std::fs::read(glue("STS-B").join("train.tsv")).expect("read");
    stsb.extend_from_slice(b"3\tg\tf\t2012\t0\tnone\tnone\ta\tb\tn/a\n");
    write(&glue_dir, "train.tsv", &stsb);
    let err = load_glue(GlueTask::Stsb, &glue_dir).expect_err("score");
    assert_error(
        &err,
        &glue_dir.join("train.tsv"),
        5,
        &["field score", "\"n/a\""],
    );
}

#[test]
fn other_bad_inputs() {
    let dir = scratch("other");
    // invalid JSON line
    let jsonl = write(
        &dir,
        "train.jsonl",
        b"{\"text\": \"a\", \"label\": \"x\"}\n{\"text\": \"b\",\n",
    );
    let err =
        load_generic_files(&jsonl, &jsonl, None, &GenericOptions::default()).expect_err("json");
    assert_error(&err, &jsonl, 2, &["invalid json"]);
    // a JSON line that is not an object, a label that is an array
    let arr = write(&dir, "arr.jsonl", b"[1, 2]\n");
    let err = load_generic_files(&arr, &arr, None, &GenericOptions::default()).expect_err("array");
    assert_error(&err, &arr, 1, &["expected a json object, found an array"]);
    let lab = write(&dir, "lab.jsonl", b"{\"text\": \"a\", \"label\": [1]}\n");
    let err = load_generic_files(&lab, &lab, None, &GenericOptions::default()).expect_err("label");
    assert_error(&err, &lab, 1, &["field label", "an array"]);
    // unknown split value
    let single = write(
        &dir,
        "all.tsv",
        b"split\tlabel\ttext\ntrain\ta\tx\nholdout\tb\ty\n",
    );
    let err = load_generic_single(&single, &GenericOptions::default()).expect_err("split");
    assert_error(&err, &single, 3, &["unknown split \"holdout\""]);
    // empty label in train
    let empty_label = write(&dir, "el.tsv", b"text\tlabel\na\tx\nb\t \nc\ty\n");
    let err = load_generic_files(&empty_label, &empty_label, None, &GenericOptions::default())
        .expect_err("empty label");
    assert_error(&err, &empty_label, 3, &["field label is empty"]);
    // a single training label
    let one = write(&dir, "one.tsv", b"text\tlabel\na\tx\nb\tx\n");
    let err =
        load_generic_files(&one, &one, None, &GenericOptions::default()).expect_err("one label");
    assert!(err.to_string().contains("at least 2"), "{err}");
    // unknown format and missing file
    let txt = write(&dir, "train.txt", b"hello\n");
    let err = load_generic_files(&txt, &txt, None, &GenericOptions::default()).expect_err("format");
    assert!(
        err.to_string().starts_with(&format!(
            "{}: unknown task file format \"txt\"",
            txt.display()
        )),
        "{err}"
    );
    let missing = dir.join("missing.tsv");
    let err =
        load_generic_files(&missing, &missing, None, &GenericOptions::default()).expect_err("io");
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );
    // a corrupt .xz file is an error naming it
    let xz = write(&dir, "bad.tsv.xz", b"\xfd7zXZ\x00 not really xz");
    let err = load_generic_single(&xz, &GenericOptions::default()).expect_err("xz");
    assert!(err.to_string().contains(&xz.display().to_string()), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Sequence classification features

#[test]
fn text_features_build_pairs_and_truncate_longest_first() {
    let tok = tokenizer();
    let special = tok.special_tokens();
    let task = load_glue(GlueTask::Rte, &glue("RTE")).expect("rte");
    let features = text_features(&tok, &task.train, 128).expect("features");
    assert_eq!(features.len(), task.train.len());
    for (f, e) in features.iter().zip(&task.train) {
        // The `tokenizers` pipeline alone: an independent reference for the fast path.
        let a = tok.encode_ids_reference(&e.text_a).expect("a");
        let b = tok
            .encode_ids_reference(e.text_b.as_deref().expect("pair"))
            .expect("b");
        let mut want = vec![special.cls];
        want.extend(&a);
        want.push(special.sep);
        want.extend(&b);
        want.push(special.sep);
        assert_eq!(f.input.input_ids, want);
        assert_eq!(
            f.input.token_type_ids.iter().filter(|&&t| t == 1).count(),
            b.len() + 1
        );
        assert_eq!(f.label, e.label);
    }
    // "the storm closed every road into the valley ." (9) + "roads into the valley were closed ." (7)
    // cut to 10 content tokens: the longer (a) is cut first -> 5 + 5
    let short = text_features(&tok, &task.train[..1], 13).expect("short");
    let ids = &short[0].input.input_ids;
    assert_eq!(ids.len(), 13);
    assert_eq!(ids.iter().filter(|&&t| t == special.sep).count(), 2);
    assert_eq!(
        short[0]
            .input
            .token_type_ids
            .iter()
            .filter(|&&t| t == 0)
            .count(),
        1 + 5 + 1
    );
    // single sentences
    let sst = load_glue(GlueTask::Sst2, &glue("SST-2")).expect("sst");
    let f = text_features(&tok, &sst.test, 4).expect("single");
    assert_eq!(f[0].input.input_ids.len(), 4);
    assert_eq!(f[0].input.input_ids[3], special.sep);
    assert!(f.iter().all(|f| f.label.is_none()));
    assert!(text_features(&tok, &task.train, 2).is_err());
}

// ---------------------------------------------------------------------------------------------
// SQuAD

#[test]
fn squad_v1_reading_and_answer_offsets() {
    let path = fixtures().join("squad/v1.json");
    let examples = read_squad(&path).expect("v1");
    assert_eq!(examples.len(), 5);
    assert_eq!(examples[0].id, "q1");
    assert_eq!(examples[0].title, "Calvera");
    assert_eq!(examples[0].answers.len(), 2);
    assert!(examples.iter().all(|e| !e.is_impossible));
    // every answer is found at its text, including q2 whose answer_start is 3 off
    for e in &examples {
        for a in &e.answers {
            let (s, t) = a.span.expect("located");
            assert_eq!(&e.context[s..t], a.text, "{}", e.id);
        }
    }
    // character offsets are converted to byte offsets: "Renée Olsen" is at char 48, byte 52
    let q4 = &examples[3];
    assert_eq!(q4.answers[0].char_start, 48);
    assert_eq!(q4.answer_span(), Some((52, 52 + "Renée Olsen".len())));
    // questions on one paragraph share its text
    assert!(std::sync::Arc::ptr_eq(
        &examples[0].context,
        &examples[2].context
    ));
}

fn span_text<'a>(
    e: &'a electra_finetune::data::SquadExample,
    f: &electra_finetune::data::SquadFeature,
    s: usize,
    t: usize,
) -> &'a str {
    let (a, _) = f.context_spans[s].expect("context token");
    let (_, b) = f.context_spans[t].expect("context token");
    &e.context[a..b]
}

#[test]
fn squad_features_windows_and_positions() {
    let tok = tokenizer();
    let special = tok.special_tokens();
    let examples = read_squad(&fixtures().join("squad/v1.json")).expect("v1");
    // default windows: one feature per example, the answer inside it
    let features =
        squad_features(&tok, &examples, &SquadConfig::default(), true).expect("features");
    assert_eq!(features.len(), examples.len());
    for f in &features {
        let e = &examples[f.example_index];
        assert_eq!(f.input.input_ids[0], special.cls);
        assert_eq!(*f.input.input_ids.last().expect("sep"), special.sep);
        let q = tok.encode_ids(&e.question).expect("q");
        assert_eq!(f.input.input_ids[1..=q.len()], q[..]);
        assert_eq!(f.input.input_ids[q.len() + 1], special.sep);
        assert_eq!(f.input.token_type_ids[q.len() + 1], 0);
        assert_eq!(f.input.token_type_ids[q.len() + 2], 1);
        assert!(f.context_spans[..q.len() + 2].iter().all(Option::is_none));
        assert!(f.context_spans.last().expect("sep").is_none());
        assert!(f.start_position > 0 && f.end_position >= f.start_position);
        assert_eq!(
            span_text(e, f, f.start_position, f.end_position),
            e.answers[0].text
        );
    }

    // small windows: several per example, each context token has its max context in exactly
    // one window, and the answer is labelled in the windows that contain it
    let config = SquadConfig {
        max_seq_len: 20,
        doc_stride: 4,
        max_query_len: 6,
    };
    let features = squad_features(&tok, &examples, &config, true).expect("features");
    assert!(features.len() > 2 * examples.len());
    for (i, e) in examples.iter().enumerate() {
        let mine: Vec<_> = features.iter().filter(|f| f.example_index == i).collect();
        let n_context = tok.encode(&e.context).expect("ctx").len();
        let mut max_count: BTreeMap<(usize, usize), usize> = BTreeMap::new();
        let mut labelled = 0;
        for f in &mine {
            assert!(f.input.len() <= 20);
            let q = tok.encode_ids(&e.question).expect("q").len().min(6);
            assert_eq!(
                f.input.token_type_ids.iter().filter(|&&t| t == 0).count(),
                q + 2
            );
            for (p, span) in f.context_spans.iter().enumerate() {
                if let Some(span) = span
                    && f.max_context[p]
                {
                    *max_count.entry(*span).or_default() += 1;
                }
            }
            if f.start_position != 0 {
                labelled += 1;
                assert_eq!(
                    span_text(e, f, f.start_position, f.end_position),
                    e.answers[0].text
                );
            }
        }
        assert_eq!(max_count.len(), n_context, "{}", e.id);
        assert!(max_count.values().all(|&c| c == 1), "{}", e.id);
        assert!(labelled >= 1, "{}", e.id);
        assert!(
            labelled < mine.len(),
            "{}: some window lacks the answer",
            e.id
        );
    }
    // window settings that leave no room are errors, not panics
    let bad = SquadConfig {
        max_seq_len: 8,
        doc_stride: 4,
        max_query_len: 6,
    };
    assert!(squad_features(&tok, &examples, &bad, false).is_err());
    let bad = SquadConfig {
        doc_stride: 0,
        ..SquadConfig::default()
    };
    assert!(squad_features(&tok, &examples, &bad, false).is_err());
}

/// Logits that point at `(start, end)` with the given margin over everything else.
fn logits(len: usize, start: usize, end: usize, null: f32) -> (Vec<f32>, Vec<f32>) {
    let mut s = vec![-5.0; len];
    let mut e = vec![-5.0; len];
    s[0] = null / 2.0;
    e[0] = null / 2.0;
    s[start] = 4.0;
    e[end] = 4.0;
    (s, e)
}

#[test]
fn squad_postprocessing_recovers_gold_answers() {
    let tok = tokenizer();
    let examples = read_squad(&fixtures().join("squad/v1.json")).expect("v1");
    let config = SquadConfig {
        max_seq_len: 24,
        doc_stride: 6,
        max_query_len: 8,
    };
    let features = squad_features(&tok, &examples, &config, false).expect("features");
    let (mut starts, mut ends) = (Vec::new(), Vec::new());
    for f in &features {
        let (s, e) = if f.start_position > 0 {
            logits(f.input.len() + 3, f.start_position, f.end_position, 0.0) // padded rows are fine
        } else {
            // windows without the answer point at a span with a lower score
            let first = f
                .context_spans
                .iter()
                .position(Option::is_some)
                .expect("context");
            let (mut s, mut e) = logits(f.input.len(), first, first, 0.0);
            s[first] = 1.0;
            e[first] = 1.0;
            (s, e)
        };
        starts.push(s);
        ends.push(e);
    }
    let predictions = squad_predictions(
        &examples,
        &features,
        &starts,
        &ends,
        &SquadPostConfig::default(),
    )
    .expect("post");
    assert_eq!(predictions.len(), examples.len());
    for e in &examples {
        assert_eq!(predictions[&e.id], e.answers[0].text, "{}", e.id);
    }
    let scores = squad_evaluate(&examples, &predictions).expect("scores");
    assert_eq!((scores.exact, scores.f1), (1.0, 1.0));

    // max_answer_len 1 forbids the two-token answers: they fall back to shorter spans
    let short = SquadPostConfig {
        max_answer_len: 1,
        ..SquadPostConfig::default()
    };
    let p = squad_predictions(&examples, &features, &starts, &ends, &short).expect("post");
    assert_ne!(p["q4"], "Renée Olsen");
    assert!(tok.encode(&p["q4"]).expect("enc").len() <= 1);

    // mismatched logits are errors
    assert!(
        squad_predictions(
            &examples,
            &features,
            &starts[1..],
            &ends,
            &SquadPostConfig::default()
        )
        .is_err()
    );
    let mut cut = starts.clone();
    cut[0].truncate(2);
    assert!(
        squad_predictions(
            &examples,
            &features,
            &cut,
            &ends,
            &SquadPostConfig::default()
        )
        .is_err()
    );
}

#[test]
fn squad_v2_null_answers_and_threshold() {
    let tok = tokenizer();
    let path = fixtures().join("squad/v2.json");
    let examples = read_squad(&path).expect("v2");
    assert_eq!(examples.len(), 3);
    assert!(examples[1].is_impossible);
    assert!(examples[1].answers.is_empty());
    let features =
        squad_features(&tok, &examples, &SquadConfig::default(), true).expect("features");
    assert_eq!(features.len(), 3);
    // the unanswerable question is labelled [CLS]
    assert_eq!(
        (features[1].start_position, features[1].end_position),
        (0, 0)
    );
    let mut starts = Vec::new();
    let mut ends = Vec::new();
    for f in &features {
        // null score 6 for the unanswerable question, 2 for the others; the best span scores 8
        // where there is an answer, and (for the unanswerable one) the first context token 2
        let (s, e) = if f.start_position > 0 {
            logits(f.input.len(), f.start_position, f.end_position, 2.0)
        } else {
            let first = f
                .context_spans
                .iter()
                .position(Option::is_some)
                .expect("context");
            let (mut s, mut e) = logits(f.input.len(), first, first, 6.0);
            s[first] = 1.0;
            e[first] = 1.0;
            (s, e)
        };
        starts.push(s);
        ends.push(e);
    }
    let v2 = SquadPostConfig {
        version_2: true,
        ..SquadPostConfig::default()
    };
    let p = squad_predictions(&examples, &features, &starts, &ends, &v2).expect("post");
    assert_eq!(p["w1"], "1978");
    assert_eq!(p["w2"], "");
    assert_eq!(p["w3"], "Ada Frost");
    let scores = squad_evaluate(&examples, &p).expect("scores");
    assert_eq!((scores.exact, scores.f1), (1.0, 1.0));
    assert_eq!(scores.no_answer_total, 1);
    // null - best = 6 - 2 = 4 for w2: a threshold of 4 or more answers the span
    let lenient = SquadPostConfig {
        null_threshold: 4.5,
        ..v2
    };
    let p = squad_predictions(&examples, &features, &starts, &ends, &lenient).expect("post");
    assert_ne!(p["w2"], "");
    // w1: null 2 - best 8 = -6: a threshold below -6 answers "" even there
    let strict = SquadPostConfig {
        null_threshold: -7.0,
        ..v2
    };
    let p = squad_predictions(&examples, &features, &starts, &ends, &strict).expect("post");
    assert_eq!(p["w1"], "");
    // v1 mode never answers ""
    let p = squad_predictions(
        &examples,
        &features,
        &starts,
        &ends,
        &SquadPostConfig::default(),
    )
    .expect("post");
    assert_ne!(p["w2"], "");
}

#[test]
fn squad_bad_files() {
    let dir = scratch("squad_bad");
    let bad = write(
        &dir,
        "bad.json",
        b"{\"data\": [{\"title\": \"t\",\n \"paragraphs\": [{\"qas\": []}]}]}",
    );
    let err = read_squad(&bad).expect_err("no context");
    let msg = err.to_string();
    assert!(
        msg.contains(&bad.display().to_string())
            && msg.contains("context")
            && msg.contains("line 2"),
        "{msg}"
    );
    let dup = write(
        &dir,
        "dup.json",
        br#"{"data": [{"paragraphs": [{"context": "x", "qas": [
            {"id": "a", "question": "q", "answers": []},
            {"id": "a", "question": "q", "answers": []}]}]}]}"#,
    );
    let err = read_squad(&dup).expect_err("duplicate");
    assert_eq!(
        err.to_string(),
        format!("{}: duplicate question id \"a\"", dup.display())
    );
    let empty = write(&dir, "empty.json", br#"{"data": []}"#);
    assert!(matches!(read_squad(&empty), Err(Error::EmptySplit { .. })));
}

// ---------------------------------------------------------------------------------------------
// CoNLL

#[test]
fn conll_sentences_and_label_set() {
    let dir = fixtures().join("conll");
    let task = load_conll(
        &dir.join("train.txt"),
        &dir.join("dev.txt"),
        Some(&dir.join("test.txt")),
    )
    .expect("conll");
    assert_eq!(task.name, "conll");
    assert_eq!(
        task.labels,
        ["O", "B-LOC", "B-MISC", "B-ORG", "B-PER", "I-PER"]
    );
    assert_eq!(task.outside_label(), Some(0));
    assert_eq!(task.train.len(), 3);
    assert_eq!(
        task.train[0].words,
        ["EU", "rejects", "German", "call", "."]
    );
    assert_eq!(task.train[0].labels, [3, 0, 2, 0, 0]);
    assert_eq!(task.train[0].location, at(&dir.join("train.txt"), 3));
    assert_eq!(task.train[1].words, ["Peter", "Blackburn"]);
    assert_eq!(task.train[1].labels, [4, 5]);
    assert_eq!(task.train[2].words, ["BRUSSELS", "1996-08-22"]);
    // tab-separated dev file
    assert_eq!(task.dev[0].words, ["Ana", "visited", "Paris"]);
    assert_eq!(task.dev[0].labels, [4, 0, 1]);
    // several blank lines in a row end one sentence
    assert_eq!(task.test.len(), 2);
    assert_eq!(task.test[1].words, ["Oslo"]);
}

#[test]
fn conll_errors() {
    let dir = scratch("conll_bad");
    let train = write(&dir, "train.txt", b"EU NNP B-ORG\nrejects VBZ O\n");
    let dev = write(&dir, "dev.txt", b"Paris NNP B-LOC\n");
    let err = load_conll(&train, &dev, None).expect_err("unknown");
    assert!(matches!(err, Error::UnknownLabel { .. }), "{err:?}");
    assert_error(&err, &dev, 1, &["\"B-LOC\"", "O, B-ORG"]);
    let cols = write(&dir, "cols.txt", b"EU NNP B-ORG\nrejects O\n");
    let err = read_conll(&cols).expect_err("cols");
    assert_error(&err, &cols, 2, &["expected 3 columns, found 2"]);
    let one = write(&dir, "one.txt", b"\nEU\n");
    let err = read_conll(&one).expect_err("one column");
    assert_error(&err, &one, 2, &["expected 2 columns, found 1"]);
    let empty = write(&dir, "empty.txt", b"-DOCSTART- -X- O\n\n");
    let err = load_conll(&empty, &dev, None).expect_err("empty");
    assert_eq!(
        err.to_string(),
        format!("{}: no train examples", empty.display())
    );
}

#[test]
fn tagging_features_label_first_subwords() {
    let tok = tokenizer();
    let special = tok.special_tokens();
    let dir = fixtures().join("conll");
    let task = load_conll(&dir.join("train.txt"), &dir.join("dev.txt"), None).expect("conll");
    let features = tagging_features(&tok, &task.train, 64).expect("features");
    assert_eq!(features.len(), 3);
    for (f, s) in features.iter().zip(&task.train) {
        assert_eq!(f.input.input_ids[0], special.cls);
        assert_eq!(*f.input.input_ids.last().expect("sep"), special.sep);
        assert_eq!(f.labels.len(), f.input.len());
        assert!(f.input.token_type_ids.iter().all(|&t| t == 0));
        assert_eq!(f.labels[0], None);
        assert_eq!(*f.labels.last().expect("sep"), None);
        let labelled: Vec<usize> = f.labels.iter().flatten().copied().collect();
        assert_eq!(labelled, s.labels);
        assert_eq!(f.word_starts.len(), s.words.len());
        for (w, word) in s.words.iter().enumerate() {
            let p = f.word_starts[w].expect("not truncated");
            let pieces = tok.encode_ids(word).expect("word");
            assert_eq!(f.input.input_ids[p..p + pieces.len()], pieces[..], "{word}");
            assert_eq!(f.labels[p], Some(s.labels[w]));
            assert!(
                f.labels[p + 1..p + pieces.len()]
                    .iter()
                    .all(Option::is_none)
            );
        }
    }
    // "1996-08-22" is several sub-words, only the first labelled
    let date = &features[2];
    let p = date.word_starts[1].expect("date");
    assert!(date.input.len() - 1 - p > 1);

    // truncation: [CLS] + 2 tokens + [SEP]
    let cut = tagging_features(&tok, &task.train[..1], 4).expect("cut");
    assert_eq!(cut[0].input.len(), 4);
    assert_eq!(cut[0].word_starts, [Some(1), Some(2), None, None, None]);
    // word predictions: first sub-word's prediction, the fallback for cut words
    assert_eq!(word_predictions(&cut[0], &[9, 3, 1, 9], 0), [3, 1, 0, 0, 0]);
    assert!(tagging_features(&tok, &task.train, 2).is_err());
}
