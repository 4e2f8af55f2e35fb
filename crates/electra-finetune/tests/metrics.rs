//! Metrics against values computed independently: scikit-learn, SciPy, NumPy and seqeval via
//! `scripts/make_metric_fixtures.py` (fixture `tests/fixtures/metrics/expected.json`), and hand
//! computations in comments for the SQuAD scores.

use std::collections::BTreeMap;
use std::sync::Arc;

use electra_finetune::data::{Label, SquadAnswer, SquadExample};
use electra_finetune::metrics::{
    Entity, MetricKind, accuracy, average_ranks, binary_f1, compute_metrics, entity_scores,
    get_entities, matthews_corrcoef, median, normalize_answer, pearson, spearman, squad_evaluate,
    squad_exact, squad_f1,
};
use serde_json::Value;

fn expected() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/metrics/expected.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json")
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("int") as usize)
        .collect()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("float"))
        .collect()
}

fn strings(v: &Value) -> Vec<Vec<String>> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| {
            s.as_array()
                .expect("array")
                .iter()
                .map(|t| t.as_str().expect("str").to_owned())
                .collect()
        })
        .collect()
}

fn close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() < 1e-12,
        "{what}: got {got}, expected {want}"
    );
}

#[test]
fn classification_metrics_match_scikit_learn() {
    let cases = expected()["classification"]
        .as_array()
        .expect("cases")
        .clone();
    assert!(cases.len() >= 6);
    for case in &cases {
        let name = case["name"].as_str().expect("name");
        let pred = usizes(&case["pred"]);
        let gold = usizes(&case["gold"]);
        let positive = case["positive"].as_u64().expect("positive") as usize;
        let want = |k: &str| case[k].as_f64().expect("value");
        close(
            accuracy(&pred, &gold).expect("acc"),
            want("accuracy"),
            &format!("{name} accuracy"),
        );
        let f = binary_f1(&pred, &gold, positive).expect("f1");
        close(f.precision, want("precision"), &format!("{name} precision"));
        close(f.recall, want("recall"), &format!("{name} recall"));
        close(f.f1, want("f1"), &format!("{name} f1"));
        close(
            matthews_corrcoef(&pred, &gold).expect("mcc"),
            want("mcc"),
            &format!("{name} mcc"),
        );
    }
}

#[test]
fn correlations_and_ranks_match_scipy() {
    let cases = expected()["correlation"].as_array().expect("cases").clone();
    for case in &cases {
        let name = case["name"].as_str().expect("name");
        let x = floats(&case["x"]);
        let y = floats(&case["y"]);
        close(
            pearson(&x, &y).expect("pearson"),
            case["pearson"].as_f64().expect("p"),
            &format!("{name} pearson"),
        );
        close(
            spearman(&x, &y).expect("spearman"),
            case["spearman"].as_f64().expect("s"),
            &format!("{name} spearman"),
        );
        assert_eq!(average_ranks(&x), floats(&case["ranks_x"]), "{name} ranks");
    }
}

#[test]
fn ranks_average_ties_by_hand() {
    // sorted: 1 (rank 1), 2 2 (ranks 2,3 -> 2.5), 5 (4), 7 7 7 (5,6,7 -> 6)
    assert_eq!(
        average_ranks(&[7.0, 2.0, 5.0, 7.0, 1.0, 2.0, 7.0]),
        vec![6.0, 2.5, 4.0, 6.0, 1.0, 2.5, 6.0]
    );
}

#[test]
fn undefined_correlations_are_zero_and_bad_input_is_an_error() {
    assert_eq!(
        pearson(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]).expect("defined input"),
        0.0
    );
    assert_eq!(
        spearman(&[1.0, 2.0, 3.0], &[4.0, 4.0, 4.0]).expect("defined input"),
        0.0
    );
    assert_eq!(pearson(&[1.0], &[2.0]).expect("one point"), 0.0);
    assert!(pearson(&[1.0, 2.0], &[1.0]).is_err());
    assert!(pearson(&[], &[]).is_err());
    assert!(pearson(&[1.0, f64::NAN], &[1.0, 2.0]).is_err());
    assert!(accuracy(&[0, 1], &[0]).is_err());
    assert!(accuracy(&[], &[]).is_err());
    // perfect agreement
    close(
        pearson(&[1.0, 2.0, 4.0], &[2.0, 4.0, 8.0]).expect("p"),
        1.0,
        "pearson perfect",
    );
    close(
        matthews_corrcoef(&[0, 1, 2, 2], &[0, 1, 2, 2]).expect("mcc"),
        1.0,
        "mcc perfect",
    );
}

