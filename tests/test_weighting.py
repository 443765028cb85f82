"""heads/weighting.py: balanced class weights, and what they are for: the minority class found more often."""

from __future__ import annotations

import pytest
import torch

from bench.sweep import imbalanced
from headstart.heads.config import TrainConfig
from headstart.heads.train import train_sgd
from headstart.heads.weighting import class_weights


def test_balanced_weights_are_rows_over_classes_times_count():
    labels = torch.tensor([0] * 6 + [1] * 2 + [2] * 4)
    assert class_weights(labels, 4, "none") is None
    torch.testing.assert_close(class_weights(labels, 4, "balanced"), torch.tensor([12 / 24, 12 / 8, 12 / 16, 0.0]))
    with pytest.raises(ValueError, match="none, balanced"):
        class_weights(labels, 4, "auto")


def test_balanced_weighting_raises_the_minority_class_recall():
    """One class 5x the other: the tutorial's head mostly answers the majority; balanced finds more of the minority."""
    train, (features, labels) = imbalanced(500, 100, 0), imbalanced(500, 100, 1)
    recalls = {}
    for weighting in ("none", "balanced"):
        head = train_sgd(train, None, 2, TrainConfig(class_weight=weighting)).head
        with torch.no_grad():
            predicted = head(features).argmax(1)
        recalls[weighting] = [
            ((predicted == c) & (labels == c)).sum().item() / (labels == c).sum().item() for c in (0, 1)
        ]
    assert recalls["balanced"][1] > recalls["none"][1] + 0.2
    assert sum(recalls["balanced"]) > sum(recalls["none"])  # macro recall rises too
