//! Training a WordPiece vocabulary with the `tokenizers` trainer.

use std::path::PathBuf;

use electra_tokenizer::{Error, WordPieceTokenizer, train_vocab, write_vocab_txt};

mod common;
use common::{scratch};

fn moby() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../datasets/corpus/moby_dick.txt")
}

#[test]
fn trains_a_usable_vocabulary_with_fixed_special_ids() {
    let tokens = train_vocab(&[moby()], 2000, true).expect("train");
    assert!(
        tokens.len() <= 2000 && tokens.len() > 1500,
        "{} tokens",
        tokens.len()
    );
    assert_eq!(tokens[..5], ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]);
    assert!(tokens.iter().any(|t| t.starts_with("##")));
    // lower-cased: no capital letters in any entry but the special tokens
    assert!(
        tokens[5..]
            .iter()
            .all(|t| !t.chars().any(char::is_uppercase))
    );

    let dir = scratch("vocab-training");
    let path = dir.join("vocab.txt");
    write_vocab_txt(&path, &tokens).expect("write");
    let tok = WordPieceTokenizer::from_vocab_txt(&path, true).expect("load");
    let s = tok.special_tokens();
    assert_eq!((s.pad, s.unk, s.cls, s.sep, s.mask), (0, 1, 2, 3, 4));
    assert_eq!(tok.vocab_size(), tokens.len());
    let enc = tok.encode("The WHALE and the sea.").expect("encode");
    assert_eq!(enc.tokens, ["the", "whale", "and", "the", "sea", "."]);
    // every word of the training text is representable without [UNK]
    let enc = tok
        .encode("Call me Ishmael. Some years ago, never mind how long precisely.")
        .expect("encode");
    assert!(!enc.ids.contains(&s.unk), "{:?}", enc.tokens);
}

#[test]
fn rejects_tiny_sizes_and_empty_corpora() {
    assert!(matches!(
        train_vocab(&[moby()], 5, true),
        Err(Error::Config(_))
    ));
    let dir = scratch("vocab-training-empty");
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "\n\n").expect("write");
    assert!(matches!(
        train_vocab(&[empty], 100, true),
        Err(Error::NoUsableText(_))
    ));
}
