//! `electra score`, `electra fill-mask`, `electra embed`: text in, JSON Lines out, one output
//! line per input line.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::tensor::activation::softmax;
use electra_model::hf;
use electra_model::input::{InputBatch, to_host_f32};
use electra_tokenizer::{Encoding, ModelInput, WordPieceTokenizer};
use serde_json::{Value, json};

use crate::backend::{self, Backend};
use crate::input::{JsonLines, read_lines};

/// Options shared by the inference commands.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// A HuggingFace model directory (config.json, model.safetensors or pytorch_model.bin, and
    /// vocab.txt or tokenizer.json).
    #[arg(long)]
    pub model: PathBuf,
    /// Text file, one input per line (UTF-8).
    #[arg(long)]
    pub input: PathBuf,
    /// Output file (JSON Lines, one record per input line).
    #[arg(long)]
    pub output: PathBuf,
    /// Lines per forward pass.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Truncate inputs to this many tokens (including [CLS] and [SEP]); at most the model's
    /// `max_position_embeddings`.
    #[arg(long)]
    pub max_seq_len: Option<usize>,
    /// Precision of the matrix multiplies: f32 (default), bf16 or f16. Half precision is for
    /// GPUs; CPUs convert the half types in software (docs/user-guide.md, "Mixed precision").
    #[arg(long, default_value = "f32")]
    pub precision: electra_model::Precision,
}

/// One tokenised input line.
struct Line {
    number: usize,
    encoding: Encoding,
    input: ModelInput,
}

fn load_tokenizer(dir: &Path) -> Result<WordPieceTokenizer> {
    WordPieceTokenizer::from_dir(dir).with_context(|| format!("cannot load the tokenizer of {}", dir.display()))
}

/// Tokenises lines, truncating (with a warning) to `max_len` tokens including specials.
/// `split_masks` keeps the literal `[MASK]` as the mask token, as BertTokenizer does.
fn encode_lines(
    tok: &WordPieceTokenizer,
    lines: &[String],
    max_len: usize,
    split_masks: bool,
    path: &Path,
) -> Result<Vec<Line>> {
    let mut out = Vec::with_capacity(lines.len());
    let (mut truncated, mut empty) = (0usize, 0usize);
    for (i, text) in lines.iter().enumerate() {
        let mut encoding = if split_masks { encode_with_masks(tok, text)? } else { tok.encode(text)? };
        if encoding.ids.is_empty() {
            empty += 1;
        }
        let limit = max_len.saturating_sub(2);
        if encoding.ids.len() > limit {
            truncated += 1;
            if truncated <= 5 {
                tracing::warn!(
                    "{}:{}: {} tokens, truncated to {limit}",
                    path.display(),
                    i + 1,
                    encoding.ids.len()
                );
            }
            encoding.ids.truncate(limit);
            encoding.tokens.truncate(limit);
            encoding.offsets.truncate(limit);
        }
        let input = tok.build_inputs(&encoding.ids, None, max_len)?;
        out.push(Line { number: i + 1, encoding, input });
    }
    if truncated > 5 {
        tracing::warn!("{}: {truncated} lines truncated in all", path.display());
    }
    if empty > 0 {
        tracing::warn!("{}: {empty} lines produced no tokens", path.display());
    }
    Ok(out)
}

fn encode_with_masks(tok: &WordPieceTokenizer, text: &str) -> Result<Encoding> {
    let mask_id = tok.special_tokens().mask;
    let mut enc = Encoding::default();
    let mut base = 0;
    for (k, piece) in text.split("[MASK]").enumerate() {
        if k > 0 {
            enc.ids.push(mask_id);
            enc.tokens.push("[MASK]".into());
            enc.offsets.push((base - 6, base));
        }
        let e = tok.encode(piece)?;
        enc.ids.extend(e.ids);
        enc.tokens.extend(e.tokens);
        enc.offsets.extend(e.offsets.into_iter().map(|(a, b)| (a + base, b + base)));
        base += piece.len() + 6;
    }
    Ok(enc)
}

