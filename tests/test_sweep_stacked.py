"""heads/sweep/stacked.py: every stacked head equals, bit for bit, the head train_sgd trains alone with its setting."""

from __future__ import annotations

import itertools

import pytest
import torch

from headstart.heads.config import TrainConfig
from headstart.heads.linear import LinearHead
from headstart.heads.sweep.stacked import train_stacked
from headstart.heads.train import train_sgd


def _data(rows: int = 90, classes: int = 3, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (rows,), generator=generator)
    features = torch.randn(rows, 512, generator=generator).relu_()
    features[:, :8] += labels.unsqueeze(1).float()
    return features, labels


@pytest.mark.parametrize("batch_size, epochs, seed", [(16, 3, 0), (32, 2, 7)])  # 90 rows: a short last batch
def test_each_stacked_head_equals_train_head_alone_bit_for_bit(batch_size, epochs, seed):
    features, labels = _data()
    settings = [
        TrainConfig(
            lr=lr,
            momentum=momentum,
            weight_decay=decay,
            class_weight=weighting,
            epochs=epochs,
            batch_size=batch_size,
            seed=seed,
        )
        for lr, momentum, decay, weighting in itertools.product(
            [0.001, 0.5], [0.0, 0.9], [0.0, 0.01], ["none", "balanced"]
        )
    ]
    weight, bias = train_stacked(features, labels, 3, settings)
    assert weight.shape == (len(settings), 3, 512) and bias.shape == (len(settings), 3)
    for index, setting in enumerate(settings):
        alone = train_sgd((features, labels), None, 3, setting).head
        assert torch.equal(weight[index], alone.weight) and torch.equal(bias[index], alone.bias), setting
        if index:  # the settings really lead to different heads
            assert not torch.allclose(weight[index], weight[0])


def test_heads_that_cannot_share_batches_are_refused():
    features, labels = _data()
    with pytest.raises(ValueError, match="sharing seed, batch size and epochs"):
        train_stacked(features, labels, 3, [TrainConfig(), TrainConfig(epochs=6)])
    with pytest.raises(ValueError, match="SGD"):
        train_stacked(features, labels, 3, [TrainConfig(head="logreg")])


def test_balanced_weighting_is_scikit_learns_weighted_mean_cross_entropy():
    """train_sgd's balanced loss: rows / (classes x count) per class, the weighted mean over the batch."""
    features, labels = _data(rows=40)
    config = TrainConfig(class_weight="balanced", batch_size=40, epochs=1, momentum=0.0, lr=0.1)
    head = train_sgd((features, labels), None, 3, config).head
    weights = len(labels) / (3 * torch.bincount(labels, minlength=3).float())
    # One full-batch step from train_sgd's init (seed 0), by autograd with scikit-learn's balanced weights.
    start = LinearHead(512, 3, generator=torch.Generator().manual_seed(0))
    torch.nn.functional.cross_entropy(start(features), labels, weight=weights).backward()
    torch.testing.assert_close(head.weight.detach(), (start.weight - 0.1 * start.weight.grad).detach())
    torch.testing.assert_close(head.bias.detach(), (start.bias - 0.1 * start.bias.grad).detach())
