"""heads/sgd.py: MomentumSGD gives torch.optim.SGD's parameters bit for bit; train-head never imports torch.optim."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from conftest import ROOT
from torch import nn

from headstart.heads.config import TrainConfig
from headstart.heads.sgd import MomentumSGD
from headstart.heads.train import train_sgd


def trained(make_optimizer, steps: int = 40) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    features, labels = torch.randn(160, 512, generator=generator), torch.randint(0, 3, (160,), generator=generator)
    torch.manual_seed(0)
    head = nn.Linear(512, 3)
    optimizer = make_optimizer(head.parameters())
    for step in range(steps):
        rows = slice(step * 32 % 160, step * 32 % 160 + 32)
        optimizer.zero_grad()
        nn.functional.cross_entropy(head(features[rows]), labels[rows]).backward()
        optimizer.step()
    return [p.detach().clone() for p in head.parameters()]


@pytest.mark.parametrize(("lr", "momentum", "weight_decay"), [(0.001, 0.9, 0.0), (0.05, 0.0, 0.0), (0.01, 0.5, 1e-3)])
def test_same_parameters_as_torch_sgd_bit_for_bit(lr, momentum, weight_decay):
    ours = trained(lambda params: MomentumSGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay))
    theirs = trained(lambda params: torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay))
    for mine, reference in zip(ours, theirs):
        assert torch.equal(mine, reference)


@pytest.mark.parametrize("config", [TrainConfig(epochs=3), TrainConfig(epochs=3, weight_decay=0.01)])
def test_train_sgd_gives_the_head_torch_sgd_gives(monkeypatch, config):
    generator = torch.Generator().manual_seed(5)
    train = torch.randn(100, 512, generator=generator), torch.randint(0, 2, (100,), generator=generator)
    ours = train_sgd(train, None, 2, config).head
    monkeypatch.setattr(
        "heads.train.MomentumSGD",
        lambda params, lr, momentum, weight_decay: torch.optim.SGD(
            params, lr=lr, momentum=momentum, weight_decay=weight_decay
        ),
    )
    theirs = train_sgd(train, None, 2, config).head
    assert torch.equal(ours.weight, theirs.weight) and torch.equal(ours.bias, theirs.bias)


def test_training_a_head_imports_neither_dynamo_nor_scipy():
    code = (
        "import sys, torch; from headstart.heads.train import train_sgd; "
        "from headstart.heads.config import TrainConfig; "
        "train_sgd((torch.randn(40, 512), torch.randint(0, 2, (40,))), None, 2, TrainConfig(epochs=1)); "
        "print('torch._dynamo' in sys.modules, 'scipy' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]
