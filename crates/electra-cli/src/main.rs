//! `electra`: pre-training, fine-tuning and inference for ELECTRA models.

mod backend;
mod bench;
mod bench_scale;
mod finetune;
mod infer;
mod input;
mod pretrain;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "electra", version, about = "ELECTRA pre-training, fine-tuning and inference")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Pre-train an ELECTRA model (prepares the corpus on first use).
    Pretrain(pretrain::PretrainArgs),
    /// Serve one data-parallel pre-training job: `electra pretrain --world N --rank R
    /// --coordinator HOST:PORT` ranks connect to it (docs/scaling.md).
    Coordinator(pretrain::CoordinatorArgs),
    /// Tokenise and pack a corpus into pre-training shards.
    Prepare(pretrain::PrepareArgs),
    /// Train a WordPiece vocabulary on a corpus ([PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4).
    Vocab(pretrain::VocabArgs),
    /// Per token: the discriminator's logit and probability that it was replaced.
    Score {
        #[command(flatten)]
        common: infer::Common,
    },
    /// The generator's top-k tokens at every [MASK] of each line.
    FillMask {
        #[command(flatten)]
        common: infer::Common,
        /// Number of predictions per mask.
        #[arg(long, default_value_t = 5)]
        top_k: usize,
    },
    /// One vector per line from the final hidden states.
    Embed {
        #[command(flatten)]
        common: infer::Common,
        /// Pooling of the hidden states.
        #[arg(long, value_enum, default_value = "cls")]
        pooling: infer::Pooling,
        /// Scale each vector to unit L2 norm.
        #[arg(long)]
        normalize: bool,
    },
    /// Fine-tune a pre-trained encoder on a labelled task (GLUE or generic files), over seeds.
    Finetune(finetune::FinetuneArgs),
    /// Classify text with a fine-tuned model (JSON Lines: label and probabilities per line; a
    /// tab separates the two texts of a pair).
    Classify {
        #[command(flatten)]
        common: infer::Common,
    },
    /// Benchmark against PyTorch + transformers: `bench` (model steps), `bench prepare` or
    /// `bench scale` (data-parallel pre-training against PyTorch DDP).
    Bench(bench::BenchArgs),
}

/// A cancellation flag set by Ctrl-C (the long-running commands stop at their next safe point
/// and keep what they finished).
pub(crate) fn cancel_on_ctrl_c() -> electra_tokenizer::Cancel {
    let cancel = electra_tokenizer::Cancel::new();
    let flag = cancel.clone();
    if let Err(e) = ctrlc::set_handler(move || flag.cancel()) {
        tracing::warn!("cannot install the Ctrl-C handler: {e}");
    }
    cancel
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    // The GPU runtime logs every autotuned kernel at `info` (hundreds of lines on a first run);
    // the progress output reports the tuning time instead (`RUST_LOG=info` shows them).
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,cubecl_runtime=warn,cubecl=warn,burn_cubecl=warn,burn_cubecl_fusion=warn,cubecl_wgpu=warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
}

fn run(cli: Cli) -> anyhow::Result<()> {
    use electra_model::autocast;
    if let Command::Score { common }
    | Command::FillMask { common, .. }
    | Command::Embed { common, .. }
    | Command::Classify { common } = &cli.command
    {
        backend::check_precision(common.precision)?;
    }
    tracing::debug!(backend = backend::NAME, "starting");
    match cli.command {
        Command::Pretrain(args) => pretrain::pretrain(&args),
        Command::Coordinator(args) => pretrain::coordinator(&args),
        Command::Prepare(args) => pretrain::prepare(&args).map(|_| ()),
        Command::Vocab(args) => pretrain::vocab(&args),
        // Inference in the precision asked for (`--precision`).
        Command::Score { common } => autocast(common.precision, || infer::score(&common)),
        Command::FillMask { common, top_k } => autocast(common.precision, || infer::fill_mask(&common, top_k)),
        Command::Embed { common, pooling, normalize } => {
            autocast(common.precision, || infer::embed(&common, pooling, normalize))
        }
        Command::Bench(args) => bench::bench(&args),
        Command::Finetune(args) => finetune::finetune(&args),
        Command::Classify { common } => autocast(common.precision, || finetune::classify(&common)),
    }
}

fn main() -> ExitCode {
    init_logging();
    backend::configure_runtime();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", chain_message(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes joined with ": ". Every error in the workspace says its own part
/// once and leaves its cause to `source()`, so the chain reads without repeats.
fn chain_message(e: &anyhow::Error) -> String {
    e.chain().map(ToString::to_string).collect::<Vec<_>>().join(": ")
}

#[cfg(test)]
mod tests {
    use super::chain_message;

    #[test]
    fn the_chain_names_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory (os error 2)");
        let e = anyhow::Error::new(electra_model::Error::Io { path: "/x/config.json".into(), source: io })
            .context("cannot load a discriminator from /x");
        assert_eq!(
            chain_message(&e),
            "cannot load a discriminator from /x: /x/config.json: No such file or directory (os error 2)"
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(chain_message(&plain), "outer: inner");
    }
}
