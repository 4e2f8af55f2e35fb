#!/usr/bin/env python3
"""Throughput of the reference pre-training data preparation, in Python.

The reference approach: HuggingFace `tokenizers`' BertWordPieceTokenizer (Rust, called from
Python line by line, as ELECTRA's build_pretraining_dataset.py calls its tokenizer) feeding
the reference ELECTRA ExampleBuilder (the copy in make_tokenizer_fixture.py, identical to
google-research/electra build_pretraining_dataset.py). Examples are built but not written
(the reference writes TFRecords; serialisation is not what is compared here).

Prints one JSON object: bytes read, seconds, MB/s, examples and examples/s, plus the token
counts (tokens read vs tokens kept in examples: the reference drops the tail of any line that
overflows an example).

Pinned versions: Python 3.11.7, tokenizers==0.23.3 (transformers is not needed).

Usage:
    python3 scripts/bench_prepare.py datasets/corpus/*.txt
    python3 scripts/bench_prepare.py --max-seq-len 512 --processes 4 FILE...

--processes N splits the files between N processes, as the reference's --num-processes does
(so it cannot use more processes than files).
"""

import argparse
import json
import multiprocessing
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_tokenizer_fixture import ReferenceExampleBuilder  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def process_files(job):
    files, vocab, max_len, seed, lowercase = job
    from tokenizers import BertWordPieceTokenizer

    tok = BertWordPieceTokenizer(vocab, lowercase=lowercase)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    builder = ReferenceExampleBuilder(max_len, cls_id, sep_id, random.Random(seed))
    stats = {"bytes": 0, "lines": 0, "documents": 0, "examples": 0, "tokens_in": 0, "tokens_kept": 0}

    def take(ex):
        if ex:
            stats["examples"] += 1
            stats["tokens_kept"] += len(ex["input_ids"])

    for path in files:
        in_doc = False
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                stats["bytes"] += len(line.encode("utf-8"))
                stats["lines"] += 1
                line = line.strip()
                if line:
                    ids = tok.encode(line, add_special_tokens=False).ids
                    stats["tokens_in"] += len(ids)
                    in_doc = True
                else:
                    ids = []
                    if in_doc:
                        stats["documents"] += 1
                    in_doc = False
                take(builder.add_line(line, ids))
        if in_doc:
            stats["documents"] += 1
        take(builder.add_line("", []))
    return stats


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--vocab", type=Path, default=ROOT / "datasets" / "vocab" / "vocab.txt")
    parser.add_argument("--max-seq-len", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--no-lower-case", action="store_true")
    args = parser.parse_args()
    files = args.files or sorted((ROOT / "datasets" / "corpus").glob("*.txt"))
    procs = max(1, min(args.processes, len(files)))
    jobs = [([f for i, f in enumerate(files) if i % procs == j], str(args.vocab), args.max_seq_len,
             args.seed + j, not args.no_lower_case) for j in range(procs)]

    start = time.perf_counter()
    if procs == 1:
        results = [process_files(jobs[0])]
    else:
        with multiprocessing.Pool(procs) as pool:
            results = pool.map(process_files, jobs)
    seconds = time.perf_counter() - start

    total = {k: sum(r[k] for r in results) for k in results[0]}
    import tokenizers
    print(json.dumps({
        "implementation": "python reference (tokenizers BertWordPieceTokenizer + ELECTRA ExampleBuilder)",
        "tokenizers_version": tokenizers.__version__,
        "files": [str(f) for f in files],
        "max_seq_len": args.max_seq_len,
        "processes": procs,
        "cpu_count": os.cpu_count(),
        **total,
        "seconds": round(seconds, 3),
        "mb_per_s": round(total["bytes"] / 1e6 / seconds, 3),
        "examples_per_s": round(total["examples"] / seconds, 1),
        "kept_token_fraction": round(total["tokens_kept"] / max(1, total["tokens_in"]), 4),
    }, indent=2))


if __name__ == "__main__":
    main()
