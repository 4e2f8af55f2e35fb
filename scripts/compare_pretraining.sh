#!/usr/bin/env bash
# Does pre-training help? Fine-tunes the discriminator of a pre-training run and the same
# architecture from random initialisation on the two labelled tasks in ../shared/data/tasks/,
# 3 seeds each, and prints the summaries (median over seeds of dev and test scores).
#
#   cargo xtask pretrain                      # -> runs/pretrain/discriminator
#   scripts/compare_pretraining.sh [MODEL_DIR] [OUT_DIR]
#
# Settings: 3 epochs, batch 32, LR 3e-4 (paper, Small), layer-wise decay 0.8, 10% warm-up,
# sequences cut at 64 tokens, fine-tuning dropout 0.1; crowdflower's 29,762 training tweets are
# subsampled to 4,000 (the same subset for every run) to keep the comparison to minutes on a
# 2-core CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-runs/pretrain/discriminator}
OUT=${2:-runs/compare}
TASKS=${TASKS:-../shared/data/tasks}
COMMON=(--model "$MODEL" --seeds 3 --epochs 3 --batch-size 32 --lr 3e-4 --max-seq-len 64 --dropout 0.1)
cargo build --release -p electra-cli
for init in pretrained random; do
  target/release/electra finetune "${COMMON[@]}" --init "$init" \
    --data "$TASKS/sms_spam.tsv.xz" --out "$OUT/sms_spam-$init"
  target/release/electra finetune "${COMMON[@]}" --init "$init" --max-train-examples 4000 \
    --data "$TASKS/crowdflower_tweet_sentiment.tsv.xz" --out "$OUT/crowdflower-$init"
done
