//! Fine-tunes a sentence classifier from Rust and predicts with it: text examples become
//! features ([`task::prepare`]), a head goes on the encoder ([`TaskModel`]), [`finetune`] trains
//! and keeps the best epoch in HuggingFace layout, [`predict`] labels new sentences.
//!
//! ```sh
//! cargo run --release -p electra-finetune --example finetune                 # a random-init stand-in model
//! cargo run --release -p electra-finetune --example finetune -- runs/pretrain/discriminator
//! ```
//!
//! The argument is any ELECTRA or BERT model directory with its vocabulary (a pre-training
//! run's `discriminator/`, `google/electra-small-discriminator`). Without it, a tiny randomly
//! initialised encoder and a vocabulary of the task's words stand in for a pre-trained model.
//! The task is built in: does a short review contain a positive or a negative word?

use std::error::Error;
use std::path::{Path, PathBuf};

use burn::backend::{Autodiff, Flex};
use electra_finetune::data::{Label, TaskKind, TextExample, TextTask, default_metrics};
use electra_finetune::run::{Outputs, RunResult, Silent};
use electra_finetune::task::{TaskData, TaskOptions, argmax, prepare};
use electra_finetune::{Feature, FinetuneConfig, HeadStyle, TaskModel, finetune, predict};
use electra_model::input::softmax;
use electra_model::{ElectraConfig, ElectraModel, hf};
use electra_tokenizer::{Cancel, NormalizerOptions, WordPieceTokenizer};

/// Training runs with automatic differentiation; prediction on the plain backend.
type B = Autodiff<Flex>;

const POSITIVE: [&str; 4] = ["good", "great", "fine", "nice"];
const NEGATIVE: [&str; 4] = ["bad", "awful", "poor", "sad"];
const SUBJECTS: [&str; 6] = ["movie", "food", "show", "day", "book", "trip"];
const LABELS: [&str; 2] = ["negative", "positive"];

/// `n` reviews such as "the food was really nice", labelled by their adjective.
fn reviews(n: usize, offset: usize) -> Vec<TextExample> {
    (offset..offset + n)
        .map(|i| {
            let positive = i % 2 == 0;
            let adjective = if positive { POSITIVE[(i / 2) % 4] } else { NEGATIVE[(i / 2) % 4] };
            let adverb = ["really", "quite", "so"][(i / 3) % 3];
            TextExample {
                text_a: format!("the {} was {adverb} {adjective}", SUBJECTS[(i / 5) % SUBJECTS.len()]),
                text_b: None,
                label: Some(Label::Class(usize::from(positive))),
                location: format!("built-in:{i}"),
            }
        })
        .collect()
}

/// A 2-layer, hidden-32 encoder and a vocabulary of the task's words: a stand-in for a
/// pre-trained model.
fn stand_in() -> Result<(WordPieceTokenizer, ElectraModel<B>), Box<dyn Error>> {
    let specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
    let words = ["the", "was", "really", "quite", "so", "is", "it"];
    let tokens: Vec<String> =
        specials.iter().chain(&words).chain(&POSITIVE).chain(&NEGATIVE).chain(&SUBJECTS).map(|t| t.to_string()).collect();
    let tokenizer = WordPieceTokenizer::from_tokens(&tokens, NormalizerOptions::UNCASED, Path::new("built-in"))?;
    let mut config = ElectraConfig::small();
    config.vocab_size = tokens.len();
    config.embedding_size = Some(32);
    config.hidden_size = 32;
    config.num_hidden_layers = 2;
    config.num_attention_heads = 2;
    config.intermediate_size = 64;
    config.max_position_embeddings = 32;
    Ok((tokenizer, ElectraModel::init(&config, 7, &Default::default())?))
}

/// A label and its probability for each sentence.
type Labelled = Vec<(String, f32)>;

/// Fine-tunes on the built-in task (the model in `model_dir`, or the stand-in), writes the best
/// epoch to `out`, and labels `sentences` with the saved model: (label, probability) each.
pub fn run(model_dir: Option<&Path>, out: &Path, sentences: &[&str]) -> Result<(RunResult, Labelled), Box<dyn Error>> {
    let device = Default::default();
    let (tokenizer, encoder) = match model_dir {
        Some(dir) => (WordPieceTokenizer::from_dir(dir)?, hf::load_encoder::<B>(dir, &device)?),
        None => stand_in()?,
    };
    // Text examples to features, with the head they need and the dev scorer.
    let kind = TaskKind::Classification { labels: LABELS.map(String::from).to_vec() };
    let task = TextTask {
        name: "reviews".into(),
        metrics: default_metrics(&kind),
        kind,
        train: reviews(96, 0),
        dev: reviews(24, 1000),
        test: Vec::new(),
        extra_dev: Vec::new(),
    };
    let task = prepare(&tokenizer, TaskData::Text(task), &TaskOptions { max_seq_len: 32, ..TaskOptions::default() })?;
    // A fresh head on the encoder, trained with the reference recipe's layer-wise decay.
    let model = TaskModel::new(encoder, task.head.clone(), HeadStyle::Linear, 1, &device)?;
    let config = FinetuneConfig { learning_rate: 1e-3, epochs: 4, batch_size: 8, ..FinetuneConfig::default() };
    let score = |outputs: &Outputs| task.score_dev(outputs);
    let result = finetune::<B>(model, &config, &task.train, &task.dev, &score, out, &Silent, &Cancel::new())?;
    // Prediction with the saved best epoch (HuggingFace `ElectraForSequenceClassification`).
    let best = TaskModel::<Flex>::load(out, &device)?;
    let features = sentences
        .iter()
        .map(|s| {
            let input = tokenizer.encode_pair(s, None, 32)?;
            Ok(Feature { input_ids: input.input_ids, token_type_ids: input.token_type_ids, target: None })
        })
        .collect::<electra_tokenizer::Result<Vec<_>>>()?;
    // Sequence heads give one logit per label; the softmax makes them probabilities.
    let labelled = predict(&best, &features, 8, 0)
        .iter()
        .map(|logits| {
            let p = softmax(logits);
            let label = argmax(&p).unwrap_or(0);
            (LABELS[label].to_string(), p[label])
        })
        .collect();
    Ok((result, labelled))
}

fn main() -> Result<(), Box<dyn Error>> {
    let model_dir = std::env::args().nth(1).map(PathBuf::from);
    let out = tempfile::tempdir()?;
    let sentences = ["the trip was so great", "the book was really awful"];
    let (result, labelled) = run(model_dir.as_deref(), out.path(), &sentences)?;
    for epoch in &result.epochs {
        println!("epoch {}: train loss {:.3}, dev {:?}", epoch.epoch, epoch.train_loss, epoch.scores);
    }
    println!("best epoch {} in {:.1} s", result.best_epoch, result.seconds);
    for (sentence, (label, p)) in sentences.iter().zip(labelled) {
        println!("{sentence:?}: {label} ({p:.2})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fine_tunes_the_stand_in_and_labels_new_sentences() {
        let out = tempfile::tempdir().unwrap();
        let (result, labelled) = run(None, out.path(), &["the trip was so great", "the book was really awful"]).unwrap();
        assert_eq!(result.epochs.len(), 4);
        let accuracy = result.best.iter().find(|s| s.0 == "accuracy").expect("an accuracy").1;
        assert!(accuracy > 0.9, "the keyword task is learnt: {:?}", result.epochs);
        let labels: Vec<&str> = labelled.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(labels, ["positive", "negative"]);
        assert!(labelled.iter().all(|(_, p)| (0.5..=1.0).contains(p)), "{labelled:?}");
    }
}
