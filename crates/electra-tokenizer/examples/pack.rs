//! Tokenizes a text and packs it into ELECTRA pre-training examples (`[CLS] A [SEP] B [SEP]`),
//! as `electra prepare` does for a whole corpus.
//!
//! ```sh
//! cargo run -p electra-tokenizer --example pack                                    # built-in text and vocabulary
//! cargo run -p electra-tokenizer --example pack -- datasets/vocab/vocab.txt datasets/corpus/moby_dick.txt
//! ```
//!
//! The first argument is a `vocab.txt`, a `tokenizer.json` or a model directory; the second a
//! text file (one sentence per line, a blank line between documents). Without arguments the
//! example uses a few built-in sentences and a vocabulary of their words.

use std::error::Error;
use std::path::Path;

use electra_tokenizer::{Example, ExampleBuilder, NormalizerOptions, WordPieceTokenizer};

const TEXT: &str = "The whale swam across the sea.\nThe crew saw it at dawn.\nIt dived again.\n\n\
                    A second story starts here.\nIt has two lines.\n";

/// Examples of at most `max_len` tokens from `text`: each line is tokenized, lines are packed
/// into examples, and a blank line ends a document (nothing is packed across it).
pub fn pack(tokenizer: &WordPieceTokenizer, text: &str, max_len: usize, seed: u64) -> electra_tokenizer::Result<Vec<Example>> {
    let special = tokenizer.special_tokens();
    let mut builder = ExampleBuilder::new(max_len, special.cls, special.sep, seed)?;
    let mut examples = Vec::new();
    for line in text.lines() {
        let done = if line.trim().is_empty() {
            builder.end_document()
        } else {
            builder.add_line(&tokenizer.encode_ids(line)?)
        };
        examples.extend(done);
    }
    examples.extend(builder.end_document());
    Ok(examples)
}

/// A vocabulary of the special tokens and the lower-cased words and punctuation of `text`.
pub fn tokenizer_for(text: &str) -> electra_tokenizer::Result<WordPieceTokenizer> {
    let mut tokens: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "."].map(String::from).to_vec();
    for word in text.split_whitespace().map(|w| w.trim_end_matches('.').to_lowercase()) {
        if !tokens.contains(&word) {
            tokens.push(word);
        }
    }
    WordPieceTokenizer::from_tokens(&tokens, NormalizerOptions::UNCASED, Path::new("built-in vocabulary"))
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let text = match args.get(1) {
        Some(path) => std::fs::read_to_string(path)?,
        None => TEXT.to_string(),
    };
    let tokenizer = match args.first() {
        Some(vocab) => WordPieceTokenizer::from_path(vocab)?,
        None => tokenizer_for(&text)?,
    };
    let examples = pack(&tokenizer, &text, 16, 0)?;
    for example in examples.iter().take(20) {
        let tokens: Vec<String> = example.input_ids.iter().filter_map(|&id| tokenizer.id_to_token(id)).collect();
        println!("{:>2} tokens, B from {:>2}: {}", example.len(), example.segment_b_start, tokens.join(" "));
    }
    println!("{} examples", examples.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_the_built_in_text_into_examples_within_the_length() {
        let tokenizer = tokenizer_for(TEXT).unwrap();
        let special = tokenizer.special_tokens();
        let examples = pack(&tokenizer, TEXT, 16, 0).unwrap();
        assert!(examples.len() >= 2, "two documents give at least two examples: {examples:?}");
        for e in &examples {
            assert!(e.len() <= 16, "{e:?}");
            assert_eq!(e.input_ids[0], special.cls);
            assert_eq!(e.input_ids[e.len() - 1], special.sep);
            assert_eq!(e.token_type_ids().len(), e.len());
            assert!(!e.input_ids.contains(&special.unk), "every word is in the vocabulary: {e:?}");
        }
        // The first example starts with the first words of the text.
        let first: Vec<String> = examples[0].input_ids[1..4].iter().filter_map(|&id| tokenizer.id_to_token(id)).collect();
        assert_eq!(first, ["the", "whale", "swam"]);
        // Deterministic for a seed.
        assert_eq!(pack(&tokenizer, TEXT, 16, 0).unwrap(), examples);
    }
}
