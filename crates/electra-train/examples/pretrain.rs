//! A 20-step ELECTRA pre-training run from Rust: a vocabulary trained on the corpus, the corpus
//! prepared into shards, a tiny generator and discriminator trained, evaluated and exported in
//! HuggingFace layout. The `electra pretrain` command does the same with more options.
//!
//! ```sh
//! cargo run --release -p electra-train --example pretrain                        # built-in corpus, temporary directory
//! cargo run --release -p electra-train --example pretrain -- datasets/corpus runs/example
//! ```
//!
//! The first argument is a corpus (files, a directory or a glob of `.txt`/`.jsonl`); the second
//! the working directory (`vocab.txt`, `data/`, `run/`; a previous run there is replaced).
//! Twenty steps of a model this small learn little: the run shows the API, not a result.

use std::error::Error;
use std::path::{Path, PathBuf};

use burn::backend::{Autodiff, Flex};
use electra_model::ElectraConfig;
use electra_tokenizer::{PrepareConfig, WordPieceTokenizer, train_vocab, write_vocab_txt};
use electra_train::{Cancel, ModelSpec, OutMode, PretrainConfig, Progress, RunPaths, StepMetrics, Summary};

/// The training backend: burn's CPU backend with automatic differentiation.
type B = Autodiff<Flex>;

/// Prints every fifth step's losses.
struct Print;

impl Progress for Print {
    fn on_step(&self, m: &StepMetrics) {
        if m.step.is_multiple_of(5) {
            println!("step {:>3}  generator MLM loss {:.3}  discriminator loss {:.4}", m.step, m.mlm_loss, m.disc_loss);
        }
    }
}

/// A 2-layer, hidden-64 discriminator with a half-width generator, on sequences of 32 tokens.
pub fn tiny_config(steps: u64) -> PretrainConfig {
    let mut model = ElectraConfig::small();
    model.embedding_size = Some(64);
    model.hidden_size = 64;
    model.num_hidden_layers = 2;
    model.num_attention_heads = 2;
    model.intermediate_size = 128;
    model.max_position_embeddings = 32;
    PretrainConfig {
        model: ModelSpec::Custom(Box::new(model)),
        generator_size: 0.5,
        max_seq_len: 32,
        batch_size: 8,
        steps,
        warmup_steps: 2,
        learning_rate: 1e-3,
        log_every: 1,
        eval_every: 0,
        eval_batches: 2,
        checkpoint_every: 0,
        ..PretrainConfig::default()
    }
}

/// Trains a vocabulary on `corpus`, prepares it under `work`, and pre-trains for `steps` steps.
pub fn run(corpus: &[PathBuf], work: &Path, steps: u64, progress: &dyn Progress) -> Result<Summary, Box<dyn Error>> {
    // 1. A WordPiece vocabulary of about 300 entries from the corpus itself.
    std::fs::create_dir_all(work)?;
    let vocab = work.join("vocab.txt");
    write_vocab_txt(&vocab, &train_vocab(corpus, 300, true)?)?;
    // 2. The corpus as packed examples in shards (`data/manifest.json`), 10% held out.
    let mut prepare = PrepareConfig::new(corpus.to_vec(), &vocab, work.join("data"));
    prepare.max_seq_len = 32;
    prepare.validation_fraction = 0.1;
    electra_tokenizer::prepare(&prepare, &electra_tokenizer::NoProgress)?;
    // 3. Pre-training; the models are exported to `run/discriminator` and `run/generator`.
    let tokenizer = WordPieceTokenizer::from_path(&vocab)?;
    let paths = RunPaths { data_dir: work.join("data"), out_dir: work.join("run") };
    let config = tiny_config(steps);
    Ok(electra_train::pretrain::<B>(&config, &tokenizer, &paths, OutMode::Overwrite, &Default::default(), progress, &Cancel::new())?)
}

/// A small built-in corpus: 80 two-sentence documents.
fn write_corpus(dir: &Path) -> std::io::Result<PathBuf> {
    let animals = ["whale", "gull", "seal", "shark", "crab"];
    let text: String = (0..80)
        .map(|i| {
            let a = animals[i % animals.len()];
            format!("the {a} number {i} swam far across the grey sea.\nit was seen by the crew at dawn near the {a}s.\n\n")
        })
        .collect();
    let path = dir.join("corpus.txt");
    std::fs::write(&path, text)?;
    Ok(path)
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let temp = tempfile::tempdir()?;
    let work = args.get(1).map_or_else(|| temp.path().to_path_buf(), PathBuf::from);
    let corpus = match args.first() {
        Some(c) => PathBuf::from(c),
        None => write_corpus(temp.path())?,
    };
    let summary = run(&[corpus], &work, 20, &Print)?;
    if let Some(eval) = &summary.eval {
        println!("held-out: generator accuracy {:.3}, discriminator AUC {:.3}", eval.gen_accuracy, eval.auc);
    }
    println!("{} steps in {:.1} s; discriminator in {:?}", summary.steps, summary.seconds, summary.discriminator_dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twenty_steps_train_evaluate_and_export_a_discriminator() {
        let temp = tempfile::tempdir().unwrap();
        let corpus = write_corpus(temp.path()).unwrap();
        let summary = run(&[corpus], &temp.path().join("work"), 20, &electra_train::NoProgress).unwrap();
        assert_eq!(summary.steps, 20);
        let eval = summary.eval.as_ref().expect("a final evaluation");
        assert!(eval.mlm_loss.is_finite() && eval.disc_loss.is_finite(), "{eval:?}");
        let disc = summary.discriminator_dir.expect("an exported discriminator");
        let loaded = electra_model::hf::load_discriminator::<Flex>(&disc, &Default::default()).unwrap();
        assert_eq!(loaded.config().hidden_size, 64);
    }
}
