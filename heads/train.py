"""Train the linear head on cached features exactly as the tutorial trains `fc`, minus its bugs."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from headstart.heads.config import TrainConfig
from headstart.heads.linear import LinearHead
from headstart.heads.sgd import MomentumSGD
from headstart.heads.weighting import class_weights


@dataclass(frozen=True)
class Scores:
    loss: float
    acc: float


@dataclass
class TrainResult:
    head: LinearHead
    history: list[dict] = field(default_factory=list)

    @property
    def final(self) -> dict:
        return self.history[-1]


def train_one_epoch(
    head: nn.Module,
    loader: DataLoader | Iterable[tuple[torch.Tensor, torch.Tensor]],
    optimizer: MomentumSGD,
    weight: torch.Tensor | None = None,
) -> Scores:
    """One pass over shuffled batches (a DataLoader, or heads/streaming.py's); loss is the mean over samples (the
    notebook divided by the epoch number)."""
    head.train()
    criterion = nn.CrossEntropyLoss(weight=weight)
    total_loss, correct, seen = 0.0, 0, 0
    for features, labels in loader:
        optimizer.zero_grad()
        outputs = head(features)
        loss = criterion(outputs, labels)
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * labels.shape[0]
        correct += int((outputs.argmax(1) == labels).sum())
        seen += labels.shape[0]
    return Scores(total_loss / seen, correct / seen)


def evaluate(head: nn.Module, features: torch.Tensor, labels: torch.Tensor) -> Scores:
    """Mean loss and accuracy, without gradients (the notebook computed them during validation)."""
    head.eval()
    with torch.inference_mode():
        outputs = head(features)
        loss = nn.functional.cross_entropy(outputs, labels)
    return Scores(float(loss), int((outputs.argmax(1) == labels).sum()) / len(labels))


@contextmanager
def _one_thread():
    """A 512 x C layer is too small for a thread pool: one thread beats paying for synchronisation (on a busy
    machine, two threads made the head's SGD and the trust fitting several times slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def epoch_metrics(epoch: int, head: nn.Module, train: Scores, val: tuple[torch.Tensor, torch.Tensor] | None) -> dict:
    """One epoch's record in the history: its number, train scores and, when there is a val split, val scores."""
    metrics = {"epoch": epoch, "train_loss": train.loss, "train_acc": train.acc}
    if val is not None:
        val_scores = evaluate(head, *val)
        metrics |= {"val_loss": val_scores.loss, "val_acc": val_scores.acc}
    return metrics


def train_sgd(
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor] | None,
    num_classes: int,
    config: TrainConfig = TrainConfig(),
    on_epoch: Callable[[int, dict], None] | None = None,
) -> TrainResult:
    """Fit LinearHead with the tutorial's SGD on (features, labels) in memory; the same seed gives the same head."""
    features, labels = train
    generator = torch.Generator().manual_seed(config.seed)
    head = LinearHead(features.shape[1], num_classes, generator=generator)
    optimizer = MomentumSGD(head.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    weight = class_weights(labels, num_classes, config.class_weight)
    loader = DataLoader(
        TensorDataset(features, labels), batch_size=config.batch_size, shuffle=True, generator=generator
    )
    result = TrainResult(head)
    with _one_thread():
        for epoch in range(1, config.epochs + 1):
            metrics = epoch_metrics(epoch, head, train_one_epoch(head, loader, optimizer, weight), val)
            result.history.append(metrics)
            if on_epoch:
                on_epoch(epoch, metrics)
    return result
