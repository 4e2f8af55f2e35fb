//! Scores a sentence with a HuggingFace ELECTRA discriminator: for every token, the
//! probability that it was replaced.
//!
//! ```sh
//! cargo run -p electra-model --example score                                  # the tiny test model
//! cargo run --release -p electra-model --example score -- MODEL_DIR "the chef ate the meal"
//! ```
//!
//! `MODEL_DIR` is any `ElectraForPreTraining` directory (`config.json`, `model.safetensors` or
//! `pytorch_model.bin`, `vocab.txt` or `tokenizer.json`): `electra pretrain`'s
//! `runs/pretrain/discriminator`, or `google/electra-small-discriminator` downloaded from the
//! HuggingFace hub. The default is the tiny, randomly initialised model of this crate's tests
//! (written by `transformers`; its vocabulary is `tok5` ... `tok99`), so its scores mean nothing.
//!
//! The backend is burn's `Flex` (CPU); `score` is generic, so `score::<burn::backend::NdArray>`
//! or a GPU backend works the same (docs/library.md, "Choosing a backend").

use std::error::Error;
use std::path::{Path, PathBuf};

use burn::backend::Flex;
use burn::prelude::Backend;
use electra_model::hf;
use electra_model::input::{InputBatch, sigmoid, to_host_f32};
use electra_tokenizer::WordPieceTokenizer;

/// The model this crate's tests load (shipped in the package).
fn default_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/electra_proj/disc")
}

/// Each token of `sentence` (with `[CLS]` and `[SEP]`) and the probability that the
/// discriminator in `dir` assigns to its having been replaced.
pub fn score<B: Backend>(dir: &Path, sentence: &str, device: &B::Device) -> Result<Vec<(String, f32)>, Box<dyn Error>> {
    let tokenizer = WordPieceTokenizer::from_dir(dir)?;
    let discriminator = hf::load_discriminator::<B>(dir, device)?;
    // Text to ids: `[CLS] sentence [SEP]`, at most as long as the model's positions.
    let input = tokenizer.encode_pair(sentence, None, discriminator.config().max_position_embeddings)?;
    // Ids to tensors: ids, token types and the attention mask (1 for real tokens), `[1, seq]`.
    let rows = [(input.input_ids.as_slice(), input.token_type_ids.as_slice())];
    let batch = InputBatch::<B>::pad(&rows, tokenizer.special_tokens().pad, device);
    // `logits` are `[batch, seq]` scores before the sigmoid; the probability is its sigmoid.
    let logits = discriminator.forward(batch.input_ids, batch.token_type_ids, batch.attention_mask).logits;
    let tokens = input.input_ids.iter().map(|&id| tokenizer.id_to_token(id).unwrap_or_default());
    Ok(tokens.zip(to_host_f32(logits).into_iter().map(sigmoid)).collect())
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().map_or_else(default_model, PathBuf::from);
    let sentence = args.next().unwrap_or_else(|| "tok5 tok17 tok42 tok8".to_string());
    for (token, p) in score::<Flex>(&dir, &sentence, &Default::default())? {
        println!("{token:>12}  {p:.3}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_every_token_of_a_sentence_with_the_test_model() {
        let scores = score::<Flex>(&default_model(), "tok5 tok17 tok42", &Default::default()).unwrap();
        let tokens: Vec<&str> = scores.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(tokens, ["[CLS]", "tok5", "tok17", "tok42", "[SEP]"]);
        assert!(scores.iter().all(|(_, p)| p.is_finite() && *p > 0.0 && *p < 1.0), "{scores:?}");
    }
}
