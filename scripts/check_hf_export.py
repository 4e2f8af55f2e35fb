#!/usr/bin/env python3
"""Check that a model directory (e.g. written by our Rust HF exporter) loads
cleanly with HuggingFace `transformers`.

Usage
-----
    python3 scripts/check_hf_export.py DIR [--kind pretraining|masked-lm|model]
                                           [--expect IO.safetensors --prefix NAME [--atol 1e-4]]
                                           [--no-forward]

* `--kind` picks the class: pretraining -> AutoModelForPreTraining
  (ElectraForPreTraining for ELECTRA), masked-lm -> AutoModelForMaskedLM
  (ElectraForMaskedLM), model -> AutoModel (ElectraModel, bare encoder).
  Default: inferred from `architectures` in DIR/config.json.
* Fails (exit 1, message on stderr) if `from_pretrained(..., output_loading_info=True)`
  raises or reports any missing_keys / unexpected_keys / mismatched_keys /
  error_msgs, if the weight file holds tensors the model does not know (HF
  would drop them silently, e.g. persisted `position_ids`), if a tied tensor
  that is present in the file differs from the tensor it is tied to (HF
  would silently keep only one of them), or if a forward pass on a small
  dummy batch gives non-finite values.
* `--expect FILE --prefix NAME` additionally runs the batch stored in FILE
  (`input_ids`, `attention_mask`, `token_type_ids`, as in the fixtures'
  `io.safetensors`) and compares `NAME.logits`, `NAME.last_hidden_state`,
  `NAME.embeddings`, `NAME.pooler_output` (those present) within `--atol`.
* On success prints one line: `OK <dir> kind=... class=... params=N ...`.

Needs the packages pinned in scripts/requirements-fixtures.txt. CPU only, no
network (local directories only).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

KINDS = ("pretraining", "masked-lm", "model")


def fail(msg: str) -> "NoReturn":  # noqa: F821
    print(f"FAIL {msg}", file=sys.stderr)
    sys.exit(1)


def infer_kind(config: dict) -> str:
    archs = config.get("architectures") or []
    for a in archs:
        if a.endswith("ForPreTraining"):
            return "pretraining"
        if a.endswith("ForMaskedLM"):
            return "masked-lm"
        if a.endswith("Model"):
            return "model"
    fail(f"cannot infer --kind from architectures={archs!r}; pass --kind {{{','.join(KINDS)}}}")


def read_checkpoint_keys(d: Path) -> dict:
    """name -> tensor of the weight file(s) in d (safetensors preferred, like HF)."""
    import torch

    st = sorted(d.glob("model*.safetensors"))
    if st:
        from safetensors.torch import load_file

        out = {}
        for f in st:
            out.update(load_file(str(f)))
        return out
    bins = sorted(d.glob("pytorch_model*.bin"))
    if bins:
        out = {}
        for f in bins:
            out.update(torch.load(str(f), map_location="cpu", weights_only=True))
        return out
    fail(f"{d}: no model.safetensors or pytorch_model.bin")


def main() -> int:
    ap = argparse.ArgumentParser(description="Load a model dir with transformers and fail on any key problem.")
    ap.add_argument("dir", type=Path)
    ap.add_argument("--kind", choices=KINDS)
    ap.add_argument("--expect", type=Path, help="io.safetensors with inputs and reference outputs")
    ap.add_argument("--prefix", help="output name prefix inside --expect (e.g. disc, gen, base)")
    ap.add_argument("--atol", type=float, default=1e-4)
    ap.add_argument("--no-forward", action="store_true", help="skip the dummy forward pass")
    args = ap.parse_args()

    d: Path = args.dir
    if not d.is_dir():
        fail(f"{d}: not a directory")
    cfg_path = d / "config.json"
    if not cfg_path.is_file():
        fail(f"{d}: no config.json")
    try:
        config = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as e:
        fail(f"{cfg_path}: invalid JSON: {e}")
    if args.expect and not args.prefix:
        fail("--expect needs --prefix")

    import torch
    import transformers
    from transformers import AutoModel, AutoModelForMaskedLM, AutoModelForPreTraining

    transformers.utils.logging.disable_progress_bar()
    # keep transformers' warnings: on failure its LOAD REPORT table (stderr) shows the details
    torch.set_grad_enabled(False)

    kind = args.kind or infer_kind(config)
    auto = {"pretraining": AutoModelForPreTraining, "masked-lm": AutoModelForMaskedLM, "model": AutoModel}[kind]

    try:
        model, info = auto.from_pretrained(str(d), output_loading_info=True, attn_implementation="eager")
    except Exception as e:  # size mismatches, bad config, unreadable weights, ...
        fail(f"{d}: from_pretrained({auto.__name__}) raised {type(e).__name__}: {e}")
    model.eval()

    problems = []
    for field in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        v = info.get(field)
        if v:
            items = sorted(map(str, v))
            problems.append(f"{field} ({len(items)}): " + ", ".join(items))

    # Tensors in the file the model does not know about are dropped silently
    # when the class lists them in _keys_to_ignore_on_load_unexpected.
    ckpt = read_checkpoint_keys(d)
    sd = model.state_dict()
    unknown = sorted(set(ckpt) - set(sd))
    if unknown and not info.get("unexpected_keys"):
        problems.append(f"tensors in the weight file unknown to {type(model).__name__} ({len(unknown)}): "
                        + ", ".join(unknown))

    # Tied parameters (from a fresh, weightless instance of the class, because
    # transformers 5 UNTIES them silently when the file holds two different
    # values): if the file holds several ends of a tie they must be equal.
    with torch.device("meta"):
        fresh = type(model)(model.config)
    ptr_groups: dict[int, list[str]] = {}
    for name, p in fresh.named_parameters(remove_duplicate=False):
        ptr_groups.setdefault(id(p), []).append(name)
    for names in ptr_groups.values():
        present = [n for n in names if n in ckpt]
        for n in present[1:]:
            a, b = ckpt[present[0]], ckpt[n]
            if a.shape != b.shape or not torch.equal(a, b):
                problems.append(f"tied tensors differ in the weight file: {present[0]} vs {n}")
    n_fresh = sum(p.numel() for p in fresh.parameters())
    n_loaded = sum(p.numel() for p in model.parameters())
    if n_fresh != n_loaded:
        problems.append(f"loaded model has {n_loaded} parameters but a fresh {type(model).__name__} "
                        f"has {n_fresh} (weights untied/retied while loading?)")

    if problems:
        fail(f"{d} as {type(model).__name__}:\n  " + "\n  ".join(problems))

    # --- forward passes -------------------------------------------------
    def outputs_of(inputs):
        out = model(**inputs, output_hidden_states=True, return_dict=True)
        res = {}
        if getattr(out, "logits", None) is not None:
            res["logits"] = out.logits
        if getattr(out, "last_hidden_state", None) is not None:
            res["last_hidden_state"] = out.last_hidden_state
        elif out.hidden_states is not None:
            res["last_hidden_state"] = out.hidden_states[-1]
        if out.hidden_states is not None:
            res["embeddings"] = out.hidden_states[0]
        if getattr(out, "pooler_output", None) is not None:
            res["pooler_output"] = out.pooler_output
        if getattr(out, "prediction_logits", None) is not None:  # BertForPreTraining
            res["logits"] = out.prediction_logits
        return res

    extra = ""
    if not args.no_forward:
        vocab = model.config.vocab_size
        g = torch.Generator().manual_seed(0)
        ids = torch.randint(0, vocab, (2, 7), generator=g)
        mask = torch.ones_like(ids)
        mask[1, 4:] = 0
        tt = torch.zeros_like(ids)
        tt[0, 4:] = 1
        res = outputs_of({"input_ids": ids, "attention_mask": mask, "token_type_ids": tt})
        for k, v in res.items():
            if not torch.isfinite(v).all():
                fail(f"{d}: non-finite values in {k} of the dummy forward pass")
        extra += " forward=ok"

    if args.expect:
        from safetensors.torch import load_file

        io = load_file(str(args.expect))
        inputs = {k: io[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
        res = outputs_of(inputs)
        compared = []
        worst = 0.0
        for name, got in res.items():
            key = f"{args.prefix}.{name}"
            if key not in io:
                continue
            ref = io[key]
            if tuple(ref.shape) != tuple(got.shape):
                fail(f"{key}: shape {tuple(got.shape)} != expected {tuple(ref.shape)}")
            diff = (got.double() - ref.double()).abs().max().item()
            worst = max(worst, diff)
            if not diff <= args.atol:
                fail(f"{key}: max abs diff {diff:.3e} > atol {args.atol:g}")
            compared.append(name)
        if not compared:
            fail(f"{args.expect}: no '{args.prefix}.*' outputs matching {sorted(res)}")
        extra += f" expect[{args.prefix}]={','.join(compared)} max_abs_diff={worst:.2e}"

    n_params = sum(p.numel() for p in model.parameters())
    dtypes = sorted({str(t.dtype).replace('torch.', '') for t in ckpt.values()})
    if not (d / "vocab.txt").is_file():
        extra += " (warning: no vocab.txt)"
    print(f"OK {d} kind={kind} class={type(model).__name__} params={n_params} "
          f"file_tensors={len(ckpt)} dtypes={','.join(dtypes)}{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
