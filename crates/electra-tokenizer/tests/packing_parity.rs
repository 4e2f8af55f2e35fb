//! The example builder against the reference ELECTRA `ExampleBuilder` run in Python with the
//! same seeds (fixture written by `scripts/make_tokenizer_fixture.py`).

use std::collections::BTreeMap;

use electra_tokenizer::PyRandom;
use electra_tokenizer::packing::pack_documents;
use serde::Deserialize;

mod common;
use common::{fixture};

#[derive(Deserialize)]
struct IdsLine {
    ids: Vec<u32>,
}

#[derive(Deserialize)]
struct RefExample {
    input_ids: Vec<u32>,
    segment_ids: Vec<u32>,
}

#[derive(Deserialize)]
struct Case {
    seed: u64,
    max_len: usize,
    examples: Vec<RefExample>,
}

#[derive(Deserialize)]
struct RngCheck {
    random_53: Vec<u64>,
    randint_5_128: Vec<u32>,
}

#[derive(Deserialize)]
struct Reference {
    cls: u32,
    sep: u32,
    documents: Vec<Vec<usize>>,
    cases: Vec<Case>,
    rng: BTreeMap<String, RngCheck>,
}

fn load() -> (Reference, Vec<Vec<u32>>) {
    let reference: Reference =
        serde_json::from_str(&fixture("packing_reference.json")).expect("json");
    let lines = fixture("bert_uncased_ids.jsonl")
        .lines()
        .map(|l| serde_json::from_str::<IdsLine>(l).expect("json").ids)
        .collect();
    (reference, lines)
}

#[test]
fn rng_reproduces_python_random() {
    let (reference, _) = load();
    assert!(reference.rng.len() >= 3);
    for (seed, check) in &reference.rng {
        let mut r = PyRandom::new(seed.parse().expect("seed"));
        for (i, want) in check.random_53.iter().enumerate() {
            // random() is k / 2^53 for an integer k: compare k exactly
            let got = r.random() * 9_007_199_254_740_992.0;
            assert_eq!(got.fract(), 0.0);
            assert_eq!(got as u64, *want, "seed {seed} draw {i}");
        }
        for (i, want) in check.randint_5_128.iter().enumerate() {
            assert_eq!(r.randint(5, 128), *want, "seed {seed} randint {i}");
        }
    }
}

#[test]
fn packing_matches_the_reference_example_builder() {
    let (reference, lines) = load();
    let docs: Vec<Vec<Vec<u32>>> = reference
        .documents
        .iter()
        .map(|d| d.iter().map(|&i| lines[i].clone()).collect())
        .collect();
    let mut total = 0;
    let mut single_segment = 0;
    let mut short = 0;
    for case in &reference.cases {
        let got = pack_documents(
            docs.clone(),
            case.max_len,
            reference.cls,
            reference.sep,
            case.seed,
        )
        .expect("valid length");
        assert_eq!(
            got.len(),
            case.examples.len(),
            "seed {} max_len {}: example count",
            case.seed,
            case.max_len
        );
        for (i, (g, want)) in got.iter().zip(&case.examples).enumerate() {
            assert_eq!(
                g.input_ids, want.input_ids,
                "seed {} max_len {} example {i}",
                case.seed, case.max_len
            );
            assert_eq!(
                g.token_type_ids(),
                want.segment_ids,
                "seed {} example {i} segments",
                case.seed
            );
            if !g.has_segment_b() {
                single_segment += 1;
            }
            if g.len() + 10 < case.max_len {
                short += 1;
            }
        }
        total += got.len();
    }
    assert!(total > 500, "only {total} reference examples");
    // the fixture exercises the one-segment and short-example paths
    assert!(single_segment > 20, "{single_segment} one-segment examples");
    assert!(short > 20, "{short} short examples");
}
