#!/usr/bin/env python3
"""Generate the HuggingFace-parity fixtures for the `electra-model` crate.

Purpose
-------
Builds tiny, randomly initialised ELECTRA / BERT models with HuggingFace
`transformers` (no hub downloads: every model is created from a config; HF's
default init scheme with initializer_range=0.2), perturbs every parameter
(+= 0.02*randn) so that mis-mapped biases / LayerNorms are detected,
saves them as complete HF model directories (config.json + weights +
vocab.txt) and records the reference forward outputs for one fixed padded,
two-segment batch in `io.safetensors`.  The Rust tests load the model
directories with our importer, run the same batch and compare against the
recorded outputs (tolerance 1e-4 absolute).

The layout of the output is documented in
`crates/electra-model/tests/fixtures/README.md`; the state-dict key names of
every saved model kind are listed in `.../fixtures/KEYS.md` (also written by
this script).

How to run (by hand, NOT in CI; CPU only, needs no network)
-----------------------------------------------------------
    pip install -r scripts/requirements-fixtures.txt
    python3 scripts/make_model_fixtures.py            # -> crates/electra-model/tests/fixtures
    python3 scripts/make_model_fixtures.py --out DIR  # elsewhere

The script is deterministic (fixed seeds, eval mode => no dropout, float32,
eager attention, single-threaded CPU) so rerunning it with the pinned versions
reproduces the committed files.

Pinned versions used to produce the committed fixtures
------------------------------------------------------
    torch==2.15.0
    transformers==5.24.0
    safetensors==0.8.0
    numpy==2.4.6
(Python 3.11.7.)  transformers 5.x removed `save_pretrained(safe_serialization=...)`;
the legacy `pytorch_model.bin` of `electra_deep/disc_bin/` is therefore written
with `torch.save(state_dict)`, which is exactly what transformers 4.x did.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
import transformers
import safetensors
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import (
    BertConfig,
    BertForMaskedLM,
    BertModel,
    ElectraConfig,
    ElectraForMaskedLM,
    ElectraForPreTraining,
    ElectraModel,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "crates" / "electra-model" / "tests" / "fixtures"

PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = 0, 1, 2, 3, 4
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
FIRST_REGULAR_ID = 5
# input ids are drawn from [5, MAX_INPUT_ID) so the same batch is valid for every case
MAX_INPUT_ID = 99

BATCH, SEQ = 3, 12
INIT_RANGE = 0.2
PERTURB_STD = 0.02
TOLERANCE = 1e-4

COMMON = dict(
    hidden_act="gelu",
    layer_norm_eps=1e-12,
    max_position_embeddings=64,
    type_vocab_size=2,
    pad_token_id=PAD_ID,
    # HF's default init scheme (normal(0, initializer_range) for Linear/Embedding
    # weights, zero biases, LayerNorm = (1, 0)) but with a 10x larger std than
    # the usual 0.02: with 0.02 the attention scores are ~0 (near-uniform
    # attention) and GELU inputs are tiny, so e.g. a wrong attention scaling,
    # a permuted head split or tanh-GELU instead of erf-GELU changed the
    # outputs by less than the 1e-4 test tolerance.  With 0.2 they change the
    # outputs by >= ~1e-3 (see the README).
    initializer_range=INIT_RANGE,
)


# --------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------
def make_inputs() -> dict[str, torch.Tensor]:
    """Batch 3 x 12 with padding and two segments.

    row 0: len 12  [CLS] a a a a a [SEP] b b b b [SEP]          tt 0*7 1*5
    row 1: len  9  [CLS] a a a a [SEP] b b [SEP] PAD PAD PAD    tt 0*6 1*3 0*3
    row 2: len  5  [CLS] a a a [SEP] PAD*7                      tt 0*12
    """
    g = torch.Generator().manual_seed(1234)
    # (length of segment A body, length of segment B body or None)
    rows = [(5, 4), (4, 2), (3, None)]
    input_ids = torch.full((BATCH, SEQ), PAD_ID, dtype=torch.int64)
    token_type_ids = torch.zeros((BATCH, SEQ), dtype=torch.int64)
    attention_mask = torch.zeros((BATCH, SEQ), dtype=torch.int64)
    for r, (la, lb) in enumerate(rows):
        ids = [CLS_ID]
        ids += torch.randint(FIRST_REGULAR_ID, MAX_INPUT_ID, (la,), generator=g).tolist()
        ids += [SEP_ID]
        first_len = len(ids)
        if lb is not None:
            ids += torch.randint(FIRST_REGULAR_ID, MAX_INPUT_ID, (lb,), generator=g).tolist()
            ids += [SEP_ID]
        n = len(ids)
        input_ids[r, :n] = torch.tensor(ids)
        attention_mask[r, :n] = 1
        token_type_ids[r, first_len:n] = 1
    lengths = attention_mask.sum(1).tolist()
    assert lengths == [12, 9, 5], lengths
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "token_type_ids": token_type_ids,
    }


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def vocab_lines(vocab_size: int) -> list[str]:
    return SPECIAL_TOKENS + [f"tok{i}" for i in range(FIRST_REGULAR_ID, vocab_size)]


def write_vocab(d: Path, vocab_size: int) -> None:
    (d / "vocab.txt").write_text("\n".join(vocab_lines(vocab_size)) + "\n")


def build(cls, config, seed: int):
    """HF default init (seeded), then perturb *every* parameter with noise."""
    torch.manual_seed(seed)
    model = cls(config)
    model.set_attn_implementation("eager")
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        # named_parameters() yields tied parameters only once, so ties survive
        for _, p in model.named_parameters():
            p.add_(PERTURB_STD * torch.randn(p.shape, generator=g, dtype=p.dtype))
    model.eval()
    return model


def copy_into(cls, config, src_state: dict, seed: int, strict: bool = True):
    """Instantiate `cls` and load `src_state` (used for the bare-encoder copies)."""
    model = build(cls, config, seed)
    missing, unexpected = model.load_state_dict(src_state, strict=strict)
    model.eval()
    return model, missing, unexpected


def save_hf(model, d: Path, vocab_size: int) -> None:
    if d.exists():
        shutil.rmtree(d)
    model.save_pretrained(d)  # transformers 5.x: always model.safetensors
    assert (d / "model.safetensors").exists(), f"no model.safetensors in {d}"
    write_vocab(d, vocab_size)


def save_hf_bin(model, d: Path, vocab_size: int) -> None:
    """Legacy PyTorch pickle checkpoint (what save_pretrained(safe_serialization=False) wrote)."""
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    model.config.architectures = [type(model).__name__]
    model.config.save_pretrained(d)
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    torch.save(sd, d / "pytorch_model.bin")
    write_vocab(d, vocab_size)


@torch.no_grad()
def run(model, inputs) -> transformers.utils.ModelOutput:
    return model(
        input_ids=inputs["input_ids"],
        attention_mask=inputs["attention_mask"],
        token_type_ids=inputs["token_type_ids"],
        output_hidden_states=True,
        return_dict=True,
    )


def f32(t: torch.Tensor) -> torch.Tensor:
    assert t.dtype == torch.float32
    return t.detach().contiguous().clone()


def reload_check(cls, d: Path, inputs, expected: dict[str, torch.Tensor], prefix: str) -> None:
    """Reload the saved dir with from_pretrained and make sure it is exact + complete."""
    model, info = cls.from_pretrained(d, output_loading_info=True, attn_implementation="eager")
    bad = {k: v for k, v in info.items() if v}
    assert not bad, f"{d}: loading info not clean: {bad}"
    model.eval()
    out = run(model, inputs)
    for name, ref in expected.items():
        got = getattr(out, name, None)
        if got is None and name == "last_hidden_state":
            got = out.hidden_states[-1]
        diff = (got - ref).abs().max().item()
        assert diff == 0.0, f"{prefix}.{name}: reload diff {diff}"


# --------------------------------------------------------------------------
# cases
# --------------------------------------------------------------------------
def electra_case(out_dir: Path, inputs, *, name, vocab, emb, hidden, layers, heads, inter,
                 gen_hidden, gen_heads, gen_inter, seed, with_bin: bool, with_base: bool):
    case = out_dir / name
    case.mkdir(parents=True, exist_ok=True)
    tensors = dict(inputs)
    manifest = {"case": name, "models": {}}

    disc_cfg = ElectraConfig(vocab_size=vocab, embedding_size=emb, hidden_size=hidden,
                             num_hidden_layers=layers, num_attention_heads=heads,
                             intermediate_size=inter, **COMMON)
    gen_cfg = ElectraConfig(vocab_size=vocab, embedding_size=emb, hidden_size=gen_hidden,
                            num_hidden_layers=layers, num_attention_heads=gen_heads,
                            intermediate_size=gen_inter, **COMMON)

    # discriminator ---------------------------------------------------------
    disc = build(ElectraForPreTraining, disc_cfg, seed)
    o = run(disc, inputs)
    tensors["disc.last_hidden_state"] = f32(o.hidden_states[-1])
    tensors["disc.logits"] = f32(o.logits)
    tensors["disc.embeddings"] = f32(o.hidden_states[0])
    save_hf(disc, case / "disc", vocab)
    reload_check(ElectraForPreTraining, case / "disc", inputs,
                 {"logits": o.logits, "last_hidden_state": o.hidden_states[-1]}, "disc")
    manifest["models"]["disc"] = "ElectraForPreTraining"

    # generator -------------------------------------------------------------
    gen = build(ElectraForMaskedLM, gen_cfg, seed + 100)
    assert gen.generator_lm_head.weight is gen.electra.embeddings.word_embeddings.weight
    o = run(gen, inputs)
    tensors["gen.last_hidden_state"] = f32(o.hidden_states[-1])
    tensors["gen.logits"] = f32(o.logits)
    tensors["gen.embeddings"] = f32(o.hidden_states[0])
    save_hf(gen, case / "gen", vocab)
    reload_check(ElectraForMaskedLM, case / "gen", inputs,
                 {"logits": o.logits, "last_hidden_state": o.hidden_states[-1]}, "gen")
    manifest["models"]["gen"] = "ElectraForMaskedLM"

    # bare encoder = discriminator's `electra` submodule ---------------------
    if with_base:
        base_state = {k: v for k, v in disc.electra.state_dict().items()}
        base, missing, unexpected = copy_into(ElectraModel, copy.deepcopy(disc_cfg), base_state, seed + 200)
        assert not missing and not unexpected
        o = run(base, inputs)
        assert torch.equal(o.last_hidden_state, tensors["disc.last_hidden_state"])
        tensors["base.last_hidden_state"] = f32(o.last_hidden_state)
        save_hf(base, case / "base", vocab)
        reload_check(ElectraModel, case / "base", inputs, {"last_hidden_state": o.last_hidden_state}, "base")
        manifest["models"]["base"] = "ElectraModel"

    # legacy pytorch_model.bin of the discriminator ----------------------------
    if with_bin:
        save_hf_bin(disc, case / "disc_bin", vocab)
        reloaded, info = ElectraForPreTraining.from_pretrained(
            case / "disc_bin", output_loading_info=True, attn_implementation="eager")
        assert not any(info.values()), info
        reloaded.eval()
        o = run(reloaded, inputs)
        assert torch.equal(o.logits, tensors["disc.logits"])
        tensors["disc_bin.logits"] = f32(o.logits)
        manifest["models"]["disc_bin"] = "ElectraForPreTraining (pytorch_model.bin)"

    save_file(tensors, str(case / "io.safetensors"), metadata={"format": "pt"})
    return case, tensors, manifest


def bert_case(out_dir: Path, inputs, *, vocab, hidden, layers, heads, inter, seed):
    name = "bert"
    case = out_dir / name
    case.mkdir(parents=True, exist_ok=True)
    tensors = dict(inputs)
    manifest = {"case": name, "models": {}}
    cfg = BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                     num_attention_heads=heads, intermediate_size=inter, **COMMON)

    mlm = build(BertForMaskedLM, cfg, seed)
    assert mlm.cls.predictions.decoder.weight is mlm.bert.embeddings.word_embeddings.weight
    o = run(mlm, inputs)
    tensors["mlm.last_hidden_state"] = f32(o.hidden_states[-1])
    tensors["mlm.logits"] = f32(o.logits)
    tensors["mlm.embeddings"] = f32(o.hidden_states[0])
    save_hf(mlm, case / "mlm", vocab)
    reload_check(BertForMaskedLM, case / "mlm", inputs,
                 {"logits": o.logits, "last_hidden_state": o.hidden_states[-1]}, "mlm")
    manifest["models"]["mlm"] = "BertForMaskedLM"

    # BertModel with pooler: encoder copied from the MLM model, pooler random+perturbed
    base = build(BertModel, copy.deepcopy(cfg), seed + 200)
    missing, unexpected = base.load_state_dict(mlm.bert.state_dict(), strict=False)
    assert not unexpected and sorted(missing) == ["pooler.dense.bias", "pooler.dense.weight"], (missing, unexpected)
    base.eval()
    o = run(base, inputs)
    assert torch.equal(o.last_hidden_state, tensors["mlm.last_hidden_state"])
    tensors["base.last_hidden_state"] = f32(o.last_hidden_state)
    tensors["base.pooler_output"] = f32(o.pooler_output)
    save_hf(base, case / "base", vocab)
    reload_check(BertModel, case / "base", inputs,
                 {"last_hidden_state": o.last_hidden_state, "pooler_output": o.pooler_output}, "base")
    manifest["models"]["base"] = "BertModel"

    save_file(tensors, str(case / "io.safetensors"), metadata={"format": "pt"})
    return case, tensors, manifest


# --------------------------------------------------------------------------
# KEYS.md
# --------------------------------------------------------------------------
def keys_section(title: str, model_dir: Path, model) -> str:
    st = model_dir / "model.safetensors"
    lines = [f"## {title}", "", f"File: `{model_dir.relative_to(model_dir.parent.parent)}/model.safetensors`", ""]
    with safe_open(str(st), framework="pt") as f:
        saved = {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()}
        meta = f.metadata()
    lines.append("| key | shape | dtype |")
    lines.append("|---|---|---|")
    for k in sorted(saved):
        shape, dt = saved[k]
        lines.append(f"| `{k}` | {list(shape)} | {dt} |")
    sd_keys = set(model.state_dict().keys())
    dropped = sorted(sd_keys - set(saved))
    extra = sorted(set(saved) - sd_keys)
    lines.append("")
    lines.append(f"{len(saved)} tensors saved; safetensors metadata: `{json.dumps(meta)}`.")
    if dropped:
        lines.append("")
        lines.append("In `model.state_dict()` but NOT in the file (tied to another saved tensor):")
        for k in dropped:
            lines.append(f"- `{k}`")
    if extra:
        lines.append("")
        lines.append("In the file but not in `model.state_dict()`: " + ", ".join(f"`{k}`" for k in extra))
    bufs = [n for n, _ in model.named_buffers()]
    if bufs:
        lines.append("")
        lines.append("Non-persistent buffers (never saved): " + ", ".join(f"`{b}`" for b in bufs))
    lines.append("")
    return "\n".join(lines)


def write_keys_md(out_dir: Path, sections: list[str]) -> None:
    header = f"""# HF state-dict keys of the fixture models

