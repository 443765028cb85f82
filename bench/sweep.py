"""Heads per second of a cross-validated sweep, stacked against one at a time, and class weighting on imbalanced data.

    python -m bench.sweep [--data DIR] [--weights none] [--out bench/results/sweep.json]

On the dataset's cached train features (extracted once here, into a temporary cache, and timed: the
"one extract" the sweep is compared with): 100 SGD settings x 5 folds x 5 epochs (batch 32) trained by
the sweep's stacked trainer, then the same 500 heads one at a time with train_sgd's own loop, in the
same run, both scored on the same held-out folds; and the whole sweep step with the default grid (refit,
val and files included). Then generated features, one class 5x the other:
macro recall of the tutorial's head with and without --class-weight balanced.
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench import measure_and_save
from headstart.features import ExtractConfig, FeatureStore, extract_features
from headstart.features.files.cachedir import FEATURES_FILE
from headstart.heads import TrainConfig, train_sgd
from headstart.heads.config import SweepConfig
from headstart.heads.kfold import out_of_fold, stratified_folds
from headstart.heads.sweep import cross_validate, sweep_heads

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = ROOT.parent / "shared" / "data" / "hymenoptera_data"
FOLDS = 5


def bench_grid() -> list[TrainConfig]:
    """100 SGD settings at the tutorial's 5 epochs and batch 32: 5 lr x 5 momentum x 2 weight decay x 2 weighting."""
    return [
        TrainConfig(lr=lr, momentum=momentum, weight_decay=decay, class_weight=weighting)
        for lr, momentum, decay, weighting in itertools.product(
            [0.0003, 0.001, 0.003, 0.01, 0.03], [0.0, 0.5, 0.8, 0.9, 0.95], [0.0, 0.001], ["none", "balanced"]
        )
    ]


def one_at_a_time(
    features: torch.Tensor, labels: torch.Tensor, classes: int, settings: list[TrainConfig], splits: list[np.ndarray]
) -> tuple[torch.Tensor, float]:
    """Out-of-fold argmax labels (N, settings) from one train_sgd call per setting and fold, and its seconds."""

    def fit_and_score(train_x, train_y, held_x):
        labels_out = []
        for setting in settings:
            head = train_sgd((train_x, train_y), None, classes, setting).head
            with torch.no_grad():
                labels_out.append(head(held_x).argmax(1))
        return torch.stack(labels_out, 1)

    started = time.perf_counter()
    predicted = out_of_fold(features, labels, splits, fit_and_score)
    return predicted, time.perf_counter() - started


def imbalanced(majority: int, minority: int, seed: int, dim: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-negative features like a ResNet's, class 1 shifted on 16 dimensions; `majority` rows of class 0."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.cat([torch.zeros(majority, dtype=torch.long), torch.ones(minority, dtype=torch.long)])
    features = torch.randn(len(labels), dim, generator=generator)
    features[:, :16] += labels.unsqueeze(1)
    return features.relu_(), labels


def class_recalls(config: TrainConfig) -> list[float]:
    """Per-class recall on held-out generated rows (500 : 100, as the training rows) of the head trained with config."""
    head = train_sgd(imbalanced(500, 100, 0), None, 2, config).head
    features, labels = imbalanced(500, 100, 1)
    with torch.no_grad():
        predicted = head(features).argmax(1)
    return [((predicted == c) & (labels == c)).sum().item() / (labels == c).sum().item() for c in (0, 1)]


def run(data: Path = REAL_DATA, weights: str = "none", work: Path | None = None) -> dict:
    """Every figure of this benchmark, measured in one run."""
    work = Path(work or tempfile.mkdtemp(prefix="headstart-bench-sweep-"))
    cache = work / "cache"
    started = time.perf_counter()
    extract_features(ExtractConfig(data=data, cache=cache, weights=weights))
    extract_seconds = time.perf_counter() - started
    with FeatureStore(cache / FEATURES_FILE) as store:
        rows = store.read("train")
        classes = len(store.header.classes)
    features, labels = torch.from_numpy(rows.features), torch.from_numpy(rows.labels)
    settings = bench_grid()
    cross_validate(features, labels, classes, settings[:2], FOLDS)  # first-call costs paid before timing
    swept = cross_validate(features, labels, classes, settings, FOLDS)
    splits = stratified_folds(labels.numpy(), FOLDS, swept.seed)  # the sweep's own folds
    predicted, single_seconds = one_at_a_time(features, labels, classes, settings, splits)
    correct = (predicted == labels.unsqueeze(1)).double()
    single_fold_acc = torch.stack([correct[split].mean(0) for split in splits], 1).tolist()  # as the runner does
    heads = len(settings) * FOLDS
    started = time.perf_counter()  # the whole `headstart sweep`: default grid, refit, val, files written
    step = sweep_heads(cache, SweepConfig(folds=FOLDS))
    step_seconds = time.perf_counter() - started
    unweighted, balanced = class_recalls(TrainConfig()), class_recalls(TrainConfig(class_weight="balanced"))
    return {
        "data": str(data),
        "weights": weights,
        "train_rows": len(labels),
        "classes": classes,
        "settings": len(settings),
        "folds": FOLDS,
        "epochs": 5,
        "batch_size": 32,
        "heads": heads,
        "extract_seconds": extract_seconds,
        "sweep_seconds": swept.seconds,
        "sweep_heads_per_second": heads / swept.seconds,
        "one_at_a_time_seconds": single_seconds,
        "one_at_a_time_heads_per_second": heads / single_seconds,
        "speedup_vs_one_at_a_time": single_seconds / swept.seconds,
        "sweep_seconds_over_extract_seconds": swept.seconds / extract_seconds,
        # Stacked heads equal train_sgd's bit for bit, so every fold's held-out accuracy is the same.
        "settings_with_other_fold_accuracies": sum(
            list(s.fold_acc) != a for s, a in zip(swept.scores, single_fold_acc)
        ),
        "sweep_step_seconds": step_seconds,
        "sweep_step_settings": len(step.cross_validation.scores),
        "sweep_step_head_seconds": step.cross_validation.head_seconds,
        "sweep_step_over_extract_seconds": step_seconds / extract_seconds,
        "winner": {
            **swept.winner.setting.to_dict(),
            "acc_mean": swept.winner.acc_mean,
            "acc_std": swept.winner.acc_std,
        },
        "imbalanced": {
            "train_rows": {"class 0": 500, "class 1": 100},
            "test_rows": {"class 0": 500, "class 1": 100},
            "recall_none": unweighted,
            "macro_recall_none": float(np.mean(unweighted)),
            "recall_balanced": balanced,
            "macro_recall_balanced": float(np.mean(balanced)),
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REAL_DATA)
    parser.add_argument("--weights", default="none")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "sweep.json")
    args = parser.parse_args(argv)
    results = measure_and_save("headstart-bench-sweep-", args.out, lambda work: run(args.data, args.weights, work))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