/// Padded `[batch, seq]` tensors for a group of lines.
fn make_batch(lines: &[Line], pad: u32) -> InputBatch<Backend> {
    let rows: Vec<(&[u32], &[u32])> =
        lines.iter().map(|l| (l.input.input_ids.as_slice(), l.input.token_type_ids.as_slice())).collect();
    InputBatch::pad(&rows, pad, &backend::device())
}

/// Runs `f` on the lines in groups of `batch_size` and writes the rows it returns, in order. On
/// CPU backends the groups are chunks of at most [`backend::DEFAULT_CHUNK`] lines run on
/// rayon's threads, a few at a time (every core busy; docs/performance.md, "Batch chunks").
fn for_groups<T: Sync>(
    lines: &[T],
    batch_size: usize,
    out: &mut JsonLines,
    f: impl Fn(&[T]) -> Result<Vec<Value>> + Sync,
) -> Result<()> {
    use rayon::prelude::*;
    let chunk = backend::DEFAULT_CHUNK;
    let rows = if chunk > 0 { batch_size.min(chunk) } else { batch_size }.max(1);
    let groups: Vec<&[T]> = lines.chunks(rows).collect();
    let wave = if chunk > 0 { 2 * rayon::current_num_threads().max(1) } else { 1 };
    // `--precision`, installed on whichever thread runs a group.
    let precision = electra_model::precision::current();
    let f = |g: &[T]| electra_model::autocast(precision, || f(g));
    for wave in groups.chunks(wave) {
        let results: Vec<Result<Vec<Value>>> = if wave.len() == 1 {
            wave.iter().map(|g| f(g)).collect()
        } else {
            wave.par_iter().map(|g| f(g)).collect()
        };
        for rows in results {
            for row in rows? {
                out.write(&row)?;
            }
        }
    }
    Ok(())
}

fn max_len(common: &Common, positions: usize) -> usize {
    common.max_seq_len.unwrap_or(positions).min(positions).max(2)
}

/// `electra score`: per token, the discriminator's logit and probability of "replaced".
pub fn score(common: &Common) -> Result<()> {
    let device = backend::device();
    let model = hf::load_discriminator::<Backend>(&common.model, &device)
        .with_context(|| format!("cannot load a discriminator from {}", common.model.display()))?;
    let tok = load_tokenizer(&common.model)?;
    let lines = read_lines(&common.input)?;
    let encoded = encode_lines(&tok, &lines, max_len(common, model.config().max_position_embeddings), false, &common.input)?;
    let mut out = JsonLines::create(&common.output)?;
    for_groups(&encoded, common.batch_size, &mut out, |group| {
        let b = make_batch(group, tok.special_tokens().pad);
        let logits = to_host_f32(model.forward(b.input_ids, b.token_type_ids, b.attention_mask).logits);
        let rows = group.iter().enumerate().map(|(row, line)| {
            // Skip [CLS]; report the text tokens only.
            let n = line.encoding.ids.len();
            let l: Vec<f32> = logits[row * b.seq + 1..row * b.seq + 1 + n].to_vec();
            let p: Vec<f32> = l.iter().map(|&x| electra_model::input::sigmoid(x)).collect();
            json!({
                "line": line.number,
                "tokens": line.encoding.tokens,
                "logits": l,
                "replaced_prob": p,
            })
        });
        Ok(rows.collect())
    })?;
    out.finish()?;
    tracing::info!(lines = encoded.len(), output = %common.output.display(), "scored");
    Ok(())
}

