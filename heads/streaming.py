"""train-head's SGD recipe over a features file read a chunk at a time, for caches above the in-memory limit.

The recipe is heads/train.py's (the same head initialisation, optimizer, class weights, epochs and batch size);
only the order of the rows differs: each epoch visits the file's blocks of SHUFFLE_BLOCK_ROWS in a seeded random
order, a window of blocks at a time, and shuffles the rows within each window (features/chunks.py). Val and test
are scored a chunk at a time. Peak memory is one window and the labels (8 bytes a row), whatever the number of rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn

from headstart.features.chunks import ReadingPlan, iter_chunks, read_labels, shuffled_windows
from headstart.features.store import FeatureStore
from headstart.heads.config import TrainConfig
from headstart.heads.linear import LinearHead
from headstart.heads.sgd import MomentumSGD
from headstart.heads.train import Scores, TrainResult, _one_thread, train_one_epoch
from headstart.heads.weighting import class_weights


def has_rows(store: FeatureStore, split: str) -> bool:
    """Whether the file has this split and it holds any row."""
    return split in store.splits and store.count(split) > 0


def _batches(
    store: FeatureStore, plan: ReadingPlan, batch_size: int, generator: torch.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of train batches: windows of blocks in a seeded order, rows shuffled within each window."""

    def permutation(blocks: int) -> list[int]:
        return torch.randperm(blocks, generator=generator).tolist()

    for features, labels in shuffled_windows(store, "train", plan.window_rows, permutation):
        x, y = torch.from_numpy(features), torch.from_numpy(labels)
        order = torch.randperm(len(y), generator=generator)
        for first in range(0, len(y), batch_size):
            index = order[first : first + batch_size]
            yield x.index_select(0, index), y.index_select(0, index)


def evaluate_streamed(head: nn.Module, store: FeatureStore, split: str, plan: ReadingPlan) -> Scores:
    """heads/train.py's evaluate over a split read a chunk at a time: the mean loss and the accuracy."""
    head.eval()
    total_loss, correct, seen = 0.0, 0, 0
    with torch.inference_mode():
        for _, features, labels in iter_chunks(store, split, plan.chunk_rows):
            outputs, targets = head(torch.from_numpy(features)), torch.from_numpy(labels)
            total_loss += float(nn.functional.cross_entropy(outputs, targets, reduction="sum"))
            correct += int((outputs.argmax(1) == targets).sum())
            seen += len(targets)
    return Scores(total_loss / max(1, seen), correct / max(1, seen))


def predicted_streamed(
    head: nn.Module, store: FeatureStore, split: str, plan: ReadingPlan
) -> tuple[np.ndarray, np.ndarray]:
    """A split's labels and the head's predicted labels, a chunk at a time."""
    labels, predicted = [], []
    with torch.inference_mode():
        for _, features, chunk_labels in iter_chunks(store, split, plan.chunk_rows):
            predicted.append(head(torch.from_numpy(features)).argmax(1).numpy())
            labels.append(chunk_labels)
    if not labels:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(labels), np.concatenate(predicted)


def train_streamed(
    store: FeatureStore,
    plan: ReadingPlan,
    num_classes: int,
    config: TrainConfig = TrainConfig(),
    on_epoch: Callable[[int, dict], None] | None = None,
) -> TrainResult:
    """Fit LinearHead with the tutorial's SGD on the train split read a window at a time; the seed fixes the head."""
    labels = torch.from_numpy(read_labels(store, "train"))
    generator = torch.Generator().manual_seed(config.seed)
    head = LinearHead(plan.width, num_classes, generator=generator)
    optimizer = MomentumSGD(head.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    weight = class_weights(labels, num_classes, config.class_weight)
    del labels  # the weights are all the epochs need of them
    scored = has_rows(store, "val")
    result = TrainResult(head)
    with _one_thread():
        for epoch in range(1, config.epochs + 1):
            train = train_one_epoch(head, _batches(store, plan, config.batch_size, generator), optimizer, weight)
            metrics = {"epoch": epoch, "train_loss": train.loss, "train_acc": train.acc}
            if scored:
                val = evaluate_streamed(head, store, "val", plan)
                metrics |= {"val_loss": val.loss, "val_acc": val.acc}
            result.history.append(metrics)
            if on_epoch:
                on_epoch(epoch, metrics)
    return result
