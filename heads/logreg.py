"""A second head to compare against: scikit-learn's LogisticRegression on the same cached features."""

from __future__ import annotations

import numpy as np
import torch

from headstart.heads.config import TrainConfig
from headstart.heads.linear import LinearHead
from headstart.heads.train import TrainResult, epoch_metrics, evaluate


def _as_linear_head(coef: np.ndarray, intercept: np.ndarray, num_classes: int) -> LinearHead:
    """The same probabilities as predict_proba: a binary model's sigmoid(z) is softmax([0, z])[1]."""
    head = LinearHead(coef.shape[1], num_classes)
    if coef.shape[0] == 1:
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.concatenate([np.zeros_like(intercept), intercept])
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(coef))
        head.bias.copy_(torch.from_numpy(intercept))
    return head.eval()


def train_logreg(
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor] | None,
    num_classes: int,
    config: TrainConfig = TrainConfig(head="logreg"),
) -> TrainResult:
    """Fit LogisticRegression (lbfgs, L2, C=config.c, config.class_weight) as a LinearHead, scored like the SGD head."""
    from sklearn.linear_model import LogisticRegression

    features, labels = train
    model = LogisticRegression(
        C=config.c,
        class_weight=None if config.class_weight == "none" else config.class_weight,
        max_iter=2000,
        random_state=config.seed,
    )
    model.fit(features.numpy(), labels.numpy())
    if list(model.classes_) != list(range(num_classes)):
        raise ValueError(f"logreg needs every class in the training rows; it saw only {list(model.classes_)}")
    head = _as_linear_head(model.coef_.astype(np.float32), model.intercept_.astype(np.float32), num_classes)
    return TrainResult(head, [epoch_metrics(1, head, evaluate(head, features, labels), val)])
