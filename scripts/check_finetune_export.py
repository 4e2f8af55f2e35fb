#!/usr/bin/env python3
"""Check a model written by `electra finetune` against HuggingFace transformers.

Loads the directory with `ElectraForSequenceClassification` (no missing / unexpected keys
allowed), classifies the lines of INPUT (a tab separates the texts of a pair) with the
directory's own vocab.txt through `BertTokenizer`, and compares the probabilities with those
that `electra classify` wrote to OURS (JSON Lines). Exits non-zero on any mismatch above 1e-4.

    electra classify --model DIR --input lines.txt --output ours.jsonl
    python3 scripts/check_finetune_export.py DIR lines.txt ours.jsonl
"""

import json
import sys

import torch
from transformers import BertTokenizer, ElectraForSequenceClassification


def main() -> int:
    model_dir, input_path, ours_path = sys.argv[1:4]
    model, info = ElectraForSequenceClassification.from_pretrained(model_dir, output_loading_info=True)
    problems = {k: v for k, v in info.items() if v}
    if problems:
        print("loading problems:", problems)
        return 1
    model.eval()
    tok = BertTokenizer(f"{model_dir}/vocab.txt", do_lower_case=True)
    lines = [l.rstrip("\n") for l in open(input_path, encoding="utf-8")]
    ours = [json.loads(l) for l in open(ours_path, encoding="utf-8")]
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    worst = 0.0
    for line, mine in zip(lines, ours):
        a, _, b = line.partition("\t")
        enc = tok(a, b or None, truncation="longest_first", max_length=128, return_tensors="pt")
        with torch.no_grad():
            p = torch.softmax(model(**enc).logits[0], -1).tolist()
        diff = max(abs(p[i] - mine["probabilities"][l]) for i, l in enumerate(labels))
        worst = max(worst, diff)
        if labels[max(range(len(p)), key=p.__getitem__)] != mine["label"] and diff > 1e-4:
            print("label differs:", line, p, mine)
    print(f"{len(lines)} lines, max probability difference {worst:.2e}")
    return 0 if worst < 1e-4 and len(lines) == len(ours) else 1


if __name__ == "__main__":
    sys.exit(main())
