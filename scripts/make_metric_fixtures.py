#!/usr/bin/env python3
"""Reference values for electra-finetune's metrics (tests/metrics.rs).

Writes crates/electra-finetune/tests/fixtures/metrics/expected.json with inputs and the values
scikit-learn, SciPy, NumPy and seqeval compute for them:

    python3 -m venv /tmp/mvenv
    /tmp/mvenv/bin/pip install scikit-learn scipy seqeval
    /tmp/mvenv/bin/python scripts/make_metric_fixtures.py

Generated with scikit-learn 1.9.1, SciPy 1.17.1, NumPy (their dependency), seqeval 1.2.2.
The inputs come from Python's `random` with fixed seeds, so rerunning reproduces the file.
"""

import json
import random
from pathlib import Path

import numpy as np
import scipy
import sklearn
from scipy.stats import pearsonr, rankdata, spearmanr
from seqeval.metrics import f1_score as seq_f1
from seqeval.metrics import precision_score as seq_precision
from seqeval.metrics import recall_score as seq_recall
from seqeval.metrics.sequence_labeling import get_entities
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    matthews_corrcoef,
    precision_score,
    recall_score,
)

OUT = (
    Path(__file__).resolve().parent.parent
    / "crates/electra-finetune/tests/fixtures/metrics/expected.json"
)


def classification_case(name, pred, gold, positive=1):
    # one class against the rest: binary F1 for two classes, the per-class F1 otherwise
    return {
        "name": name,
        "pred": pred,
        "gold": gold,
        "positive": positive,
        "accuracy": accuracy_score(gold, pred),
        "precision": float(precision_score(gold, pred, labels=[positive], average=None, zero_division=0)[0]),
        "recall": float(recall_score(gold, pred, labels=[positive], average=None, zero_division=0)[0]),
        "f1": float(f1_score(gold, pred, labels=[positive], average=None, zero_division=0)[0]),
        "mcc": float(matthews_corrcoef(gold, pred)),
    }


def noisy(rng, gold, n_classes, p_keep):
    return [g if rng.random() < p_keep else rng.randrange(n_classes) for g in gold]


def classification_cases():
    rng = random.Random(1)
    cases = []
    gold = [rng.randrange(2) for _ in range(60)]
    cases.append(classification_case("binary_noisy", noisy(rng, gold, 2, 0.7), gold))
    gold = [int(rng.random() < 0.2) for _ in range(80)]
    cases.append(classification_case("binary_imbalanced", noisy(rng, gold, 2, 0.8), gold))
    gold = [rng.randrange(3) for _ in range(90)]
    cases.append(classification_case("three_classes", noisy(rng, gold, 3, 0.6), gold, positive=2))
    gold = [rng.randrange(5) for _ in range(120)]
    cases.append(classification_case("five_classes", noisy(rng, gold, 5, 0.5), gold))
    gold = [rng.randrange(2) for _ in range(20)]
    cases.append(classification_case("all_wrong", [1 - g for g in gold], gold))
    # no positive prediction: precision and F1 are 0 (zero_division), MCC undefined -> 0
    cases.append(classification_case("constant_prediction", [0] * 10, [0, 1] * 5))
    # only negatives anywhere: F1 0 by zero_division
    cases.append(classification_case("no_positives", [0, 0, 2, 2], [0, 2, 2, 0]))
    return cases


def correlation_case(name, x, y):
    return {
        "name": name,
        "x": x,
        "y": y,
        "pearson": float(pearsonr(x, y)[0]),
        "spearman": float(spearmanr(x, y)[0]),
        "ranks_x": [float(r) for r in rankdata(x)],
    }


def correlation_cases():
    rng = random.Random(2)
    cases = []
    x = [rng.uniform(0, 5) for _ in range(40)]
    y = [v + rng.gauss(0, 1.0) for v in x]
    cases.append(correlation_case("noisy_linear", x, y))
    # heavy ties on both sides (STS-B scores come in steps)
    x = [round(rng.uniform(0, 5) * 2) / 2 for _ in range(50)]
    y = [round((v + rng.gauss(0, 1.2)) * 1) for v in x]
    cases.append(correlation_case("ties", x, [float(v) for v in y]))
    x = [float(i) for i in range(10)]
    y = [float(100 - i * i) for i in range(10)]
    cases.append(correlation_case("monotone_decreasing", x, y))
    x = [rng.uniform(-1, 1) for _ in range(7)]
    y = [rng.uniform(-1, 1) for _ in range(7)]
    cases.append(correlation_case("small_random", x, y))
    return cases


def entity_cases():
    gold = [
        ["B-PER", "I-PER", "O", "B-LOC", "O"],
        ["O", "B-ORG", "I-ORG", "I-ORG", "O", "B-MISC"],
        ["B-LOC", "B-LOC", "I-LOC", "O"],
        ["O", "O", "O"],
        ["I-PER", "I-PER", "O", "I-LOC", "B-LOC"],
    ]
    pred = [
        ["B-PER", "I-PER", "O", "B-ORG", "O"],
        ["O", "B-ORG", "I-ORG", "O", "O", "B-MISC"],
        ["B-LOC", "I-LOC", "I-LOC", "O"],
        ["O", "B-PER", "O"],
        ["I-PER", "I-PER", "O", "I-LOC", "I-LOC"],
    ]
    # tag sequences whose chunking is checked one by one (IOB1, stray I-, type changes,
    # IOBES, labels without a prefix)
    sequences = [
        ["B-PER", "I-PER", "O", "B-LOC"],
        ["I-PER", "I-PER", "I-LOC", "O", "I-LOC"],
        ["O", "I-MISC", "B-MISC", "I-MISC", "I-ORG"],
        ["B-PER", "E-PER", "S-LOC", "O", "B-ORG", "I-ORG", "E-ORG"],
        ["B-X", "I-Y", "I-Y", "O", "O"],
        ["PER", "PER", "O"],
        ["B-PER"],
    ]
    return {
        "gold": gold,
        "pred": pred,
        "precision": float(seq_precision(gold, pred)),
        "recall": float(seq_recall(gold, pred)),
        "f1": float(seq_f1(gold, pred)),
        "sequences": [
            {"tags": s, "entities": [[t, b, e] for (t, b, e) in get_entities(s)]}
            for s in sequences
        ],
    }


def median_cases():
    rng = random.Random(3)
    lists = [[1.0], [3.0, 1.0], [5.0, 1.0, 3.0], [rng.uniform(70, 90) for _ in range(9)],
             [rng.uniform(70, 90) for _ in range(10)]]
    return [{"values": v, "median": float(np.median(v))} for v in lists]


def main():
    data = {
        "generated_by": "scripts/make_metric_fixtures.py",
        "versions": {"scikit-learn": sklearn.__version__, "scipy": scipy.__version__,
                     "numpy": np.__version__, "seqeval": "1.2.2"},
        "classification": classification_cases(),
        "correlation": correlation_cases(),
        "entities": entity_cases(),
        "median": median_cases(),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
