"""Exact duplicates (same sha256) and near duplicates (cosine similarity of PCA-whitened features), each pair once.

Near pairs are found tile by tile over the upper triangle of the similarity matrix, so memory beyond the
features is one tile whatever N is, and at most max_pairs near pairs (the most similar) are kept. From
index_min_rows rows on (with faiss installed) they come from lists of a fixed size instead, each row compared
with the rows of its nearest lists (features/neighbours/pairs.py), so a million rows are not compared pair by pair.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from headstart.features.neighbours.config import INDEX_MIN_ROWS
from headstart.features.neighbours.index import use_index
from headstart.heads.audit.space import whiten


@dataclass
class Pairs:
    """Row-index pairs (a < b), their similarity and whether they are byte-identical; leakage first."""

    a: np.ndarray
    b: np.ndarray
    similarity: np.ndarray
    exact: np.ndarray  # bool
    leakage: np.ndarray  # bool: one row in train, the other in val or test
    not_listed: int = 0  # near pairs above the threshold beyond max_pairs

    def __len__(self) -> int:
        return len(self.a)


def exact_pairs(sha256: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of rows whose files have the same content hash (rows without a hash never pair)."""
    groups: dict[str, list[int]] = defaultdict(list)
    for row, digest in enumerate(sha256):
        if digest:
            groups[digest].append(row)
    pairs = [(a, b) for rows in groups.values() for i, a in enumerate(rows) for b in rows[i + 1 :]]
    array = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    return array[:, 0], array[:, 1]


def near_pairs(
    unit: np.ndarray,
    threshold: float,
    block_rows: int = 2048,
    max_pairs: int = 100_000,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Pairs a < b with unit[a] . unit[b] >= threshold; at most max_pairs (the most similar) and how many more.

    Tiles of block_rows x block_rows over the upper triangle: besides `unit`, memory is one tile (16 MiB at 2048).
    """
    total = len(unit)
    found_a, found_b, found_s = [], [], []
    kept, dropped = 0, 0
    for start in range(0, total, block_rows):
        rows = unit[start : start + block_rows]
        for column in range(start, total, block_rows):
            similarity = rows @ unit[column : column + block_rows].T
            local_a, local_b = np.nonzero(similarity >= threshold)
            if column == start:  # the diagonal tile: upper triangle only, each pair once, no row with itself
                keep = local_b > local_a
                local_a, local_b = local_a[keep], local_b[keep]
            found_a.append(local_a + start)
            found_b.append(local_b + column)
            found_s.append(similarity[local_a, local_b])
            kept += len(local_a)
            if kept > 2 * max_pairs:  # bound the memory of a too-low threshold: keep the most similar
                a, b, s = (np.concatenate(x) for x in (found_a, found_b, found_s))
                best = np.argpartition(-s, max_pairs)[:max_pairs]
                dropped += len(s) - max_pairs
                found_a, found_b, found_s, kept = [a[best]], [b[best]], [s[best]], max_pairs
        if on_progress:
            on_progress(min(start + block_rows, total), total)
    a, b, s = (np.concatenate(x) if x else np.empty(0) for x in (found_a, found_b, found_s))
    if len(s) > max_pairs:
        best = np.argpartition(-s, max_pairs)[:max_pairs]
        dropped += len(s) - max_pairs
        a, b, s = a[best], b[best], s[best]
    return a.astype(np.int64), b.astype(np.int64), s.astype(np.float32), dropped


def find_duplicates(
    features: np.ndarray,
    sha256: list[str],
    split: np.ndarray,
    train_rows: int,
    threshold: float,
    max_pairs: int = 100_000,
    block_rows: int = 2048,
    on_progress: Callable[[int, int], None] | None = None,
    index_min_rows: int = INDEX_MIN_ROWS,
) -> Pairs:
    """Exact and near pairs over all rows, each once; train-vs-val/test pairs (leakage) first, then most similar.

    The first train_rows rows are the train split: the whitening is fitted on them (on a seeded sample of
    WHITEN_SAMPLE_ROWS of them when there are more). From index_min_rows rows on (with faiss installed) near pairs
    come from lists of a fixed size (features/neighbours/pairs.py), else from every pair compared.
    """
    unit = whiten(features, features[:train_rows])
    exact_a, exact_b = exact_pairs(sha256)
    if use_index(len(unit), index_min_rows):
        from headstart.features.neighbours.pairs import indexed_pairs

        near = indexed_pairs(unit, threshold, max_pairs, on_progress)
    else:
        near = near_pairs(unit, threshold, block_rows, max_pairs, on_progress)
    return combine_pairs(unit, sha256, split, (exact_a, exact_b), near)


def combine_pairs(
    unit: np.ndarray,
    sha256: list[str],
    split: np.ndarray,
    exact: tuple[np.ndarray, np.ndarray],
    near: tuple[np.ndarray, np.ndarray, np.ndarray, int],
) -> Pairs:
    """The exact pairs and the near ones (less those that are exact), each once, in the order find_duplicates lists
    them: leakage first, then exact, then the most similar."""
    exact_a, exact_b = exact
    near_a, near_b, near_s, dropped = near
    digests = np.array(sha256, dtype=object)
    is_exact_near = (digests[near_a] == digests[near_b]) & (digests[near_a] != "")
    near_a, near_b, near_s = near_a[~is_exact_near], near_b[~is_exact_near], near_s[~is_exact_near]
    exact_s = np.einsum("ij,ij->i", unit[exact_a], unit[exact_b]) if len(exact_a) else np.empty(0, np.float32)
    a = np.concatenate([exact_a, near_a])
    b = np.concatenate([exact_b, near_b])
    similarity = np.concatenate([exact_s, near_s]).astype(np.float32)
    is_exact = np.concatenate([np.ones(len(exact_a), bool), np.zeros(len(near_a), bool)])
    leakage = (split[a] == "train") != (split[b] == "train")
    order = np.lexsort((b, a, -similarity, ~is_exact, ~leakage))
    return Pairs(a[order], b[order], similarity[order], is_exact[order], leakage[order], dropped)