Generated by `scripts/make_model_fixtures.py` (transformers {transformers.__version__},
torch {torch.__version__.split('+')[0]}, safetensors {safetensors.__version__}).
Keys and shapes are read back from the saved `model.safetensors` files.
PyTorch `nn.Linear.weight` is stored as `[out_features, in_features]`
(i.e. transposed with respect to burn's `Linear` weight `[d_input, d_output]`).

Notation of the shapes below: V = vocab_size, E = embedding_size, H = hidden_size,
I = intermediate_size, P = max_position_embeddings, T = type_vocab_size.

"""
    (out_dir / "KEYS.md").write_text(header + "\n".join(sections))


# --------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output dir (default {DEFAULT_OUT})")
    args = ap.parse_args()

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    out_dir: Path = args.out
    out_dir.mkdir(parents=True, exist_ok=True)

    inputs = make_inputs()
    results = []

    results.append(electra_case(
        out_dir, inputs, name="electra_proj", vocab=100, emb=16, hidden=32, layers=2, heads=2,
        inter=64, gen_hidden=16, gen_heads=1, gen_inter=32, seed=1000, with_bin=False, with_base=True))
    results.append(electra_case(
        out_dir, inputs, name="electra_deep", vocab=112, emb=48, hidden=48, layers=3, heads=4,
        inter=96, gen_hidden=24, gen_heads=2, gen_inter=48, seed=2000, with_bin=True, with_base=False))
    results.append(bert_case(out_dir, inputs, vocab=128, hidden=32, layers=2, heads=2, inter=64, seed=3000))

    # KEYS.md: one of every model kind
    sections = []
    kinds = [
        ("ElectraForPreTraining (discriminator, E != H: electra_proj/disc)", "electra_proj/disc", ElectraForPreTraining),
        ("ElectraForMaskedLM (generator, E != H: electra_proj/gen)", "electra_proj/gen", ElectraForMaskedLM),
        ("ElectraModel (bare encoder, E != H: electra_proj/base)", "electra_proj/base", ElectraModel),
        ("ElectraForPreTraining (discriminator, E == H, no embeddings_project: electra_deep/disc)",
         "electra_deep/disc", ElectraForPreTraining),
        ("ElectraForMaskedLM (generator, E=48 != H=24: electra_deep/gen)", "electra_deep/gen", ElectraForMaskedLM),
        ("BertModel (with pooler: bert/base)", "bert/base", BertModel),
        ("BertForMaskedLM (bert/mlm)", "bert/mlm", BertForMaskedLM),
    ]
    for title, sub, cls in kinds:
        m = cls.from_pretrained(out_dir / sub)
        sections.append(keys_section(title, out_dir / sub, m))
    write_keys_md(out_dir, sections)

    # summary ---------------------------------------------------------------
    total = 0
    for case, tensors, manifest in results:
        size = sum(p.stat().st_size for p in case.rglob("*") if p.is_file())
        total += size
        print(f"== {case.name}: {size / 1024:.1f} KiB  models={manifest['models']}")
        for k, v in tensors.items():
            print(f"   {k:28s} {str(v.dtype):14s} {list(v.shape)}")
        assert size < 1.5 * 1024 * 1024, f"{case} too large ({size} bytes)"
    print(f"total {total / 1024:.1f} KiB written to {out_dir}")
    print(f"versions: torch {torch.__version__} transformers {transformers.__version__} "
          f"safetensors {safetensors.__version__} numpy {np.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
