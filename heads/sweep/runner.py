"""k-fold cross-validation of every setting of a grid over the train rows, and the choice of one by its mean scores.

Each fold's heads are trained on the other folds (heads/folds.py's stratified splits and out-of-fold scoring):
the SGD settings that share seed, batch size and epochs as one stacked computation (stacked.py), each logreg
setting alone. A setting's score is its accuracy and log-loss (mean cross-entropy) on each held-out fold,
reported as mean and standard deviation over the folds (population std, as numpy.std). A head whose
outputs are not finite (a learning rate too large) counts as wrong with infinite loss on those rows.

The winner has the highest mean accuracy; ties go to the lower mean log-loss, then to the simpler setting:
no class weighting before balanced, the SGD head before logreg, then fewer epochs, less weight decay, less
momentum, larger batches, a smaller learning rate, a smaller C (more regularised), then grid order.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from headstart.heads.config import TrainConfig
from headstart.heads.kfold import out_of_fold, stratified_folds
from headstart.heads.logreg import train_logreg
from headstart.heads.sweep.stacked import group_key, train_stacked


@dataclass(frozen=True)
class SettingScores:
    """One setting's held-out accuracy and log-loss on each fold."""

    setting: TrainConfig
    fold_acc: tuple[float, ...]
    fold_loss: tuple[float, ...]

    @property
    def acc_mean(self) -> float:
        return float(np.mean(self.fold_acc))

    @property
    def acc_std(self) -> float:
        return float(np.std(self.fold_acc))

    @property
    def loss_mean(self) -> float:
        return float(np.mean(self.fold_loss))

    @property
    def loss_std(self) -> float:
        return float(np.std(self.fold_loss)) if math.isfinite(self.loss_mean) else math.inf


@dataclass(frozen=True)
class CrossValidation:
    """Every setting's scores, in grid order, and how they were obtained."""

    scores: list[SettingScores]
    folds: int
    seed: int
    seconds: float
    head_seconds: dict[str, float]  # time spent training and scoring each kind of head ("sgd", "logreg")
    metric: str = "acc"  # what fold_acc holds: accuracy, or "map" (a multi-label sweep, heads/sweep/multilabel.py)

    @property
    def heads(self) -> int:
        return len(self.scores) * self.folds

    def ranked(self) -> list[SettingScores]:
        """Best first: the order the winner is chosen in."""
        order = sorted(range(len(self.scores)), key=lambda index: (_rank_key(self.scores[index]), index))
        return [self.scores[index] for index in order]

    @property
    def winner(self) -> SettingScores:
        return self.ranked()[0]


def _simplicity(setting: TrainConfig) -> tuple:
    return (
        setting.class_weight != "none",
        setting.head != "sgd",
        setting.epochs,
        setting.weight_decay,
        setting.momentum,
        -setting.batch_size,
        setting.lr,
        setting.c,
    )


def _rank_key(scores: SettingScores) -> tuple:
    # Rounded so that equal fold results summed in another order still tie.
    return -round(scores.acc_mean, 12), round(scores.loss_mean, 12), _simplicity(scores.setting)


def _groups(settings: list[TrainConfig]) -> list[list[int]]:
    """Indices of the settings trained together: SGD ones by group_key, each logreg one alone."""
    stacked: dict[tuple, list[int]] = {}
    alone = []
    for index, setting in enumerate(settings):
        if setting.head == "sgd":
            stacked.setdefault(group_key(setting), []).append(index)
        else:
            alone.append([index])
    return [*stacked.values(), *alone]


def _held_out_logits(
    train: tuple[torch.Tensor, torch.Tensor], held_x: torch.Tensor, num_classes: int, members: list[TrainConfig]
) -> torch.Tensor:
    """(held rows, members, C): the outputs on the held-out rows of the heads trained on `train`, one per member."""
    if members[0].head == "sgd":
        weight, bias = train_stacked(*train, num_classes, members)
        # One addmm per head, as each head alone computes its outputs: the same logits to the last bit.
        return torch.baddbmm(
            bias.unsqueeze(1), held_x.expand(len(members), *held_x.shape), weight.transpose(1, 2)
        ).transpose(0, 1)
    head = train_logreg(train, None, num_classes, members[0]).head
    with torch.no_grad():
        return head(held_x).unsqueeze(1)


def _fold_scores(logits: torch.Tensor, labels: torch.Tensor, splits: list) -> tuple[torch.Tensor, torch.Tensor]:
    """Accuracy and mean cross-entropy (settings, folds) of out-of-fold logits (N, settings, C)."""
    finite = torch.isfinite(logits).all(2)
    correct = (logits.argmax(2) == labels.unsqueeze(1)) & finite
    picked = torch.log_softmax(logits, 2).gather(2, labels.view(-1, 1, 1).expand(-1, logits.shape[1], 1)).squeeze(2)
    loss = torch.where(finite, -picked.double(), math.inf)
    return (
        torch.stack([correct[split].double().mean(0) for split in splits], 1),
        torch.stack([loss[split].mean(0) for split in splits], 1),
    )


def cross_validate(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    settings: list[TrainConfig],
    folds: int = 5,
    seed: int = 0,
    on_progress: Callable[[int, int], None] | None = None,
) -> CrossValidation:
    """Train every setting on every fold's complement and score it on the fold; on_progress(heads done, total)."""
    if not settings:
        raise ValueError("the grid has no settings")
    started = time.perf_counter()
    splits = stratified_folds(labels.numpy(), folds, seed)
    groups, total, done = _groups(settings), len(settings) * folds, 0
    head_seconds = dict.fromkeys(sorted({setting.head for setting in settings}), 0.0)

    def fit_and_score(train_x: torch.Tensor, train_y: torch.Tensor, held_x: torch.Tensor) -> torch.Tensor:
        nonlocal done
        logits = held_x.new_empty(len(held_x), len(settings), num_classes)
        for indices in groups:
            members = [settings[index] for index in indices]
            group_started = time.perf_counter()
            logits[:, indices] = _held_out_logits((train_x, train_y), held_x, num_classes, members)
            head_seconds[members[0].head] += time.perf_counter() - group_started
            done += len(indices)
            if on_progress:
                on_progress(done, total)
        return logits

    fold_acc, fold_loss = _fold_scores(out_of_fold(features, labels, splits, fit_and_score), labels, splits)
    scores = [
        SettingScores(setting, tuple(fold_acc[index].tolist()), tuple(fold_loss[index].tolist()))
        for index, setting in enumerate(settings)
    ]
    return CrossValidation(scores, folds, seed, time.perf_counter() - started, head_seconds)
