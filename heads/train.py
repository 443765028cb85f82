"""Train the linear head on cached features exactly as the tutorial trains `fc`, minus its bugs."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader

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


_MEAN, _NO_IGNORED = 1, -100  # nll_loss's reduction="mean" and ignore_index, as cross_entropy passes them


def _linear_step(
    head: nn.Linear, features: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """cross_entropy(head(features), labels, weight).backward() for a linear head, without autograd: the kernels
    autograd runs for it (addmm; log_softmax and nll_loss forward and backward; the weight's gradient as
    grad.t() @ x, the bias's as grad.sum(0)), so the gradients are the same bits (tests/test_train.py) at a
    fraction of autograd's per-batch bookkeeping, which dominated a 32-row step. Returns the logits and the loss."""
    with torch.no_grad():
        logits = torch.addmm(head.bias, features, head.weight.t())
        log_probs = torch.log_softmax(logits, 1)
        loss, total = torch.ops.aten.nll_loss_forward(log_probs, labels, weight, _MEAN, _NO_IGNORED)
        one = torch.ones((), dtype=loss.dtype)
        grad = torch.ops.aten.nll_loss_backward(one, log_probs, labels, weight, _MEAN, _NO_IGNORED, total)
        grad = torch._log_softmax_backward_data(grad, log_probs, 1, log_probs.dtype)
        head.weight.grad, head.bias.grad = grad.t().mm(features), grad.sum(0)
    return logits, loss


def train_one_epoch(
    head: nn.Module,
    loader: DataLoader | Iterable[tuple[torch.Tensor, torch.Tensor]],
    optimizer: MomentumSGD,
    weight: torch.Tensor | None = None,
) -> Scores:
    """One pass over shuffled batches (ShuffledBatches, a DataLoader, or heads/streaming.py's); loss is the mean
    over samples (the notebook divided by the epoch number)."""
    head.train()
    criterion = nn.CrossEntropyLoss(weight=weight)
    linear = head if isinstance(head, nn.Linear) and head.bias is not None else None
    total_loss, correct, seen = 0.0, 0, 0
    for features, labels in loader:
        optimizer.zero_grad()
        if linear is not None:
            outputs, loss = _linear_step(linear, features, labels, weight)
        else:
            outputs = head(features)
            loss = criterion(outputs, labels)
            loss.backward()
        optimizer.step()
        total_loss += loss.item() * labels.shape[0]
        correct += int((outputs.argmax(1) == labels).sum())
        seen += labels.shape[0]
    return Scores(total_loss / seen, correct / seen)


@dataclass(frozen=True)
class ShuffledBatches:
    """One epoch of the batches DataLoader(TensorDataset(features, labels), batch_size, shuffle=True, generator)
    yields, the same rows in the same order from the same draws of the generator (tests/test_train.py compares
    them), by indexing the rows a batch at a time rather than collating them one by one. Iterating draws what the
    loader draws: its base seed, then RandomSampler's permutation and, once that is spent, a second one it slices
    to nothing, so the next epoch's permutation is the loader's too."""

    features: torch.Tensor
    labels: torch.Tensor
    batch_size: int
    generator: torch.Generator
    rows: torch.Tensor | None = None  # the rows to train on (a fold), indexed in place of a copy of them

    def __len__(self) -> int:
        return -(-self._count // self.batch_size)

    @property
    def _count(self) -> int:
        return len(self.labels) if self.rows is None else len(self.rows)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        torch.empty((), dtype=torch.int64).random_(generator=self.generator)
        order = torch.randperm(self._count, generator=self.generator)
        torch.randperm(self._count, generator=self.generator)
        for index in order.split(self.batch_size):
            index = index if self.rows is None else self.rows.index_select(0, index)
            yield self.features.index_select(0, index), self.labels.index_select(0, index)


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
    rows: torch.Tensor | None = None,
) -> TrainResult:
    """Fit LinearHead with the tutorial's SGD on (features, labels) in memory; the same seed gives the same head.
    `rows` (a fold's row numbers) trains on those rows as on `features[rows]`, bit for bit, without the copy."""
    features, labels = train
    generator = torch.Generator().manual_seed(config.seed)
    head = LinearHead(features.shape[1], num_classes, generator=generator)
    optimizer = MomentumSGD(head.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    weight = class_weights(labels if rows is None else labels[rows], num_classes, config.class_weight)
    result = TrainResult(head)
    with _one_thread():
        for epoch in range(1, config.epochs + 1):
            batches = ShuffledBatches(features, labels, config.batch_size, generator, rows)
            metrics = epoch_metrics(epoch, head, train_one_epoch(head, batches, optimizer, weight), val)
            result.history.append(metrics)
            if on_epoch:
                on_epoch(epoch, metrics)
    return result