#[test]
fn matthews_binary_by_hand() {
    // gold 1 1 1 0 0 0, pred 1 1 0 0 0 1: TP=2 TN=2 FP=1 FN=1
    // MCC = (2*2 - 1*1) / sqrt(3*3*3*3) = 3/9
    close(
        matthews_corrcoef(&[1, 1, 0, 0, 0, 1], &[1, 1, 1, 0, 0, 0]).expect("mcc"),
        1.0 / 3.0,
        "mcc",
    );
    // precision 2/3, recall 2/3, F1 2/3
    close(
        binary_f1(&[1, 1, 0, 0, 0, 1], &[1, 1, 1, 0, 0, 0], 1)
            .expect("f1")
            .f1,
        2.0 / 3.0,
        "f1",
    );
}

#[test]
fn compute_metrics_names_and_orders_scores() {
    let pred = [
        Label::Class(1),
        Label::Class(0),
        Label::Class(1),
        Label::Class(1),
    ];
    let gold = [
        Label::Class(1),
        Label::Class(0),
        Label::Class(0),
        Label::Class(1),
    ];
    let scores = compute_metrics(
        &[
            MetricKind::Accuracy,
            MetricKind::F1 { positive: 1 },
            MetricKind::Matthews,
        ],
        &pred,
        &gold,
    )
    .expect("scores");
    // accuracy 3/4; F1: TP 2, FP 1, FN 0 -> P 2/3, R 1 -> 0.8;
    // MCC: TP 2 TN 1 FP 1 FN 0 -> (2*1 - 1*0)/sqrt(3*2*1*2) = 2/sqrt(12)
    assert_eq!(scores[0].0, "accuracy");
    close(scores[0].1, 0.75, "accuracy");
    assert_eq!(scores[1].0, "f1");
    close(scores[1].1, 0.8, "f1");
    assert_eq!(scores[2].0, "mcc");
    close(scores[2].1, 2.0 / 12f64.sqrt(), "mcc");

    let pred = [Label::Value(1.0), Label::Value(2.0), Label::Value(3.0)];
    let gold = [Label::Value(1.0), Label::Value(3.0), Label::Value(2.0)];
    let scores = compute_metrics(&[MetricKind::Spearman, MetricKind::Pearson], &pred, &gold)
        .expect("scores");
    // ranks (1,2,3) vs (1,3,2): pearson = 0.5
    assert_eq!(scores[0].0, "spearman");
    close(scores[0].1, 0.5, "spearman");
    close(scores[1].1, 0.5, "pearson");
    // mixing label kinds is an error, not a panic
    assert!(MetricKind::Accuracy.compute(&pred, &gold).is_err());
    assert!(
        MetricKind::Pearson
            .compute(&[Label::Class(0)], &[Label::Class(0)])
            .is_err()
    );
}

#[test]
fn entities_match_seqeval() {
    let e = expected()["entities"].clone();
    for seq in e["sequences"].as_array().expect("sequences") {
        let tags: Vec<String> = seq["tags"]
            .as_array()
            .expect("tags")
            .iter()
            .map(|t| t.as_str().expect("tag").to_owned())
            .collect();
        let want: Vec<Entity> = seq["entities"]
            .as_array()
            .expect("entities")
            .iter()
            .map(|t| Entity {
                kind: t[0].as_str().expect("type").to_owned(),
                start: t[1].as_u64().expect("start") as usize,
                end: t[2].as_u64().expect("end") as usize,
            })
            .collect();
        assert_eq!(get_entities(&tags), want, "{tags:?}");
    }
    let gold = strings(&e["gold"]);
    let pred = strings(&e["pred"]);
    let scores = entity_scores(&gold, &pred).expect("scores");
    close(
        scores.precision,
        e["precision"].as_f64().expect("p"),
        "precision",
    );
    close(scores.recall, e["recall"].as_f64().expect("r"), "recall");
    close(scores.f1, e["f1"].as_f64().expect("f1"), "f1");
    assert!(scores.correct <= scores.predicted.min(scores.gold));
    // ragged input is an error
    assert!(entity_scores(&gold[..1], &pred).is_err());
    assert!(entity_scores(&[vec!["O"]], &[vec!["O", "O"]]).is_err());
}

