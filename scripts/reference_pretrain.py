#!/usr/bin/env python3
"""Independent PyTorch + HuggingFace `transformers` reference of the quick pre-training run.

It mirrors `quick_config()` (crates/electra-cli/src/pretrain.rs), the configuration behind
`cargo xtask pretrain`, so that the Rust/burn implementation can be checked against code that
shares none of it:

- data: shards written by `electra prepare` (format at the top of
  crates/electra-tokenizer/src/dataset.rs), read with numpy; token type 0 before
  `segment_b_start`, 1 from it; padded with id 0, attention mask 1 on real tokens;
- networks: `ElectraForPreTraining` (hidden 128, 4 layers, 2 heads, FFN 512, embedding 128) and
  `ElectraForMaskedLM` (hidden 128 x --gen-size, same depth, heads max(1, hidden / 64), FFN 4 x
  hidden), no dropout; the generator uses the discriminator's embedding module (word, position,
  token-type embeddings and their LayerNorm: one shared module) and its output projection is the
  word-embedding table;
- corruption and loss as docs/electra-reference.md sections 2-3 (../shared/docs in the
  workspace): n = max(1, min(N, round(0.15 x real tokens))) of the real non-special tokens,
  N = int(0.155 x max_seq_len), 85% of them [MASK], the rest kept; MLM cross-entropy at the
  chosen positions; Gumbel-max samples at --temperature without gradient; label 1 where the
  sample differs from the original; BCE over all real tokens; loss = mlm + --disc-weight x disc;
- AdamW (bias correction on, torch's default), lr x min(1, step / warmup) x (1 - step / total),
  betas (0.9, 0.999), eps 1e-6, weight decay 0.01 except biases and LayerNorm weights,
  global-norm clipping at 1.0, seeded shuffled batches;
- evaluation every --eval-every steps on the first --eval-batches x --batch validation examples
  with a fixed masking/sampling seed: generator MLM accuracy (and the unigram baseline),
  discriminator AUC, accuracy and replaced fraction, and the AUC of a context-free baseline that
  scores each token by its rarity in the training split (what the discriminator can get without
  using context: high while the generator's samples are implausible); at the end, the mean
  pairwise cosine similarity of the discriminator's last-layer [CLS] and mean-pooled vectors
  (collapse check).

Example:
    target/release/electra prepare --corpus datasets/corpus --vocab datasets/vocab-8k/vocab.txt \\
        --max-seq-len 64 --validation-fraction 0.02 --out /tmp/refrun/data
    python3 scripts/reference_pretrain.py --data /tmp/refrun/data --out /tmp/refrun/mirror.json
"""

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import ElectraConfig, ElectraForMaskedLM, ElectraForPreTraining

INDEX_DTYPE = np.dtype([("start", "<u8"), ("len", "<u4"), ("b", "<u4")])


def load_split(data: Path, split: str, manifest: dict):
    """All examples of a split as a list of (ids, segment_b_start)."""
    dtype = "<u2" if manifest["settings"]["dtype"] == "u16" else "<u4"
    examples = []
    for shard in sorted(s for s in manifest["shards"] if s["split"] == split):
        stem = data / f"{split}-{shard['index']:05d}"
        ids = np.fromfile(f"{stem}.ids", dtype=dtype).astype(np.int64)
        for start, length, b in np.fromfile(f"{stem}.idx", dtype=INDEX_DTYPE):
            examples.append((ids[start : start + length], int(b)))
    return examples


def collate(rows, pad: int):
    """Pads to the longest row (equivalent to padding to max_seq_len under the attention mask)."""
    seq = max(len(ids) for ids, _ in rows)
    input_ids = np.full((len(rows), seq), pad, dtype=np.int64)
    types = np.zeros((len(rows), seq), dtype=np.int64)
    mask = np.zeros((len(rows), seq), dtype=np.int64)
    for r, (ids, b) in enumerate(rows):
        input_ids[r, : len(ids)] = ids
        types[r, b : len(ids)] = 1
        mask[r, : len(ids)] = 1
    return input_ids, types, mask


