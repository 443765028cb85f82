"""Class probabilities from a head fitted with train-head's recipe: the one model every audit step scores with."""

from __future__ import annotations

import numpy as np
import torch

from headstart.heads.config import TrainConfig
from headstart.heads.kfold import out_of_fold, stratified_folds
from headstart.heads.linear import LinearHead


def fit_scoring_head(train_x: torch.Tensor, train_y: torch.Tensor, num_classes: int, config: TrainConfig) -> LinearHead:
    """A head fitted on (train_x, train_y) as train-head would (config.head: sgd or logreg), in eval mode."""
    if config.head == "logreg":
        from threadpoolctl import threadpool_limits

        from headstart.heads.logreg import train_logreg

        # One BLAS thread: for a D x C model a thread pool only adds contention (far slower on a busy machine).
        with threadpool_limits(limits=1):
            head = train_logreg((train_x, train_y), None, num_classes, config).head
    else:
        from headstart.heads.train import train_sgd

        head = train_sgd((train_x, train_y), None, num_classes, config).head
    return head.eval()


def fit_and_predict(
    train_x: torch.Tensor, train_y: torch.Tensor, x: torch.Tensor, num_classes: int, config: TrainConfig
) -> torch.Tensor:
    """Fit a head on (train_x, train_y) as train-head would (config.head: sgd or logreg); softmax over x."""
    head = fit_scoring_head(train_x, train_y, num_classes, config)
    with torch.inference_mode():
        return torch.softmax(head(x), dim=1)


def out_of_fold_probabilities(
    features: np.ndarray, labels: np.ndarray, num_classes: int, config: TrainConfig, folds: int
) -> np.ndarray:
    """(N, C) probabilities, each row from a head that never saw it (heads/folds.py's stratified folds)."""
    counts = np.bincount(labels, minlength=num_classes)
    if counts.min() < folds:
        raise ValueError(
            f"class {int(counts.argmin())} has {int(counts.min())} training images, fewer than the "
            f"{folds} folds: use --folds {max(2, int(counts.min()))} or add images"
        )
    x, y = torch.from_numpy(features), torch.from_numpy(labels)
    return out_of_fold(
        x,
        y,
        stratified_folds(labels, folds, config.seed),
        lambda tx, ty, hx: fit_and_predict(tx, ty, hx, num_classes, config),
    ).numpy()
