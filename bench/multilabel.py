"""Multi-label heads on features with known label sets: the head against one logistic regression per label, and
out-of-fold F1 thresholds against a fixed 0.5.

    python -m bench.multilabel [--seeds 3] [--epochs 5] [--lr 0.001] [--out bench/results/multilabel.json]

The data are generated FEATURES, not images (the ImageNet weights are not available here, and random-init features
carry no planted pattern): LABELS planted directions in DIM dimensions, each with its own prevalence (two labels
rare), so a row carries 0 to several labels; a row's features are noise plus the sum of its labels' directions.
Per seed: TRAIN rows to fit, TEST rows to score. Reported per seed and averaged:
- mAP on test of train-head's multi-label head (heads/multilabel/train.py: Linear(D, C), BCE, its SGD recipe) and
  of one scikit-learn LogisticRegression per label on the same rows;
- micro and macro F1 and subset accuracy on test of the head at its out-of-fold F1 thresholds and at a fixed 0.5.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from headstart.heads.config import TrainConfig
from headstart.heads.multilabel.metrics import multilabel_summary
from headstart.heads.multilabel.train import choose_thresholds, probabilities, train_multilabel

ROOT = Path(__file__).resolve().parents[1]
LABELS, DIM, TRAIN, TEST = 5, 32, 600, 2000
PREVALENCE = (0.4, 0.3, 0.25, 0.06, 0.03)  # labels 3 and 4 are rare
STRENGTH = 2.5  # the planted directions' length against unit noise per dimension: overlapping, so thresholds matter


def make_data(seed: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Features (rows, DIM) and 0/1 label sets (rows, LABELS); the directions are the seed's, the rows drawn apart."""
    directions = np.random.default_rng(seed).standard_normal((LABELS, DIM))
    directions *= STRENGTH / np.linalg.norm(directions, axis=1, keepdims=True)
    rng = np.random.default_rng([seed, rows])
    targets = (rng.random((rows, LABELS)) < np.asarray(PREVALENCE)).astype(np.uint8)
    return (rng.standard_normal((rows, DIM)) + targets @ directions).astype(np.float32), targets


def logistic_per_label(features: np.ndarray, targets: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Test probabilities of one LogisticRegression (C=1) per label."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.stack(
            [
                LogisticRegression(max_iter=2000).fit(features, targets[:, k]).predict_proba(test)[:, 1]
                for k in range(LABELS)
            ],
            axis=1,
        )


def one_seed(seed: int, config: TrainConfig) -> dict:
    """The figures of one seed."""
    features, targets = make_data(seed, TRAIN)
    test_features, test_targets = make_data(seed, TEST)
    train = torch.from_numpy(features), torch.from_numpy(targets.astype(np.float32))
    head = train_multilabel(train, None, config).head
    chosen, _ = choose_thresholds(train, config)
    names = [f"label{k}" for k in range(LABELS)]
    held = probabilities(head, torch.from_numpy(test_features))
    oof = multilabel_summary(test_targets, held, chosen, names)
    fixed = multilabel_summary(test_targets, held, np.full(LABELS, 0.5), names)
    logistic = multilabel_summary(test_targets, logistic_per_label(features, targets, test_features), chosen, names)
    keys = ("micro_f1", "macro_f1", "subset_accuracy", "hamming_loss")
    return {
        "seed": seed,
        "head_map": oof["mAP"],
        "logistic_map": logistic["mAP"],
        "oof_thresholds": {key: oof[key] for key in keys},
        "fixed_0.5": {key: fixed[key] for key in keys},
        "thresholds": [round(float(value), 3) for value in chosen],
        "rare_label_f1": {"oof": oof["labels"]["label4"]["f1-score"], "fixed": fixed["labels"]["label4"]["f1-score"]},
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=TrainConfig().epochs)
    parser.add_argument("--lr", type=float, default=TrainConfig().lr)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "multilabel.json")
    args = parser.parse_args(argv)
    config = TrainConfig(epochs=args.epochs, lr=args.lr)
    seeds = [one_seed(seed, config) for seed in range(args.seeds)]

    def mean(pick) -> float:
        return round(float(np.mean([pick(entry) for entry in seeds])), 4)

    result = {
        "bench": "multilabel",
        "data": {"labels": LABELS, "dim": DIM, "train": TRAIN, "test": TEST, "prevalence": PREVALENCE},
        "config": config.to_dict(),
        "mean": {
            "head_map": mean(lambda entry: entry["head_map"]),
            "logistic_map": mean(lambda entry: entry["logistic_map"]),
            **{
                f"{rule}_{key}": mean(lambda entry, rule=rule, key=key: entry[rule][key])
                for rule in ("oof_thresholds", "fixed_0.5")
                for key in ("micro_f1", "macro_f1", "subset_accuracy")
            },
        },
        "seeds": seeds,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["mean"], indent=2))
    return result


if __name__ == "__main__":
    main()
