"""The multi-label audit on features with known label sets and planted missing and extra labels: how many of the
planted ones it ranks within its first 2 x planted (image, label) pairs.

    python -m bench.multilabel_audit [--seeds 5] [--planted 20] [--out bench/results/multilabel_audit.json]

The data are bench.multilabel's generated FEATURES (not images: the ImageNet weights are not available here, and
random-init features carry no planted pattern): 5 planted directions in 32 dimensions, prevalences 0.4 to 0.03,
600 train and 200 val rows per seed. In train, `--planted` of the (row, label) pairs given a label are cleared (a
missing label) and as many pairs not given one are set (an extra label), drawn uniformly among each. The audit's own
functions then score them (heads/audit/multilabel.py: out-of-fold probabilities per label, 5 folds, against per-label
confident-learning thresholds), by each of its heads (`logreg`, the audit's default; `sgd`, train-head's recipe) and
each ranking score; and, as the baseline without thresholds, every (row, label) pair ranked by the same
self-confidence. Reported: recall of the planted pairs within the first 2 x planted ranked (missing and extra apart
too), and how many pairs were flagged, per seed and averaged.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np

from bench import measure_and_save
from bench.multilabel import LABELS, make_data
from headstart.heads.audit.config import AuditConfig
from headstart.heads.audit.multilabel import find_label_set_issues, label_probabilities
from headstart.heads.audit.rows import CachedRows
from headstart.heads.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
TRAIN, VAL = 600, 200
HEADS = {"logreg": AuditConfig().train, "sgd": TrainConfig(epochs=50, lr=0.05)}  # sgd: the converged recipe


def planted_rows(seed: int, planted: int) -> tuple[CachedRows, np.ndarray, set[tuple[int, int]]]:
    """Train and val rows as the audit reads them, train's labels with `planted` missing and `planted` extra pairs;
    the true label sets and the planted (row, label) pairs."""
    features, truth = make_data(seed, TRAIN)
    val_features, val_truth = make_data(seed, VAL)  # the seed's directions, other rows
    given = truth.copy()
    rng = np.random.default_rng([seed, planted])
    positives, negatives = np.argwhere(truth == 1), np.argwhere(truth == 0)
    cleared = positives[rng.choice(len(positives), planted, replace=False)]
    added = negatives[rng.choice(len(negatives), planted, replace=False)]
    given[cleared[:, 0], cleared[:, 1]] = 0
    given[added[:, 0], added[:, 1]] = 1
    sets = np.concatenate([given, val_truth]).astype(np.uint8)
    rows = CachedRows(
        features=np.concatenate([features, val_features]),
        labels=np.where(sets.any(1), sets.argmax(1), -1).astype(np.int64),
        split=np.array(["train"] * TRAIN + ["val"] * VAL),
        paths=[f"row{row}" for row in range(TRAIN + VAL)],
        sha256=[f"{row:064x}" for row in range(TRAIN + VAL)],
        classes=[f"label{k}" for k in range(LABELS)],
        data_root=Path("."),
        header=None,  # type: ignore[arg-type]  # not read by the steps measured
        label_sets=sets,
    )
    return rows, truth, {(int(r), int(k)) for r, k in (*cleared, *added)}


def _recall(pairs: list[tuple[int, int]], planted: set[tuple[int, int]], given: np.ndarray) -> dict:
    top = pairs[: 2 * len(planted)]
    found = planted.intersection(top)
    missing = {pair for pair in planted if given[pair] == 0}
    return {
        "recall": round(len(found) / len(planted), 4),
        "recall_missing": round(len(found & missing) / max(len(missing), 1), 4),
        "recall_extra": round(len(found - missing) / max(len(planted - missing), 1), 4),
    }


def one_seed(seed: int, planted: int) -> dict:
    """Every head and ranking's recall for one seed."""
    rows, _, planted_pairs = planted_rows(seed, planted)
    assert rows.label_sets is not None
    train, given = rows.where("train"), rows.label_sets
    figures: dict = {"seed": seed}
    for name, head in HEADS.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            probabilities = label_probabilities(rows, AuditConfig(train=head))
        for score in ("self_confidence", "normalized_margin"):
            issues = find_label_set_issues(probabilities, given, train, score)
            pairs = [(int(r), int(k)) for r, k in zip(issues.rows, issues.labels)]
            figures[f"{name}/{score}"] = {"flagged": len(pairs), **_recall(pairs, planted_pairs, given)}
        own = np.where(given == 1, probabilities, 1 - probabilities)  # p(the value given), every row as the audit
        order = np.argsort(own, axis=None, kind="stable")
        every = [(int(r), int(k)) for r, k in zip(*np.unravel_index(order, own.shape))]
        figures[f"{name}/no_thresholds"] = {"flagged": len(every), **_recall(every, planted_pairs, given)}
    return figures


def measure(seeds: int, planted: int) -> dict:
    results = [one_seed(seed, planted) for seed in range(seeds)]
    keys = [key for key in results[0] if key != "seed"]
    mean = {
        key: {field: round(float(np.mean([entry[key][field] for entry in results])), 4) for field in results[0][key]}
        for key in keys
    }
    return {
        "bench": "multilabel_audit",
        "data": {"labels": LABELS, "train": TRAIN, "val": VAL, "planted_missing": planted, "planted_extra": planted},
        "note": "generated features (bench.multilabel's), not images; CPU",
        "mean": mean,
        "seeds": results,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--planted", type=int, default=20, help="missing labels planted, and as many extra ones")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "multilabel_audit.json")
    args = parser.parse_args(argv)
    figures = measure_and_save("hs-mlaudit-", args.out, lambda _: measure(args.seeds, args.planted))
    for key, values in figures["mean"].items():
        print(key, values)
    return figures


if __name__ == "__main__":
    main()