def choose_positions(input_ids, mask, special, mask_id, max_seq_len, rng, mask_prob=0.15, mask_token_prob=0.85):
    """Reference section 2: chosen positions (row, col), generator input and targets."""
    cap = int((mask_prob + 0.005) * max_seq_len)
    gen_input = input_ids.copy()
    rows, cols = [], []
    for r in range(input_ids.shape[0]):
        real = int(mask[r].sum())
        cand = [c for c in range(real) if input_ids[r, c] not in special]
        n = max(1, min(cap, int(round(real * mask_prob))))
        n = min(n, len(cand))
        if n == 0:
            continue
        chosen = np.sort(rng.choice(cand, size=n, replace=False))
        for c in chosen:
            rows.append(r)
            cols.append(int(c))
            if rng.random() < mask_token_prob:
                gen_input[r, c] = mask_id
    return gen_input, np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64)


class Electra(torch.nn.Module):
    """Generator + discriminator with the shared embedding module and tied output projection."""

    def __init__(self, vocab_size: int, gen_size: float, seed: int, layers: int = 4, hidden: int = 128,
                 heads: int = 2, ffn: int = 512, embedding: int = 128, untied: bool = False):
        super().__init__()
        torch.manual_seed(seed)
        common = dict(
            vocab_size=vocab_size,
            embedding_size=embedding,
            num_hidden_layers=layers,
            max_position_embeddings=512,
            type_vocab_size=2,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
            hidden_act="gelu",
            layer_norm_eps=1e-12,
            initializer_range=0.02,
            pad_token_id=0,
            tie_word_embeddings=True,
        )
        dcfg = ElectraConfig(hidden_size=hidden, num_attention_heads=heads, intermediate_size=ffn, **common)
        g_hidden = max(1, int(round(hidden * gen_size)))
        gcfg = ElectraConfig(
            hidden_size=g_hidden, num_attention_heads=max(1, g_hidden // 64), intermediate_size=4 * g_hidden, **common
        )
        self.disc = ElectraForPreTraining(dcfg)
        self.gen = ElectraForMaskedLM(gcfg)
        if untied:
            # Deviation: the generator keeps its own embedding module; its LM head is tied to its own table.
            assert self.gen.generator_lm_head.weight is self.gen.electra.embeddings.word_embeddings.weight
            assert self.gen.get_input_embeddings() is not self.disc.get_input_embeddings()
            return
        # One embedding module (word, position, token type, LayerNorm), owned by the discriminator.
        self.gen.electra.embeddings = self.disc.electra.embeddings
        self.gen.generator_lm_head.weight = self.disc.electra.embeddings.word_embeddings.weight
        assert self.gen.get_input_embeddings() is self.disc.get_input_embeddings()
        assert self.gen.generator_lm_head.weight is self.disc.electra.embeddings.word_embeddings.weight

    def generator_logits(self, input_ids, types, mask, rows, cols):
        h = self.gen.electra(input_ids=input_ids, attention_mask=mask, token_type_ids=types).last_hidden_state
        h = self.gen.generator_predictions(h[rows, cols])
        return self.gen.generator_lm_head(h)  # [n, vocab]

    def discriminator(self, input_ids, types, mask):
        h = self.disc.electra(input_ids=input_ids, attention_mask=mask, token_type_ids=types).last_hidden_state
        return self.disc.discriminator_predictions(h), h  # [batch, seq], [batch, seq, hidden]


def forward(model, batch, args, special, mask_id, rng, gen):
    input_ids, types, mask = batch
    gen_input, rows, cols = choose_positions(input_ids, mask, special, mask_id, args.max_seq_len, rng)
    t = lambda a: torch.from_numpy(a)  # noqa: E731
    ids_t, types_t, mask_t = t(input_ids), t(types), t(mask)
    rows_t, cols_t = t(rows), t(cols)
    targets = ids_t[rows_t, cols_t]
    logits = model.generator_logits(t(gen_input), types_t, mask_t, rows_t, cols_t)
    mlm = F.cross_entropy(logits, targets)
    with torch.no_grad():
        u = torch.rand(logits.shape, generator=gen)
        gumbel = -torch.log(-torch.log(u + 1e-9) + 1e-9)
        samples = (logits.detach() / args.temperature + gumbel).argmax(-1)
    disc_ids = ids_t.clone()
    disc_ids[rows_t, cols_t] = samples
    labels = (disc_ids != ids_t).float()
    disc_logits, hidden = model.discriminator(disc_ids, types_t, mask_t)
    m = mask_t.float()
    per_token = F.binary_cross_entropy_with_logits(disc_logits, labels, reduction="none")
    disc = (per_token * m).sum() / m.sum()
    return dict(
        mlm=mlm,
        disc=disc,
        gen_correct=int((logits.detach().argmax(-1) == targets).sum()),
        predictions=len(rows),
        targets=targets,
        disc_logits=disc_logits.detach()[mask_t.bool()],
        labels=labels[mask_t.bool()],
        disc_input=disc_ids[mask_t.bool()],
    )


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Rank (Mann-Whitney) AUC with ties counted one half."""
    pos = int(labels.sum())
    neg = len(labels) - pos
    if pos == 0 or neg == 0:
        return 0.5
    order = np.argsort(scores, kind="mergesort")
    s = scores[order]
    ranks = np.empty(len(s))
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[i : j + 1] = (i + j) / 2 + 1
        i = j + 1
    rank_sum = ranks[labels[order] == 1].sum()
    return float((rank_sum - pos * (pos + 1) / 2) / (pos * neg))


@torch.no_grad()
def evaluate(model, valid, args, special, mask_id, pad, step, log_freq):
    model.eval()
    rng = np.random.default_rng(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    totals = dict(mlm=0.0, disc=0.0, gen_correct=0, predictions=0, parts=0)
    scores, labels, targets, seen = [], [], [], []
    for k in range(args.eval_batches):
        rows = valid[k * args.batch : (k + 1) * args.batch]
        if not rows:
            break
        f = forward(model, collate(rows, pad), args, special, mask_id, rng, gen)
        totals["mlm"] += f["mlm"].item()
        totals["disc"] += f["disc"].item()
        totals["gen_correct"] += f["gen_correct"]
        totals["predictions"] += f["predictions"]
        totals["parts"] += 1
        scores.append(f["disc_logits"].numpy())
        labels.append(f["labels"].numpy())
        targets.append(f["targets"].numpy())
        seen.append(f["disc_input"].numpy())
    model.train()
    s, y, tg = np.concatenate(scores), np.concatenate(labels), np.concatenate(targets)
    pred = s > 0
    most_common = np.bincount(tg).max()
    return dict(
        step=step,
        mlm_loss=totals["mlm"] / totals["parts"],
        disc_loss=totals["disc"] / totals["parts"],
        gen_accuracy=totals["gen_correct"] / totals["predictions"],
        unigram_accuracy=float(most_common / len(tg)),
        auc=auc(s, y),
        rarity_auc=auc(-log_freq[np.concatenate(seen)], y),
        disc_accuracy=float((pred == (y == 1)).mean()),
        precision=float((pred & (y == 1)).sum() / max(1, pred.sum())),
        recall=float((pred & (y == 1)).sum() / max(1, (y == 1).sum())),
        replaced_fraction=float(y.mean()),
    )


@torch.no_grad()
def collapse(model, valid, pad, n=200):
    """Mean pairwise cosine of the discriminator's last-layer [CLS] and mean-pooled vectors."""
    model.eval()
    cls, mean = [], []
    rows = valid[:n]
    for k in range(0, len(rows), 32):
        ids, types, mask = (torch.from_numpy(a) for a in collate(rows[k : k + 32], pad))
        _, h = model.discriminator(ids, types, mask)
        m = mask.unsqueeze(-1).float()
        cls.append(h[:, 0])
        mean.append((h * m).sum(1) / m.sum(1))
    model.train()

    def mean_cos(v):
        v = F.normalize(torch.cat(v), dim=-1)
        sim = v @ v.T
        k = sim.shape[0]
        return float((sim.sum() - sim.diagonal().sum()) / (k * (k - 1)))

    return dict(examples=len(rows), cls_cosine=mean_cos(cls), mean_pool_cosine=mean_cos(mean))


def param_groups(model, weight_decay):
    decay, no_decay = [], []
    for name, p in model.named_parameters():  # shared parameters appear once
        (no_decay if name.endswith("bias") or "LayerNorm" in name else decay).append(p)
    return [dict(params=decay, weight_decay=weight_decay), dict(params=no_decay, weight_decay=0.0)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="prepared shards (manifest.json)")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--gen-size", type=float, default=0.25, help="generator hidden size / discriminator's")
    ap.add_argument("--layers", type=int, default=4, help="transformer layers (both networks)")
    ap.add_argument("--hidden", type=int, default=128, help="discriminator hidden size")
    ap.add_argument("--heads", type=int, default=2, help="discriminator attention heads")
    ap.add_argument("--ffn", type=int, default=512, help="discriminator FFN size")
    ap.add_argument("--embedding-size", type=int, default=128)
    ap.add_argument("--untied", action="store_true", help="generator gets its own embeddings (deviation)")
    ap.add_argument("--disc-weight", type=float, default=50.0)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--max-seq-len", type=int, default=64, help="sets the cap N on chosen positions")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--eval-batches", type=int, default=8)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, help="JSON file for the curves")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    manifest = json.loads((args.data / "manifest.json").read_text())
    st = manifest["settings"]
    sp = st["special_tokens"]
    special = {sp["pad"], sp["cls"], sp["sep"], sp["mask"]}
    pad, mask_id = sp["pad"], sp["mask"]
    assert st["max_seq_len"] <= args.max_seq_len
    train = load_split(args.data, "train", manifest)
    valid = load_split(args.data, "validation", manifest)
    # Context-free baseline for the AUC: score each token by its rarity in the training split.
    counts = np.bincount(np.concatenate([ids for ids, _ in train]), minlength=st["vocab_size"])
    log_freq = np.log((counts + 1) / (counts.sum() + st["vocab_size"]))

    model = Electra(st["vocab_size"], args.gen_size, args.seed, args.layers, args.hidden, args.heads, args.ffn,
                   args.embedding_size, args.untied)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(param_groups(model, args.weight_decay), lr=args.lr, betas=(0.9, 0.999), eps=1e-6)
    sched = lambda s: min(1.0, s / args.warmup if args.warmup else 1.0) * max(0.0, 1 - s / args.steps)  # noqa: E731
    rng = np.random.default_rng(args.seed + 1)
    gen = torch.Generator().manual_seed(args.seed + 1)
    order, consumed = None, 0

    curve = dict(args={k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, params=n_params,
                 train=[], eval=[])
    print(f"{len(train)} train / {len(valid)} validation examples, {n_params} parameters", flush=True)
    started = time.time()
    window = dict(mlm=0.0, disc=0.0, correct=0, preds=0, n=0)
    for step in range(args.steps):
        rows = []
        for _ in range(args.batch):
            epoch, off = divmod(consumed, len(train))
            if off == 0:
                order = np.random.default_rng((args.seed, epoch)).permutation(len(train))
            rows.append(train[order[off]])
            consumed += 1
        lr = args.lr * sched(step)
        for g in opt.param_groups:
            g["lr"] = lr
        f = forward(model, collate(rows, pad), args, special, mask_id, rng, gen)
        loss = f["mlm"] + args.disc_weight * f["disc"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        window["mlm"] += f["mlm"].item()
        window["disc"] += f["disc"].item()
        window["correct"] += f["gen_correct"]
        window["preds"] += f["predictions"]
        window["n"] += 1
        done = step + 1
        if done % args.log_every == 0:
            n = window["n"]
            rec = dict(step=done, lr=lr, mlm_loss=window["mlm"] / n, disc_loss=window["disc"] / n,
                       gen_accuracy=window["correct"] / window["preds"], grad_norm=float(grad_norm),
                       elapsed=time.time() - started)
            curve["train"].append(rec)
            window = dict(mlm=0.0, disc=0.0, correct=0, preds=0, n=0)
            print(f"step {done}: mlm {rec['mlm_loss']:.3f} disc {rec['disc_loss']:.4f} "
                  f"gen-acc {rec['gen_accuracy']:.3f} |g| {rec['grad_norm']:.2f} {rec['elapsed']:.0f}s", flush=True)
        if (args.eval_every and done % args.eval_every == 0) or done == args.steps:
            e = evaluate(model, valid, args, special, mask_id, pad, done, log_freq)
            curve["eval"].append(e)
            print(f"eval @ {done}: gen acc {e['gen_accuracy']:.3f} (unigram {e['unigram_accuracy']:.3f}) "
                  f"AUC {e['auc']:.3f} (rarity {e['rarity_auc']:.3f}) acc {e['disc_accuracy']:.3f} "
                  f"P {e['precision']:.3f} R {e['recall']:.3f} "
                  f"replaced {e['replaced_fraction']:.3f}", flush=True)
    curve["collapse"] = collapse(model, valid, pad)
    curve["seconds"] = time.time() - started
    print(f"collapse: {curve['collapse']}  ({curve['seconds']:.0f}s)", flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(curve, indent=1))


if __name__ == "__main__":
    main()
