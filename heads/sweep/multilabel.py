"""The sweep on multi-label features: every SGD setting of the grid cross-validated by mean average precision.

Each setting's head is heads/multilabel/train.py's (Linear(D, C), binary cross-entropy, train-head's SGD recipe and
seed), trained on the other folds and scored on the held-out fold: its mean average precision (over the labels with a
positive row in that fold, heads/multilabel/metrics.py) and its mean binary cross-entropy. The folds are stratified
as train-head's out-of-fold thresholds are, by each row's lowest label (a row with no label counts as the first).
Settings are trained one at a time (the stacked single-label kernels are softmax's), so a multi-label sweep costs
about its settings x folds single heads. A multi-label head is SGD only: the grid's logreg settings are left out and
counted.

The winner has the highest mean mAP; ties go to the lower mean loss, then to the simpler setting (runner.py's order).
sweep.csv then names its score columns map_* instead of acc_* (heads/sweep/table.py).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch

from headstart.heads.config import TrainConfig
from headstart.heads.kfold import stratified_folds
from headstart.heads.multilabel.metrics import average_precision
from headstart.heads.multilabel.train import train_multilabel
from headstart.heads.sweep.runner import CrossValidation, SettingScores

MAP = "map"  # CrossValidation.metric of a multi-label sweep: fold_acc holds each fold's mAP


def lowest_labels(targets: torch.Tensor) -> np.ndarray:
    """Each row's lowest label (0 for a row with none): what the folds are stratified by."""
    return targets.argmax(1).numpy()


def check_multilabel_folds(targets: torch.Tensor, folds: int) -> None:
    """Refuse more folds than train rows: each fold must hold rows to score."""
    if len(targets) < folds:
        raise ValueError(
            f"--folds {folds} is more than the {len(targets)} train rows: use --folds {max(len(targets), 2)} or "
            "fewer, or add rows"
        )


def sgd_settings(settings: list[TrainConfig]) -> tuple[list[TrainConfig], int]:
    """The grid's SGD settings (a multi-label head's kind) and how many logreg settings were left out."""
    kept = [setting for setting in settings if setting.head == "sgd"]
    if not kept:
        raise ValueError("the grid has no [sgd] settings: a multi-label head is trained by SGD; add an [sgd] section")
    return kept, len(settings) - len(kept)


def _fold_scores(head: torch.nn.Module, features: torch.Tensor, targets: torch.Tensor) -> tuple[float, float]:
    """A head's mAP and mean binary cross-entropy on held-out rows (0 and inf when its outputs are not finite)."""
    with torch.inference_mode():
        logits = head(features)
    if not bool(torch.isfinite(logits).all()):
        return 0.0, math.inf
    loss = float(torch.nn.functional.binary_cross_entropy_with_logits(logits, targets))
    scores, truth = torch.sigmoid(logits).numpy(), targets.numpy()
    precisions = [average_precision(truth[:, label], scores[:, label]) for label in range(truth.shape[1])]
    scored = [value for value in precisions if value is not None]
    return (float(np.mean(scored)) if scored else 0.0), loss


def cross_validate_multilabel(
    features: torch.Tensor,
    targets: torch.Tensor,
    settings: list[TrainConfig],
    folds: int = 5,
    seed: int = 0,
    on_progress: Callable[[int, int], None] | None = None,
) -> CrossValidation:
    """Train every SGD setting on every fold's complement and score it on the fold by mAP; on_progress(done, total)."""
    started = time.perf_counter()
    splits = stratified_folds(lowest_labels(targets), folds, seed)
    total, done = len(settings) * folds, 0
    fold_map = np.zeros((len(settings), folds))
    fold_loss = np.zeros((len(settings), folds))
    for fold, held_out in enumerate(splits):
        keep = np.ones(len(targets), dtype=bool)
        keep[held_out] = False
        index, held = torch.from_numpy(np.flatnonzero(keep)), torch.from_numpy(held_out)
        for number, setting in enumerate(settings):
            head = train_multilabel((features[index], targets[index]), None, setting).head
            fold_map[number, fold], fold_loss[number, fold] = _fold_scores(head, features[held], targets[held])
            done += 1
            if on_progress:
                on_progress(done, total)
    scores = [
        SettingScores(setting, tuple(fold_map[number].tolist()), tuple(fold_loss[number].tolist()))
        for number, setting in enumerate(settings)
    ]
    seconds = time.perf_counter() - started
    return CrossValidation(scores, folds, seed, seconds, {"sgd": seconds}, metric=MAP)
