"""The searched rows of a features file and exact nearest-neighbour search over them by cosine similarity.

The features are centred on the mean of the searched rows before their cosine is taken: pooled features after a
ReLU are all positive, so raw cosines of unrelated images crowd near 1 and rank poorly (heads/audit/space.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from headstart.features.store import FeatureStore, StoreError

BLOCK_ROWS = 65536  # cached rows compared with the queries at a time: bounded memory whatever the cache's size


@dataclass
class CachedRows:
    """Every row of the features file (all splits, file order), and which of them are searched."""

    features: np.ndarray  # float32 (N, dim), as stored
    paths: list[str]
    split: list[str]
    labels: list[str | None]  # class names; None: unlabeled
    sha256: list[str]
    searched: np.ndarray  # row numbers searched, ascending
    label_sets: list[list[str]] | None = None  # a multi-label file's: every row's labels, in class order


def _label_names(labels: np.ndarray, classes: list[str], store: FeatureStore) -> list[str | None]:
    if len(labels) and (labels.min() < -1 or labels.max() >= len(classes)):
        raise StoreError(f"{store.path} holds labels outside its {len(classes)} classes: re-run `extract`")
    return [None if label < 0 else classes[label] for label in labels.tolist()]


def read_rows(store: FeatureStore, splits: list[str]) -> CachedRows:
    """Every row of store (the query lookup covers them all), with the rows of `splits` marked as searched."""
    blocks = [(split, store.read(split)) for split in store.splits]
    dim = next((len(rows.features[0]) for _, rows in blocks if len(rows)), 0)
    features = np.concatenate([rows.features.reshape(-1, dim) for _, rows in blocks]) if blocks else np.empty((0, 0))
    split = [name for name, rows in blocks for _ in range(len(rows))]
    chosen = set(splits)
    classes = store.header.classes
    sets = None
    if store.header.multi_label:
        matrices = [rows.label_sets for _, rows in blocks if rows.label_sets is not None]
        sets = [[classes[k] for k in row.nonzero()[0]] for matrix in matrices for row in matrix]
    return CachedRows(
        features=np.asarray(features, np.float32),
        paths=[path for _, rows in blocks for path in rows.paths],
        split=split,
        labels=[label for _, rows in blocks for label in _label_names(rows.labels, store.header.classes, store)],
        sha256=[digest for _, rows in blocks for digest in rows.sha256],
        searched=np.array([row for row, name in enumerate(split) if name in chosen], np.int64),
        label_sets=sets,
    )


def unit_length(rows: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32): their dot products are cosine similarities."""
    rows = np.asarray(rows, np.float32)
    return rows / np.maximum(np.sqrt(np.einsum("ij,ij->i", rows, rows)), 1e-12)[:, None]


class ExactSearch:
    """Cosine k-nearest neighbours among the searched rows, computed exactly, a block of rows at a time."""

    def __init__(self, features: np.ndarray):
        self.centre = features.mean(axis=0, dtype=np.float64).astype(np.float32) if len(features) else 0.0
        self.rows = features  # searched rows as stored; centred and scaled block by block
        self.block_rows = BLOCK_ROWS

    def unit(self, vectors: np.ndarray) -> np.ndarray:
        """Vectors in the space searched: centred on the searched rows' mean, unit length."""
        return unit_length(np.asarray(vectors, np.float32) - self.centre)

    def nearest(self, queries: np.ndarray, k: int, exclude: list[int | None]) -> tuple[np.ndarray, np.ndarray]:
        """(rows, similarities), each (queries, min(k, rows)), nearest first; exclude[i] is a row (a position among
        the searched rows) left out for query i, or None."""
        unit = self.unit(queries)
        k = min(k, len(self.rows))  # an excluded row can still fill the last place: its similarity is -inf
        best_rows = np.zeros((len(unit), 0), np.int64)
        best_sims = np.zeros((len(unit), 0), np.float32)
        for start in range(0, len(self.rows), self.block_rows):
            sims = unit @ self.unit(self.rows[start : start + self.block_rows]).T
            for query, row in enumerate(exclude):
                if row is not None and start <= row < start + len(sims[query]):
                    sims[query, row - start] = -np.inf
            rows = np.broadcast_to(np.arange(start, start + sims.shape[1]), sims.shape)
            best_rows, best_sims = _top(np.hstack([best_rows, rows]), np.hstack([best_sims, sims]), k)
        return best_rows, best_sims


class IndexedSearch(ExactSearch):
    """The same search answered by an approximate index over the searched rows (features/neighbours/index.py)."""

    def __init__(self, features: np.ndarray, index: Any):
        super().__init__(features)
        self.index = index

    def nearest(self, queries: np.ndarray, k: int, exclude: list[int | None]) -> tuple[np.ndarray, np.ndarray]:
        """As ExactSearch.nearest, from the rows the index finds (one more than k, for the excluded row)."""
        from headstart.features.neighbours.index import search_index

        k = min(k, len(self.rows))
        rows, sims = search_index(self.index, self.unit(queries), min(k + 1, len(self.rows)))
        for query, row in enumerate(exclude):
            if row is not None:
                sims[query, rows[query] == row] = -np.inf
        return _top(rows, sims, k)


def _top(rows: np.ndarray, sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k highest similarities per query, highest first (ties: the lower row first)."""
    order = np.lexsort((rows, -sims), axis=1)[:, :k] if sims.size else np.zeros((len(sims), 0), np.int64)
    return np.take_along_axis(rows, order, axis=1), np.take_along_axis(sims, order, axis=1)
