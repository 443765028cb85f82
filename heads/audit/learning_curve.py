"""Clean or collect? Val accuracy when the head is trained on 1, 2, 5, 10, 20, 50 ... images per class.

A class whose accuracy still rises between the last two points (its largest subset and all its images) by more
than the spread over seeds and at least one point of accuracy is still improving: more images should help it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from headstart.heads.audit.probabilities import fit_and_predict
from headstart.heads.config import TrainConfig
from headstart.heads.curves import png_bytes, pyplot

MIN_GAIN = 0.01


@dataclass
class LearningCurve:
    """Val accuracy per (size, seed), overall and per class."""

    sizes: list[int]  # images per class (a class with fewer uses all it has)
    seeds: int
    accuracy: np.ndarray  # (sizes, seeds), all val rows
    per_class: np.ndarray  # (sizes, seeds, C), val accuracy of each class's rows (nan: no val rows)
    class_images: np.ndarray  # (C,) train images per class

    def still_improving(self, classes: list[str]) -> list[str]:
        """Classes whose val accuracy still rises from their largest subset to all their images."""
        mean, std = np.nanmean(self.per_class, axis=1), np.nanstd(self.per_class, axis=1)
        improving = []
        for k, name in enumerate(classes):
            smaller = [i for i, size in enumerate(self.sizes) if size < self.class_images[k]]
            if not smaller or np.isnan(mean[-1, k]):
                continue
            before = smaller[-1]
            gain = mean[-1, k] - mean[before, k]
            if gain >= MIN_GAIN and gain > max(std[-1, k], std[before, k]):
                improving.append(name)
        return improving

    def to_dict(self, classes: list[str], head: str) -> dict:
        """audit.json's learning_curve record: means and spreads as lists (null: a class without val rows)."""

        def _listed(values: np.ndarray) -> list:
            return [None if np.isnan(v) else round(float(v), 6) for v in values]

        per_class = {
            name: {
                "mean": _listed(np.nanmean(self.per_class[:, :, k], axis=1)),
                "std": _listed(np.nanstd(self.per_class[:, :, k], axis=1)),
                "images": int(self.class_images[k]),
            }
            for k, name in enumerate(classes)
        }
        return {
            "sizes": self.sizes,
            "seeds": self.seeds,
            "head": head,
            "accuracy": {"mean": _listed(self.accuracy.mean(axis=1)), "std": _listed(self.accuracy.std(axis=1))},
            "per_class": per_class,
            "still_improving": self.still_improving(classes),
        }


def curve_sizes(largest: int) -> list[int]:
    """1, 2, 5, 10, 20, 50, ... below the largest class's count, then that count (every image)."""
    sizes: list[int] = []
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= largest:
                return sizes + [largest]
            sizes.append(step * factor)
        step *= 10


def _same_updates(config: TrainConfig, full_rows: int, subset_rows: int) -> TrainConfig:
    """SGD on a subset runs as many steps as on all rows: fewer images, not less training, is what the curve shows."""
    if config.head != "sgd":
        return config
    batches = lambda rows: math.ceil(rows / config.batch_size)  # noqa: E731
    return replace(config, epochs=math.ceil(config.epochs * batches(full_rows) / batches(subset_rows)))


def learning_curve(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    num_classes: int,
    config: TrainConfig,
    seeds: int = 5,
    on_progress: Callable[[int, int], None] | None = None,
) -> LearningCurve:
    """Fit a head per (size, seed) on a seeded per-class subset of train; score each on all of val."""
    class_images = np.bincount(train_y, minlength=num_classes)
    sizes = curve_sizes(int(class_images.max()))
    members = [np.flatnonzero(train_y == k) for k in range(num_classes)]
    accuracy = np.zeros((len(sizes), seeds))
    per_class = np.full((len(sizes), seeds, num_classes), np.nan)
    val_tensor = torch.from_numpy(val_x)
    done, total = 0, len(sizes) * seeds
    for i, size in enumerate(sizes):
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            subset = np.sort(np.concatenate([rng.permutation(rows)[:size] for rows in members]))
            predicted = (
                fit_and_predict(
                    torch.from_numpy(train_x[subset]),
                    torch.from_numpy(train_y[subset]),
                    val_tensor,
                    num_classes,
                    _same_updates(replace(config, seed=seed), len(train_y), len(subset)),
                )
                .argmax(1)
                .numpy()
            )
            correct = predicted == val_y
            accuracy[i, seed] = correct.mean()
            for k in range(num_classes):
                if np.any(val_y == k):
                    per_class[i, seed, k] = correct[val_y == k].mean()
            done += 1
            if on_progress:
                on_progress(done, total)
    return LearningCurve(sizes, seeds, accuracy, per_class, class_images)


def plot_learning_curve(curve: LearningCurve, classes: list[str], path: str | os.PathLike) -> None:
    """Accuracy against images per class (log scale): all val rows and each class, mean and +-1 std over seeds."""
    plt = pyplot()

    figure, axis = plt.subplots(figsize=(8, 4.5), dpi=100)
    series = [("all classes", curve.accuracy, dict(color="black", linewidth=2.5))]
    series += [(name, curve.per_class[:, :, k], dict(linewidth=1.2, alpha=0.85)) for k, name in enumerate(classes)]
    for name, values, style in series[:11]:  # beyond ten classes the lines are unreadable; audit.json has them all
        mean, std = np.nanmean(values, axis=1), np.nanstd(values, axis=1)
        (line,) = axis.plot(curve.sizes, mean, "o-", label=name, markersize=3, **style)
        axis.fill_between(curve.sizes, mean - std, mean + std, color=line.get_color(), alpha=0.12)
    axis.set_xscale("log")
    axis.set_xticks(curve.sizes, [str(size) for size in curve.sizes])
    axis.set_xlabel("training images per class (last point: all)")
    axis.set_ylabel("val accuracy")
    axis.set_ylim(-0.02, 1.02)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="lower right")
    figure.subplots_adjust(left=0.09, right=0.98, bottom=0.13, top=0.95)
    Path(path).write_bytes(png_bytes(figure))  # to the caller's temporary path: the audit's files are replaced together
