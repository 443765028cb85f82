"""Which epochs x lr a multi-label head should train by by default: its mAP against one logistic regression per label,
over generated label sets at several feature widths and scales.

    python -m bench.multilabel_recipe [--seeds 2] [--out bench/results/multilabel_recipe.json]

The data are generated FEATURES, not images (the ImageNet weights are not available here, and random-init features
carry no planted pattern): LABELS planted directions, each label with its own prevalence (two rare), a row's features
`scale * (noise + the sum of its labels' directions)`, at each width in WIDTHS and scale in SCALES (512 is the
default backbone's width; a pretrained ResNet18's pooled features have norms of a few tens, scale 1 at 512-d about
22). Per (width, scale, seed): TRAIN rows to fit, TEST rows to score; one head per lr trained for the most epochs in
EPOCHS (train-head's SGD recipe, momentum 0.9, batch 32, seed 0), its test mAP read after each epoch in EPOCHS (the
history of a longer run is the shorter run's, epoch by epoch), against one scikit-learn LogisticRegression (C=1) per
label on the same rows (--per-norm: each lr scaled by 512 / the train rows' mean squared norm, an lr meant for
512-d features at scale 1). Reported: per (epochs, lr), the mean and the worst ratio head mAP / logistic mAP over the
settings, and each setting's figures; a head whose loss is not finite counts as ratio 0.
"""

from __future__ import annotations

import argparse
import math
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from bench import measure_and_save
from headstart.heads.config import TrainConfig
from headstart.heads.multilabel.metrics import average_precision
from headstart.heads.multilabel.train import train_multilabel

ROOT = Path(__file__).resolve().parents[1]
PREVALENCE = (0.4, 0.3, 0.25, 0.06, 0.03)  # as bench/multilabel.py: labels 3 and 4 are rare
STRENGTH = 2.5  # a planted direction's length against unit noise per dimension
TRAIN, TEST = 600, 2000
WIDTHS = (32, 128, 512)
SCALES = (0.2, 1.0, 5.0)
EPOCHS = (5, 10, 30, 50)
LRS = (0.001, 0.01, 0.03, 0.1, 0.3, 1.0)
REFERENCE_NORM2 = 512.0  # --per-norm: an lr is meant for rows of this mean squared norm (512-d at scale 1)


def make_rows(seed: int, rows: int, width: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Features (rows, width) and 0/1 label sets (rows, labels); the directions are the seed's, rows drawn apart."""
    labels = len(PREVALENCE)
    directions = np.random.default_rng([seed, width]).standard_normal((labels, width))
    directions *= STRENGTH / np.linalg.norm(directions, axis=1, keepdims=True)
    rng = np.random.default_rng([seed, width, rows])
    targets = (rng.random((rows, labels)) < np.asarray(PREVALENCE)).astype(np.uint8)
    features = scale * (rng.standard_normal((rows, width)) + targets @ directions)
    return features.astype(np.float32), targets


def _map(targets: np.ndarray, scores: np.ndarray) -> float:
    precisions = [average_precision(targets[:, k], scores[:, k]) for k in range(targets.shape[1])]
    return float(np.mean([value for value in precisions if value is not None]))


def logistic_map(train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]) -> float:
    """Test mAP of one LogisticRegression (C=1) per label."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = [
            LogisticRegression(max_iter=5000).fit(train[0], train[1][:, k]).decision_function(test[0])
            for k in range(train[1].shape[1])
        ]
    return _map(test[1], np.stack(scores, axis=1))


def head_maps(
    train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], lr: float, per_norm: bool = False
) -> list[float]:
    """The test mAP after each epoch in EPOCHS of one head trained at `lr` (nan where its loss is not finite); with
    per_norm, at lr * REFERENCE_NORM2 / the train rows' mean squared norm."""
    if per_norm:
        lr = lr * REFERENCE_NORM2 / float(np.mean(np.sum(train[0].astype(np.float64) ** 2, axis=1)))
    rows = (torch.from_numpy(train[0]), torch.from_numpy(train[1].astype(np.float32)))
    held = (torch.from_numpy(test[0]), torch.from_numpy(test[1].astype(np.float32)))
    history = train_multilabel(rows, held, TrainConfig(epochs=max(EPOCHS), lr=lr)).history
    return [
        history[epochs - 1]["val_map"] if math.isfinite(history[epochs - 1]["val_loss"]) else math.nan
        for epochs in EPOCHS
    ]


def run(seeds: int, per_norm: bool = False, on_line=print) -> dict:
    """Every setting's figures and the summary per (epochs, lr)."""
    settings = []
    for width in WIDTHS:
        for scale in SCALES:
            for seed in range(seeds):
                train, test = make_rows(seed, TRAIN, width, scale), make_rows(seed, TEST, width, scale)
                reference = logistic_map(train, test)
                maps = {str(lr): head_maps(train, test, lr, per_norm) for lr in LRS}
                settings.append({"width": width, "scale": scale, "seed": seed, "logistic_map": reference, "head": maps})
                on_line(f"width {width} scale {scale} seed {seed}: logistic mAP {reference:.3f}")
    summary = {}
    for index, epochs in enumerate(EPOCHS):
        for lr in LRS:
            maps = [(entry["head"][str(lr)][index], entry["logistic_map"]) for entry in settings]
            ratios = [0.0 if math.isnan(head) else head / reference for head, reference in maps]
            summary[f"{epochs} epochs, lr {lr}"] = {"mean_ratio": float(np.mean(ratios)), "worst_ratio": min(ratios)}
    return {
        "bench": "multilabel_recipe",
        "data": {"prevalence": PREVALENCE, "train": TRAIN, "test": TEST, "widths": WIDTHS, "scales": SCALES},
        "grid": {"epochs": EPOCHS, "lrs": LRS, "per_norm": per_norm, "reference_norm2": REFERENCE_NORM2},
        "seeds": seeds,
        "summary": summary,
        "settings": settings,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench.multilabel_recipe", description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--per-norm", action="store_true", help="scale each lr by 512 / the rows' mean squared norm")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "multilabel_recipe.json")
    args = parser.parse_args(argv)
    figures = measure_and_save("headstart-multilabel-recipe-", args.out, lambda work: run(args.seeds, args.per_norm))
    for name, entry in figures["summary"].items():
        print(f"{name}: head / logistic mAP mean {entry['mean_ratio']:.3f}, worst {entry['worst_ratio']:.3f}")
    print(f"written to {args.out}")
    return figures


if __name__ == "__main__":
    main()