/// `electra fill-mask`: the generator's top-k tokens at every `[MASK]`.
pub fn fill_mask(common: &Common, top_k: usize) -> Result<()> {
    let device = backend::device();
    let model = hf::load_generator::<Backend>(&common.model, &device)
        .with_context(|| format!("cannot load a generator from {}", common.model.display()))?;
    let tok = load_tokenizer(&common.model)?;
    let mask_id = tok.special_tokens().mask;
    let lines = read_lines(&common.input)?;
    let encoded = encode_lines(&tok, &lines, max_len(common, model.config().max_position_embeddings), true, &common.input)?;
    let without = encoded.iter().filter(|l| !l.input.input_ids.contains(&mask_id)).count();
    if without > 0 {
        tracing::warn!("{}: {without} lines contain no [MASK]", common.input.display());
    }
    let vocab = model.config().vocab_size;
    let top_k = top_k.clamp(1, vocab);
    let mut out = JsonLines::create(&common.output)?;
    for_groups(&encoded, common.batch_size, &mut out, |group| {
        let b = make_batch(group, tok.special_tokens().pad);
        let logits = model.forward(b.input_ids, b.token_type_ids, b.attention_mask); // [batch, seq, vocab]
        let probs = to_host_f32(softmax(logits, 2));
        let mut rows = Vec::with_capacity(group.len());
        for (row, line) in group.iter().enumerate() {
            let mut masks = Vec::new();
            for (pos, &id) in line.input.input_ids.iter().enumerate() {
                if id != mask_id {
                    continue;
                }
                let start = (row * b.seq + pos) * vocab;
                let p = &probs[start..start + vocab];
                let mut order: Vec<usize> = (0..vocab).collect();
                order.select_nth_unstable_by(top_k - 1, |a, b| p[*b].total_cmp(&p[*a]));
                order.truncate(top_k);
                order.sort_by(|a, b| p[*b].total_cmp(&p[*a]));
                let predictions: Vec<_> = order
                    .iter()
                    .map(|&i| json!({"token": tok.id_to_token(i as u32), "id": i, "prob": p[i]}))
                    .collect();
                masks.push(json!({"position": pos - 1, "predictions": predictions}));
            }
            rows.push(json!({"line": line.number, "tokens": line.encoding.tokens, "masks": masks}));
        }
        Ok(rows)
    })?;
    out.finish()?;
    tracing::info!(lines = encoded.len(), output = %common.output.display(), "filled masks");
    Ok(())
}

/// How `electra embed` turns hidden states into one vector.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Pooling {
    /// The final hidden state at `[CLS]`.
    Cls,
    /// The mean over real tokens (attention mask 1), `[CLS]` and `[SEP]` included.
    Mean,
}

/// `electra embed`: one vector per line.
pub fn embed(common: &Common, pooling: Pooling, normalize: bool) -> Result<()> {
    let device = backend::device();
    let model = hf::load_encoder::<Backend>(&common.model, &device)
        .with_context(|| format!("cannot load an encoder from {}", common.model.display()))?;
    let tok = load_tokenizer(&common.model)?;
    let lines = read_lines(&common.input)?;
    let encoded = encode_lines(&tok, &lines, max_len(common, model.config.max_position_embeddings), false, &common.input)?;
    let mut out = JsonLines::create(&common.output)?;
    for_groups(&encoded, common.batch_size, &mut out, |group| {
        let b = make_batch(group, tok.special_tokens().pad);
        let mask = b.attention_mask.clone();
        let hidden = model.forward(b.input_ids, b.token_type_ids, b.attention_mask); // [batch, seq, hidden]
        let [batch, seq, h] = hidden.dims();
        let pooled = match pooling {
            Pooling::Cls => hidden.slice([0..batch, 0..1, 0..h]).reshape([batch, h]),
            Pooling::Mean => {
                let m = mask.float().reshape([batch, seq, 1]);
                let sum = (hidden * m.clone()).sum_dim(1).reshape([batch, h]);
                sum / m.sum_dim(1).reshape([batch, 1])
            }
        };
        let pooled = if normalize {
            let norm = pooled.clone().powf_scalar(2.0).sum_dim(1).sqrt().clamp_min(1e-12);
            pooled / norm
        } else {
            pooled
        };
        let values = to_host_f32(pooled);
        let rows = group.iter().enumerate();
        Ok(rows.map(|(row, line)| json!({"line": line.number, "embedding": &values[row * h..(row + 1) * h]})).collect())
    })?;
    out.finish()?;
    tracing::info!(lines = encoded.len(), output = %common.output.display(), "embedded");
    Ok(())
}