#[test]
fn entity_f1_by_hand() {
    // gold: PER(0,1) LOC(3,3); pred: PER(0,1) ORG(3,3) LOC(4,4)
    // correct 1, P = 1/3, R = 1/2, F1 = 2 * (1/6) / (5/6) = 0.4
    let gold = vec![vec!["B-PER", "I-PER", "O", "B-LOC", "O"]];
    let pred = vec![vec!["B-PER", "I-PER", "O", "B-ORG", "B-LOC"]];
    let s = entity_scores(&gold, &pred).expect("scores");
    assert_eq!((s.gold, s.predicted, s.correct), (2, 3, 1));
    close(s.f1, 0.4, "f1");
}

#[test]
fn median_matches_numpy() {
    for case in expected()["median"].as_array().expect("cases") {
        let values = floats(&case["values"]);
        close(
            median(&values).expect("non-empty"),
            case["median"].as_f64().expect("m"),
            "median",
        );
    }
    assert_eq!(median(&[]), None);
    assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
}

#[test]
fn squad_normalisation_as_the_official_script() {
    assert_eq!(normalize_answer("The  Eiffel Tower!"), "eiffel tower");
    // articles only as whole words; punctuation removed first ("a-team" -> "ateam")
    assert_eq!(
        normalize_answer("an apple, the theory, a-team"),
        "apple theory ateam"
    );
    assert_eq!(normalize_answer("A"), "");
    // non-ASCII punctuation is kept, but bounds a word
    assert_eq!(normalize_answer("the—end"), "—end");
    assert_eq!(normalize_answer("Café  Ñandú"), "café ñandú");
    assert!(squad_exact("the Eiffel tower.", "Eiffel Tower"));
    assert!(!squad_exact("Eiffel", "Eiffel Tower"));
}

#[test]
fn squad_f1_by_hand() {
    // pred tokens [in, 1891, after], gold [1891]: common 1, P 1/3, R 1 -> F1 0.5
    close(squad_f1("in 1891, after", "1891"), 0.5, "f1");
    // repeated tokens count once per occurrence: pred "the cat cat" -> [cat, cat],
    // gold [cat, sat]: common 1, P 1/2, R 1/2 -> 0.5
    close(squad_f1("the cat cat", "cat sat"), 0.5, "f1 repeated");
    close(squad_f1("", ""), 1.0, "both empty");
    close(squad_f1("something", ""), 0.0, "gold empty");
    close(squad_f1("the", "an"), 1.0, "both normalise to empty");
}

fn example(id: &str, answers: &[&str], impossible: bool) -> SquadExample {
    SquadExample {
        id: id.to_owned(),
        title: String::new(),
        question: String::new(),
        context: Arc::from(""),
        answers: answers
            .iter()
            .map(|t| SquadAnswer {
                text: (*t).to_owned(),
                char_start: 0,
                span: None,
            })
            .collect(),
        is_impossible: impossible,
    }
}

#[test]
fn squad_evaluate_takes_the_best_gold_answer() {
    let examples = vec![
        example("a", &["1891", "in 1891"], false),
        example("b", &["a storm"], false),
        example("c", &[], true),
        example("d", &[], true),
        example("e", &["Ada Frost"], false),
    ];
    let predictions: BTreeMap<String, String> = [
        ("a", "in 1891"),         // EM 1 (second gold), F1 1
        ("b", "storm destroyed"), // EM 0, F1: [storm, destroyed] vs [storm] -> P 1/2 R 1 -> 2/3
        ("c", ""),                // unanswerable, answered "": EM 1, F1 1
        ("d", "1978"),            // unanswerable, answered: 0, 0
                                  // "e" missing: 0, 0
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let s = squad_evaluate(&examples, &predictions).expect("scores");
    assert_eq!(s.total, 5);
    assert_eq!(s.missing, 1);
    close(s.exact, 2.0 / 5.0, "exact");
    close(s.f1, (1.0 + 2.0 / 3.0 + 1.0) / 5.0, "f1");
    assert_eq!((s.has_answer_total, s.no_answer_total), (3, 2));
    close(s.has_answer_exact.expect("has"), 1.0 / 3.0, "has exact");
    close(
        s.has_answer_f1.expect("has"),
        (1.0 + 2.0 / 3.0) / 3.0,
        "has f1",
    );
    close(s.no_answer_exact.expect("no"), 0.5, "no-answer exact");
    assert!(squad_evaluate(&[], &predictions).is_err());
}
