//! The fast path of `encode_ids` against the `tokenizers` pipeline (`encode_ids_reference`):
//! every line of the shipped corpus and of the HuggingFace fixture, for both shipped
//! vocabularies and several normaliser settings, a sweep over Unicode, and edge cases.

use std::path::{Path, PathBuf};

use electra_tokenizer::{NormalizerOptions, WordPieceTokenizer};

mod common;
use common::{fixture, root};

fn bert_vocab() -> PathBuf {
    root().join("datasets/vocab/vocab.txt")
}

fn small_vocab() -> PathBuf {
    root().join("datasets/vocab-8k/vocab.txt")
}

fn load(vocab: &Path, options: NormalizerOptions) -> WordPieceTokenizer {
    let tok = WordPieceTokenizer::from_vocab_txt_with(vocab, options).expect("load vocab");
    assert!(tok.has_fast_path(), "{}: no fast path", vocab.display());
    tok
}

const CASED: NormalizerOptions = NormalizerOptions {
    lowercase: false,
    strip_accents: None,
};

const ALL_OPTIONS: [NormalizerOptions; 4] = [
    NormalizerOptions::UNCASED,
    CASED,
    NormalizerOptions {
        lowercase: true,
        strip_accents: Some(false),
    },
    NormalizerOptions {
        lowercase: false,
        strip_accents: Some(true),
    },
];

