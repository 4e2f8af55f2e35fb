#!/usr/bin/env python3
"""Generate the HuggingFace-parity fixtures for the fine-tuning heads of `electra-finetune`.

For each head kind, builds a tiny randomly initialised ELECTRA task model with `transformers`
(no downloads; init range 0.2 and +0.02 noise on every parameter, as in
`make_model_fixtures.py`, so that a mis-mapped tensor changes the outputs by far more than the
1e-4 test tolerance), saves it as a HuggingFace model directory and records its outputs in eval
mode on one padded, two-segment batch:

    heads/sequence/      ElectraForSequenceClassification, 3 labels   -> logits [3, 3]
    heads/regression/    ElectraForSequenceClassification, 1 label     -> logits [3, 1]
    heads/token/         ElectraForTokenClassification, 5 labels       -> logits [3, 12, 5]
    heads/span/          ElectraForQuestionAnswering                   -> start, end [3, 12]
    heads/io.safetensors inputs (input_ids, token_type_ids, attention_mask) and outputs
                         (`sequence`, `regression`, `token`, `span_start`, `span_end`)

Run by hand (not in CI; CPU; no network), with the versions pinned in
scripts/requirements-fixtures.txt (torch 2.15.0, transformers 5.24.0):

    python3 scripts/make_finetune_fixtures.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import (
    ElectraConfig,
    ElectraForQuestionAnswering,
    ElectraForSequenceClassification,
    ElectraForTokenClassification,
)

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "crates" / "electra-finetune" / "tests" / "fixtures" / "heads"
BATCH, SEQ, VOCAB = 3, 12, 99


def inputs() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(99)
    rows = [(5, 4), (4, 2), (3, None)]
    ids = torch.zeros((BATCH, SEQ), dtype=torch.int64)
    types = torch.zeros_like(ids)
    mask = torch.zeros_like(ids)
    for r, (la, lb) in enumerate(rows):
        seq = [2] + torch.randint(5, VOCAB, (la,), generator=g).tolist() + [3]
        first = len(seq)
        if lb is not None:
            seq += torch.randint(5, VOCAB, (lb,), generator=g).tolist() + [3]
        n = len(seq)
        ids[r, :n] = torch.tensor(seq)
        mask[r, :n] = 1
        types[r, first:n] = 1
    return {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}


def config(**kw) -> ElectraConfig:
    return ElectraConfig(
        vocab_size=VOCAB,
        embedding_size=16,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=48,
        hidden_act="gelu",
        max_position_embeddings=64,
        type_vocab_size=2,
        initializer_range=0.2,
        pad_token_id=0,
        **kw,
    )


def build(cls, cfg, seed: int):
    torch.manual_seed(seed)
    model = cls(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(1)
    x = inputs()
    out: dict[str, torch.Tensor] = {k: v.clone() for k, v in x.items()}
    cases = [
        ("sequence", ElectraForSequenceClassification, config(num_labels=3), 1),
        ("regression", ElectraForSequenceClassification, config(num_labels=1, problem_type="regression"), 2),
        ("token", ElectraForTokenClassification, config(num_labels=5), 3),
        ("span", ElectraForQuestionAnswering, config(num_labels=2), 4),
    ]
    for name, cls, cfg, seed in cases:
        model = build(cls, cfg, seed)
        d = args.out / name
        d.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(d)
        with torch.no_grad():
            y = model(**x)
        if name == "span":
            out["span_start"] = y.start_logits.contiguous()
            out["span_end"] = y.end_logits.contiguous()
        else:
            out[name] = y.logits.contiguous()
        keys = sorted(model.state_dict().keys())
        print(name, [k for k in keys if not k.startswith("electra.")])
    save_file({k: v.contiguous() for k, v in out.items()}, str(args.out / "io.safetensors"))
    (args.out / "VERSIONS.json").write_text(
        json.dumps({"torch": torch.__version__, "transformers": __import__("transformers").__version__}, indent=1) + "\n"
    )


if __name__ == "__main__":
    main()
