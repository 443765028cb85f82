"""Train a multi-label head: Linear(D, C) with binary cross-entropy on logits, by train-head's SGD recipe and seed;
per-label thresholds from out-of-fold probabilities over train.

The recipe is train_sgd's: the same LinearHead initialisation from the seed, the same shuffled batches, the same
momentum SGD; only the loss differs (one sigmoid per label; `--class-weight balanced` weighs each label's positives by
its negatives / positives, BCEWithLogitsLoss's pos_weight).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from headstart.heads.config import TrainConfig
from headstart.heads.kfold import out_of_fold, stratified_folds
from headstart.heads.linear import LinearHead
from headstart.heads.multilabel.metrics import average_precision, best_thresholds
from headstart.heads.sgd import MomentumSGD
from headstart.heads.train import TrainResult, _one_thread

THRESHOLD_FOLDS = 5
Rows = tuple[torch.Tensor, torch.Tensor]  # features (N, D) float32, targets (N, C) float32 0/1


def positive_weights(targets: torch.Tensor, kind: str) -> torch.Tensor | None:
    """None for "none"; for "balanced", each label's negatives / positives (1 for a label without positives)."""
    if kind == "none":
        return None
    if kind != "balanced":
        raise ValueError(f"class weighting must be none or balanced, not {kind!r}")
    positives = targets.sum(0)
    return torch.where(positives > 0, (len(targets) - positives) / positives.clamp(min=1), 1.0).to(torch.float32)


def _scores(head: nn.Module, features: torch.Tensor, targets: torch.Tensor) -> dict:
    """Mean BCE, label-wise accuracy at 0.5 and mAP of rows, without gradients."""
    head.eval()
    with torch.inference_mode():
        logits = head(features)
        loss = nn.functional.binary_cross_entropy_with_logits(logits, targets)
    probabilities, truth = torch.sigmoid(logits).numpy(), targets.numpy()
    precisions = [average_precision(truth[:, label], probabilities[:, label]) for label in range(truth.shape[1])]
    scored = [value for value in precisions if value is not None]
    return {
        "loss": float(loss),
        "acc": float(((logits > 0) == (targets > 0.5)).float().mean()),
        "map": float(np.mean(scored)) if scored else 0.0,
    }


def _epoch(head: nn.Module, loader: DataLoader, optimizer: MomentumSGD, criterion: nn.Module) -> float:
    """One pass over shuffled batches; the mean loss over rows."""
    head.train()
    total, seen = 0.0, 0
    for features, targets in loader:
        optimizer.zero_grad()
        loss = criterion(head(features), targets)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(targets)
        seen += len(targets)
    return total / seen


def train_multilabel(
    train: Rows,
    val: Rows | None,
    config: TrainConfig = TrainConfig(),
    on_epoch: Callable[[int, dict], None] | None = None,
) -> TrainResult:
    """Fit LinearHead(D, C) with BCE on (features, 0/1 targets); each epoch's record: train_loss, train_acc (label-wise
    accuracy at 0.5), train_map and the same on val."""
    if config.head != "sgd":
        raise ValueError(f"--head {config.head} trains single-label heads only: a multi-label head uses --head sgd")
    features, targets = train
    generator = torch.Generator().manual_seed(config.seed)
    head = LinearHead(features.shape[1], targets.shape[1], generator=generator)
    optimizer = MomentumSGD(head.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    criterion = nn.BCEWithLogitsLoss(pos_weight=positive_weights(targets, config.class_weight))
    loader = DataLoader(
        TensorDataset(features, targets), batch_size=config.batch_size, shuffle=True, generator=generator
    )
    result = TrainResult(head)
    with _one_thread():
        for epoch in range(1, config.epochs + 1):
            _epoch(head, loader, optimizer, criterion)
            metrics = {"epoch": epoch, **{f"train_{k}": v for k, v in _scores(head, features, targets).items()}}
            if val is not None:
                metrics |= {f"val_{key}": value for key, value in _scores(head, *val).items()}
            result.history.append(metrics)
            if on_epoch:
                on_epoch(epoch, metrics)
    return result


def logits(head: nn.Module, features: torch.Tensor) -> np.ndarray:
    """The head's logits (N, C)."""
    head.eval()
    with torch.inference_mode():
        return head(features).numpy()


def probabilities(head: nn.Module, features: torch.Tensor) -> np.ndarray:
    """Sigmoid probabilities (N, C)."""
    head.eval()
    with torch.inference_mode():
        return torch.sigmoid(head(features)).numpy()


def out_of_fold_logits(train: Rows, config: TrainConfig, folds: int = THRESHOLD_FOLDS) -> np.ndarray:
    """Every train row's logits from a head fitted by the same recipe on the other folds (folds stratified by each
    row's lowest label; each fold's head takes as many SGD steps per epoch as the full head does)."""
    features, targets = train
    batches = math.ceil(len(targets) / config.batch_size)

    def fit_and_score(x: torch.Tensor, y: torch.Tensor, held: torch.Tensor) -> torch.Tensor:
        fold_config = replace(config, batch_size=math.ceil(len(y) / batches))
        return torch.from_numpy(logits(train_multilabel((x, y), None, fold_config).head, held))

    lowest = targets.argmax(1).numpy()
    return out_of_fold(features, targets, stratified_folds(lowest, folds, config.seed), fit_and_score).numpy()


def out_of_fold_probabilities(train: Rows, config: TrainConfig, folds: int = THRESHOLD_FOLDS) -> np.ndarray:
    """Every train row's sigmoid probabilities from out_of_fold_logits."""
    return np.exp(-np.logaddexp(0, -out_of_fold_logits(train, config, folds).astype(np.float64)))


def enough_rows(train: Rows) -> bool:
    """Whether train has the rows out-of-fold thresholds and calibration need."""
    return len(train[1]) >= 2 * THRESHOLD_FOLDS


def choose_thresholds(
    train: Rows, config: TrainConfig, held_out: np.ndarray | None = None, calibrated: bool = False
) -> tuple[np.ndarray, str]:
    """Per-label thresholds and how they were chosen: `--threshold X` for all, else the best F1 over out-of-fold
    probabilities (`held_out` when given, `calibrated` or not; 0.5 when train has fewer rows than that needs)."""
    count = train[1].shape[1]
    if config.threshold is not None:
        return np.full(count, config.threshold), "fixed"
    if not enough_rows(train):
        return np.full(count, 0.5), "fixed: too few train rows for out-of-fold thresholds"
    oof = out_of_fold_probabilities(train, config) if held_out is None else held_out
    chosen = np.clip(best_thresholds(train[1].numpy(), oof), 1e-6, 1 - 1e-6)  # a head file holds thresholds in (0, 1)
    return chosen, f"best F1 on {THRESHOLD_FOLDS}-fold out-of-fold {'calibrated ' if calibrated else ''}probabilities"