/// Asserts that every text encodes to the same ids on both paths; returns the token count.
fn check_texts<'a>(
    tok: &WordPieceTokenizer,
    what: &str,
    texts: impl IntoIterator<Item = &'a str>,
) -> usize {
    let mut mismatches = Vec::new();
    let mut tokens = 0;
    let mut n = 0;
    for text in texts {
        n += 1;
        let fast = tok.encode_ids(text).expect("fast");
        let reference = tok.encode_ids_reference(text).expect("reference");
        tokens += reference.len();
        if fast != reference {
            mismatches.push(format!(
                "{text:?}\n  reference {reference:?}\n  fast      {fast:?}"
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{what}: {} of {n} texts differ:\n{}",
        mismatches.len(),
        mismatches[..mismatches.len().min(10)].join("\n")
    );
    tokens
}

fn corpus_lines() -> Vec<String> {
    let mut lines = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("datasets/corpus"))
        .expect("corpus dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for f in files {
        let text = std::fs::read_to_string(&f).expect("corpus is utf-8");
        lines.extend(text.lines().map(str::to_owned));
    }
    for line in fixture("bert_uncased_ids.jsonl").lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        lines.push(v["text"].as_str().expect("text").to_owned());
    }
    lines
}

#[test]
fn corpus_and_fixture_lines_match_for_both_vocabularies() {
    let lines = corpus_lines();
    assert!(lines.len() > 20_000);
    for vocab in [bert_vocab(), small_vocab()] {
        for options in ALL_OPTIONS {
            let tok = load(&vocab, options);
            let tokens = check_texts(
                &tok,
                &format!("{} {options:?}", vocab.display()),
                lines.iter().map(String::as_str),
            );
            assert!(tokens > 500_000);
        }
    }
}

#[test]
fn every_constructor_has_the_fast_path() {
    let dir = root().join("datasets/vocab");
    let text = "The whale\u{2019}s \u{201c}jaw\u{201d}\u{2014}CAFÉ, naïve [MASK] x";
    for tok in [
        WordPieceTokenizer::from_dir(&dir).expect("dir"),
        WordPieceTokenizer::from_tokenizer_json(dir.join("tokenizer.json")).expect("json"),
        WordPieceTokenizer::from_path(dir.join("vocab.txt")).expect("txt"),
        WordPieceTokenizer::from_dir(&dir)
            .expect("dir")
            .with_normalizer_options(CASED),
    ] {
        assert!(tok.has_fast_path(), "{:?}", tok.source());
        check_texts(&tok, "constructor", [text]);
    }
}

/// Every listed punctuation mark, and every character of the Basic Multilingual Plane plus a
/// sample of the others, in several positions: both paths agree (the listed marks go the fast
/// way, everything else falls back per segment).
#[test]
fn unicode_sweep_matches() {
    let chars: Vec<char> = (0u32..0x1_0000)
        .chain((0x1_0000..0x11_0000).step_by(97))
        .chain([0x1f600, 0x20000, 0x2a6df, 0xe0001, 0xe0100])
        .filter_map(char::from_u32)
        .collect();
    for options in [NormalizerOptions::UNCASED, CASED] {
        let tok = load(&bert_vocab(), options);
        let texts: Vec<String> = chars
            .iter()
            .map(|c| format!("A{c}b {c}Word x{c} {c}{c}. q{c}\u{301}e \u{301}{c}"))
            .collect();
        check_texts(&tok, "sweep", texts.iter().map(String::as_str));
    }
}

#[test]
fn edge_cases_match() {
    let long = |n: usize, c: char| std::iter::repeat_n(c, n).collect::<String>();
    let mut texts: Vec<String> = vec![
        String::new(),
        " ".into(),
        "\t\n\r ".into(),
        "   leading and trailing   ".into(),
        "tabs\tbetween\twords\r\nand CRLF\r\n".into(),
        "!!!???...,,,;;;".into(),
        "a!b@c#d$e%f^g&h*i(j)k_l+m=n{o}p[q]r|s\\t:u;v\"w'x<y>z,/?`~".into(),
        "#hash ##ing ##".into(),
        "ctrl\u{1}char\u{7}s\u{0}joined \u{1b}[0m\u{7f}del \u{b}vt\u{c}ff".into(),
        "\u{1}\u{2}\u{3}".into(),
        "UPPER lower MiXeD CASE Ishmael ISHMAEL".into(),
        "unaffable unaffableness antidisestablishmentarianism".into(),
        "zzzzqqqxx qxqxqx xqzj".into(),
        "\u{fffd}\u{fffd} a\u{fffd}b".into(),
        "12345 3.14159 1,000,000 2nd 21st".into(),
        "caf\u{e9} na\u{ef}ve r\u{e9}sum\u{e9} \u{d6}sterreich".into(),
        "mixed ascii \u{201c}quoted\u{201d} and accents \u{e9}t\u{e9} in one line".into(),
        "\u{4e2d}\u{6587}text and \u{65e5}\u{672c}".into(),
        "nbsp\u{a0}here ideographic\u{3000}space zero\u{200b}width".into(),
        "\u{3a3}\u{399}\u{3a3}\u{3a5}\u{3a6}\u{39f}\u{3a3} OD\u{3a3} \u{3a3}".into(),
        "[MASK] [CLS]x[SEP] [mask] [PAD][UNK] [MASK".into(),
        "the [MASK] is \u{2019}here\u{2019}".into(),
        "\u{2026}\u{2014}\u{2013}\u{2018}\u{2019}\u{201c}\u{201d}\u{ab}\u{bb}\u{bf}\u{a1}".into(),
        "don\u{2019}t won\u{2019}t \u{2018}tis".into(),
        "\u{1f600} emoji\u{1f600}x".into(),
        // runs of uncovered segments, with covered ones and added tokens around them
        "h\u{e9}llo w\u{f6}rld 123 caf\u{e9} x \u{e9}  \u{e9}\t\u{e9}   ".into(),
        "\u{e9} [MASK] \u{e9}".into(),
        "\u{e9} \u{e9}x ab[SEP]cd".into(),
        "\u{e9}[UNK]".into(),
        "\u{43f}\u{440}\u{438}\u{432}\u{435}\u{442}, \u{43c}\u{438}\u{440}! 1990 \u{201c}\u{434}\u{430}\u{201d} ok".into(),
        "x \u{2014}\u{e9}\u{2014} \u{2014} y".into(),
    ];
    for n in [99, 100, 101, 250] {
        texts.push(long(n, 'a'));
        texts.push(format!("x {} y", long(n, 'b')));
        texts.push(format!("{}!", long(n, 'c')));
        texts.push(long(n, 'Q'));
        // control characters do not count: 101 letters with one removed character inside
        texts.push(format!("{}\u{1}{}", long(n / 2, 'd'), long(n - n / 2, 'd')));
        texts.push(format!("{}\u{e9}", long(n - 1, 'e')));
    }
    for vocab in [bert_vocab(), small_vocab()] {
        for options in ALL_OPTIONS {
            let tok = load(&vocab, options);
            check_texts(&tok, "edge cases", texts.iter().map(String::as_str));
        }
    }
}

#[test]
fn known_ids() {
    let tok = load(&bert_vocab(), NormalizerOptions::UNCASED);
    let unk = tok.special_tokens().unk;
    let id = |t: &str| tok.token_to_id(t).expect("in vocab");
    assert_eq!(tok.encode_ids("").expect("empty"), Vec::<u32>::new());
    assert_eq!(tok.encode_ids(" \t ").expect("blank"), Vec::<u32>::new());
    assert_eq!(
        tok.encode_ids("The whale, at LAST!").expect("ascii"),
        [id("the"), id("whale"), id(","), id("at"), id("last"), id("!")]
    );
    assert_eq!(
        tok.encode_ids("wh\u{1}ale").expect("control"),
        [id("whale")]
    );
    assert_eq!(
        tok.encode_ids("running").expect("pieces"),
        [id("running")]
    );
    assert_eq!(
        tok.encode_ids("whaleman").expect("pieces"),
        [id("whale"), id("##man")]
    );
    let a100 = "a".repeat(100);
    let a101 = "a".repeat(101);
    assert_eq!(tok.encode_ids(&a101).expect("long"), [unk]);
    assert_ne!(tok.encode_ids(&a100).expect("100"), [unk]);
    assert_eq!(
        tok.encode_ids("x [MASK] y").expect("mask"),
        [id("x"), tok.special_tokens().mask, id("y")]
    );
    // a cased tokenizer keeps case: "Hello" is not in the uncased vocabulary
    let cased = load(&bert_vocab(), CASED);
    assert_eq!(
        cased.encode_ids("Hello hello").expect("cased"),
        [unk, id("hello")]
    );
}

#[test]
fn encode_ids_into_reuses_and_clears() {
    let tok = load(&bert_vocab(), NormalizerOptions::UNCASED);
    let mut ids = vec![1, 2, 3];
    tok.encode_ids_into("hello world", &mut ids).expect("encode");
    assert_eq!(ids, tok.encode_ids("hello world").expect("encode"));
    tok.encode_ids_into("[MASK]", &mut ids).expect("encode");
    assert_eq!(ids, [tok.special_tokens().mask]);
}

/// The decompressed shared corpora, when `ELECTRA_FAST_PATH_CORPORA` names their directory
/// (`cargo test -p electra-tokenizer --test fast_path -- --ignored`).
#[test]
#[ignore = "needs ELECTRA_FAST_PATH_CORPORA=<dir of .txt files>"]
fn external_corpora_match() {
    let dir = PathBuf::from(
        std::env::var_os("ELECTRA_FAST_PATH_CORPORA").expect("ELECTRA_FAST_PATH_CORPORA"),
    );
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("corpora dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "txt") {
            let bytes = std::fs::read(&path).expect("read");
            lines.extend(
                String::from_utf8_lossy(&bytes)
                    .lines()
                    .map(str::to_owned)
                    .collect::<Vec<_>>(),
            );
        }
    }
    assert!(!lines.is_empty());
    for vocab in [bert_vocab(), small_vocab()] {
        let tok = load(&vocab, NormalizerOptions::UNCASED);
        check_texts(&tok, "external", lines.iter().map(String::as_str));
    }
}
