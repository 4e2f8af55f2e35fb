//! Task assembly (`electra_finetune::task`) as a library user runs it: loaded data to features,
//! head and scorers, for each format; gold outputs score perfectly.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use electra_finetune::data::{GenericOptions, load_conll, load_generic_single, read_squad};
use electra_finetune::run::Outputs;
use electra_finetune::task::{TaskData, TaskOptions, prepare};
use electra_finetune::{Feature, HeadKind, Target};
use electra_tokenizer::WordPieceTokenizer;

fn tokenizer() -> WordPieceTokenizer {
    let vocab = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../datasets/vocab/vocab.txt");
    WordPieceTokenizer::from_vocab_txt(vocab, true).unwrap()
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tasks")
}

fn score(scores: &[(String, f64)], name: &str) -> f64 {
    scores.iter().find(|s| s.0 == name).map(|s| s.1).unwrap_or_else(|| panic!("no {name} in {scores:?}"))
}

/// Sequence outputs putting the gold class far ahead.
fn gold_classes(features: &[Feature], classes: usize) -> Outputs {
    features
        .iter()
        .map(|f| {
            let Some(Target::Class(c)) = f.target else { panic!("{f:?}") };
            (0..classes).map(|i| if i == c { 5.0 } else { 0.0 }).collect()
        })
        .collect()
}

#[test]
fn a_text_task_gets_a_sequence_head_and_scores_gold_outputs_perfectly() {
    let task = load_generic_single(&fixtures().join("sms_spam_sample.tsv"), &GenericOptions::default()).unwrap();
    let (train, dev) = (task.train.len(), task.dev.len());
    let options = TaskOptions { max_seq_len: 32, max_train_examples: Some(3), ..TaskOptions::default() };
    let prepared = prepare(&tokenizer(), TaskData::Text(task), &options).unwrap();
    assert!(matches!(&prepared.head, HeadKind::Sequence { labels } if labels.len() == 2), "{:?}", prepared.head);
    assert_eq!(prepared.train.len(), 3.min(train));
    assert_eq!(prepared.dev.len(), dev);
    assert!(prepared.dev.iter().all(|f| f.input_ids.len() <= 32));
    assert!(!prepared.test.is_empty(), "the sample has a labelled test split");
    assert_eq!(score(&prepared.score_dev(&gold_classes(&prepared.dev, 2)).unwrap(), "accuracy"), 1.0);
    assert_eq!(score(&prepared.score_test(&gold_classes(&prepared.test, 2)).unwrap(), "accuracy"), 1.0);
}

#[test]
fn a_conll_task_gets_a_token_head_and_scores_gold_outputs_perfectly() {
    let dir = fixtures().join("conll");
    let task = load_conll(&dir.join("train.txt"), &dir.join("dev.txt"), Some(&dir.join("test.txt"))).unwrap();
    let n = task.labels.len();
    let prepared = prepare(&tokenizer(), TaskData::Conll(task), &TaskOptions::default()).unwrap();
    assert_eq!(prepared.head, HeadKind::Token { labels: vec!["O", "B-LOC", "B-MISC", "B-ORG", "B-PER", "I-PER"].into_iter().map(String::from).collect() });
    let outputs: Outputs = prepared
        .dev
        .iter()
        .map(|f| {
            let Some(Target::Tokens(labels)) = &f.target else { panic!("{f:?}") };
            let mut o = vec![0.0; f.input_ids.len() * n];
            for (t, label) in labels.iter().enumerate() {
                if let Some(l) = label {
                    o[t * n + l] = 5.0;
                }
            }
            o
        })
        .collect();
    let scores = prepared.score_dev(&outputs).unwrap();
    assert_eq!(scores[0].0, "entity_f1");
    assert_eq!((score(&scores, "entity_f1"), score(&scores, "token_accuracy")), (1.0, 1.0));
}

#[test]
fn a_squad_task_gets_a_span_head_and_scores_gold_outputs_perfectly() {
    let examples = read_squad(&fixtures().join("squad/v1.json")).unwrap();
    let data = TaskData::Squad { name: "squad".into(), train: examples.clone(), dev: examples, test: Vec::new() };
    // Short windows, so that some questions span several.
    let options = TaskOptions { max_seq_len: 24, doc_stride: 6, max_query_len: 8, ..TaskOptions::default() };
    let prepared = prepare(&tokenizer(), data, &options).unwrap();
    assert_eq!(prepared.head, HeadKind::Span);
    assert!(prepared.test.is_empty());
    assert!(prepared.dev.iter().any(|f| f.target == Some(Target::Span { start: 0, end: 0 })), "no window without the answer");
    // Start and end logits interleaved per token, as `predict` gives them: the gold span far
    // ahead in the windows that hold it.
    let outputs: Outputs = prepared
        .dev
        .iter()
        .map(|f| {
            let Some(Target::Span { start, end }) = f.target else { panic!("{f:?}") };
            let mut o = vec![0.0; f.input_ids.len() * 2];
            if start > 0 {
                o[2 * start] = 5.0;
                o[2 * end + 1] = 5.0;
            }
            o
        })
        .collect();
    let scores = prepared.score_dev(&outputs).unwrap();
    assert_eq!(scores[0].0, "f1");
    assert_eq!((score(&scores, "f1"), score(&scores, "exact")), (1.0, 1.0));
}
