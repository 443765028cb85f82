"""Stratified k-fold splits of the cached train rows, and out-of-fold scores: no row is scored by a head that saw it.

Calibration (a temperature), unknown-image thresholds, label-issue ranking and the sweep all need scores
for the train rows that do not come from a head fitted on those rows; they share these splits so that
"the same recipe and seed" means the same folds everywhere.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch


def stratified_folds(labels: np.ndarray, folds: int, seed: int = 0) -> list[np.ndarray]:
    """`folds` disjoint index arrays covering every row; each class is dealt round-robin after a seeded shuffle.

    Every fold gets floor or ceil of each class's share, as scikit-learn's StratifiedKFold does, without
    importing scikit-learn (and scipy) on train-head's path.
    """
    labels = np.asarray(labels)
    if folds < 2:
        raise ValueError(f"--folds must be at least 2, not {folds}")
    if len(labels) < folds:
        raise ValueError(f"{len(labels)} training rows cannot be split into {folds} folds: use fewer folds")
    rng = np.random.default_rng(seed)
    assigned = np.empty(len(labels), dtype=np.int64)
    offset = 0
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        # Continue the round-robin where the previous class stopped, so fold sizes stay balanced overall.
        assigned[members] = (np.arange(len(members)) + offset) % folds
        offset = (offset + len(members)) % folds
    return [np.flatnonzero(assigned == fold) for fold in range(folds)]


def check_folds(labels: np.ndarray, folds: int, classes: list[str]) -> None:
    """Refuse more folds than the smallest class (among those with train rows) has rows: each fold must hold
    every class, or a held-out fold scores classes its head never saw."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(classes))
    present = np.flatnonzero(counts)
    if len(present) == 0:
        raise ValueError("there are no training rows to split into folds: run `extract` on a train split first")
    smallest = present[np.argmin(counts[present])]
    if folds > counts[smallest]:
        raise ValueError(
            f"--folds {folds} is more than the {counts[smallest]} train rows of class {classes[smallest]!r}, "
            f"the smallest: use --folds {counts[smallest]} or fewer"
            if counts[smallest] >= 2
            else f"class {classes[smallest]!r} has 1 train row, too few to cross-validate: add images to it"
        )


def out_of_fold(
    features: torch.Tensor,
    labels: torch.Tensor,
    folds: list[np.ndarray],
    fit_and_score: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """Scores (N, ...) for every row, each from `fit_and_score(train_x, train_y, held_out_x)` on the other folds."""
    scores = None
    for held_out in folds:
        keep = np.ones(len(labels), dtype=bool)
        keep[held_out] = False
        index = torch.from_numpy(np.flatnonzero(keep))
        held = torch.from_numpy(held_out)
        fold_scores = fit_and_score(features[index], labels[index], features[held])
        if scores is None:
            scores = fold_scores.new_empty((len(labels), *fold_scores.shape[1:]))
        scores[held] = fold_scores
    if scores is None:
        raise ValueError("out_of_fold needs at least one fold")
    return scores
