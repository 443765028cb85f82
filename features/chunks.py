"""A features file's rows read a bounded chunk at a time, and the one rule that decides when a step streams them.

Below IN_MEMORY_BYTES of labelled features (train, val and test together) a step reads its rows whole, as it always
has, and its results are today's bit for bit. Above it, the steps that can (train-head's SGD recipe, the trust fit)
read chunks through `FeatureStore.read_vectors`, so every chunk is checked as untrusted input like any other read,
and peak memory stays near one shuffle window whatever the number of rows; the steps that must hold every row
(`--head logreg`, `--unknown-method knn`, the sweep) refuse with one line naming the alternative. info's label
counts and evaluate's training-image lookups read their columns a chunk at a time whatever the file's size.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from headstart.features.store import FeatureStore

IN_MEMORY_BYTES = 1 << 30  # labelled features held in memory at most (1 GiB: 524,288 rows of 512-d float32)
CHUNK_BYTES = 64 << 20  # the features one chunk of a sequential pass holds
SHUFFLE_BLOCK_ROWS = 4096  # rows read together when shuffling (16 of the file's 256-row HDF5 chunks)
WINDOW_SHARE = 4  # a shuffle window holds IN_MEMORY_BYTES / WINDOW_SHARE of features
COLUMN_CHUNK_ROWS = 1 << 16  # rows of a column other than the features (labels, hashes) one chunk holds


class TooLargeError(ValueError):
    """A step that must hold every row, asked to on a features file above the in-memory limit."""


@dataclass(frozen=True)
class ReadingPlan:
    """How a step reads a features file: whole, or streamed a chunk at a time."""

    rows: int  # labelled rows (train, val, test)
    width: int
    limit_bytes: int

    @property
    def feature_bytes(self) -> int:
        return self.rows * self.width * 4

    @property
    def streamed(self) -> bool:
        return self.feature_bytes > self.limit_bytes

    @property
    def limit_rows(self) -> int:
        """How many rows of this width fit the in-memory limit."""
        return max(1, self.limit_bytes // (self.width * 4))

    @property
    def chunk_rows(self) -> int:
        """Rows per chunk of a sequential pass."""
        return max(1, CHUNK_BYTES // (self.width * 4))

    @property
    def window_rows(self) -> int:
        """Rows per shuffle window: whole blocks, at least one."""
        blocks = max(1, self.limit_bytes // WINDOW_SHARE // (self.width * 4) // SHUFFLE_BLOCK_ROWS)
        return blocks * SHUFFLE_BLOCK_ROWS

    def describe(self) -> str:
        """One line saying which path was taken, and why."""
        size = f"{self.rows:,} labelled rows, {self.feature_bytes / 2**30:.2f} GiB of features"
        limit = f"the in-memory limit of {self.limit_bytes / 2**30:.2f} GiB"
        if self.streamed:
            return f"streamed in chunks ({size}, above {limit})"
        return f"read into memory ({size}, within {limit})"

    def refuse(self, what: str, alternative: str) -> None:
        """Raise TooLargeError for a step that must hold every row, when the rows are above the limit."""
        if self.streamed:
            raise TooLargeError(
                f"{what} holds every row in memory, and this features file has {self.rows:,} labelled rows "
                f"({self.feature_bytes / 2**30:.2f} GiB, above {self.limit_bytes / 2**30:.2f} GiB): {alternative}"
            )


def reading_plan(store: FeatureStore, limit_bytes: int | None = None) -> ReadingPlan:
    """The plan for a store's labelled splits (the pool is never fitted on) under the in-memory limit."""
    rows = sum(store.count(split) for split in store.labelled_splits)
    return ReadingPlan(rows, store.width or 1, IN_MEMORY_BYTES if limit_bytes is None else limit_bytes)


def iter_chunks(store: FeatureStore, split: str, chunk_rows: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(first row, features, labels) of a split, chunk_rows at a time in file order, each chunk checked as read."""
    total = store.count(split) if split in store.splits else 0
    for start in range(0, total, chunk_rows):
        features, labels = store.read_vectors(split, slice(start, min(total, start + chunk_rows)))
        yield start, features, labels


def shuffled_windows(
    store: FeatureStore, split: str, window_rows: int, permutation
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """A split's rows as windows of whole blocks: the blocks in the order `permutation(n)` gives (a list of block
    numbers), each window's blocks read in file order. The caller shuffles the rows within each window."""
    total = store.count(split)
    blocks = -(-total // SHUFFLE_BLOCK_ROWS)
    order = list(permutation(blocks))
    per_window = max(1, window_rows // SHUFFLE_BLOCK_ROWS)
    for first in range(0, blocks, per_window):
        chosen = sorted(order[first : first + per_window])
        parts = [
            store.read_vectors(split, slice(block * SHUFFLE_BLOCK_ROWS, min(total, (block + 1) * SHUFFLE_BLOCK_ROWS)))
            for block in chosen
        ]
        yield np.concatenate([part[0] for part in parts]), np.concatenate([part[1] for part in parts])


def read_labels(store: FeatureStore, split: str) -> np.ndarray:
    """A split's labels (8 bytes a row), checked: what the class weights, folds and counts need."""
    return store.labels(split) if split in store.splits else np.zeros(0, np.int64)


def count_labels(store: FeatureStore, split: str, classes: int) -> np.ndarray:
    """Rows per class of a split (int64, `classes` long), counted a chunk of labels at a time: what info needs."""
    counts = np.zeros(classes, np.int64)
    for start in range(0, store.count(split), COLUMN_CHUNK_ROWS):
        counts += np.bincount(store.labels(split, slice(start, start + COLUMN_CHUNK_ROWS)), minlength=classes)
    return counts


def count_label_sets(store: FeatureStore, split: str, classes: int) -> tuple[np.ndarray, int]:
    """A multi-label split's rows carrying each label (int64, `classes` long) and its rows with no label, counted a
    chunk of label sets at a time."""
    counts, empty = np.zeros(classes, np.int64), 0
    for start in range(0, store.count(split), COLUMN_CHUNK_ROWS):
        sets = store.label_sets(split, slice(start, start + COLUMN_CHUNK_ROWS))
        if sets is not None:
            counts += sets.sum(0, dtype=np.int64)
            empty += int((~sets.any(1)).sum())
    return counts, empty


def found_digests(store: FeatureStore, split: str, wanted: set[str]) -> set[str]:
    """Which of the `wanted` content hashes a split holds, its hashes read (and checked) a chunk at a time."""
    found: set[str] = set()
    if split not in store.splits:
        return found
    for start in range(0, store.count(split), COLUMN_CHUNK_ROWS):
        found.update(wanted.intersection(store.digests(split, slice(start, start + COLUMN_CHUNK_ROWS))))
    return found
