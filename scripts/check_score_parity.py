#!/usr/bin/env python3
"""Compare `electra score` output with transformers on the same model directory.

Usage: python3 scripts/check_score_parity.py MODEL_DIR INPUT.txt SCORES.jsonl
where SCORES.jsonl was written by `electra score --model MODEL_DIR --input INPUT.txt --output ...`.
Checks that the WordPiece tokens are BertTokenizer's and prints the largest logit difference;
exits 1 if tokens differ or the difference exceeds 1e-4. Versions: scripts/requirements-fixtures.txt.
"""
import json
import sys

import torch
from transformers import BertTokenizer, ElectraForPreTraining

TOLERANCE = 1e-4


def main() -> int:
    model_dir, input_path, scores_path = sys.argv[1:4]
    tok = BertTokenizer(f"{model_dir}/vocab.txt", do_lower_case=True)
    model = ElectraForPreTraining.from_pretrained(model_dir).eval()
    ours = [json.loads(line) for line in open(scores_path, encoding="utf-8")]
    lines = open(input_path, encoding="utf-8").read().splitlines()
    worst = 0.0
    for number, (line, rec) in enumerate(zip(lines, ours), start=1):
        enc = tok(line, return_tensors="pt", truncation=True, max_length=model.config.max_position_embeddings)
        tokens = tok.convert_ids_to_tokens(enc["input_ids"][0][1:-1])
        if tokens != rec["tokens"]:
            print(f"line {number}: tokens differ: {tokens} vs {rec['tokens']}")
            return 1
        with torch.no_grad():
            logits = model(**enc).logits[0][1:-1].tolist()
        worst = max([worst] + [abs(a - b) for a, b in zip(logits, rec["logits"])])
    print(f"{len(ours)} lines, tokens identical, max |logit difference| = {worst:.3g}")
    return 0 if worst <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
