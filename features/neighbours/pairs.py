"""Pairs of rows at least a similarity apart, found through the approximate index: audit's near duplicates at scale.

Above the index size (INDEX_MIN_ROWS, with faiss installed) heads/audit/duplicates.py asks this module instead
of comparing every pair: the rows' IVF index (features/neighbours/index.py) answers a range search for a block
of rows at a time, each row scanning only the PAIR_NPROBE lists nearest it. A pair is kept from its lower row's
search (a < b), so each pair is found once; at most max_pairs (the most similar) are kept and the rest counted.
Agreement with the exact tiles is measured by `python -m bench.neighbours` (docs/features-out.md).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from headstart.features.neighbours.index import build_index

PAIR_NPROBE = 8  # lists each row scans for its pairs: every planted copy found, and the exact pairs (bench.neighbours)
QUERY_BLOCK = 16384  # rows searched at a time: the results of one block are what memory holds beyond the index


def most_similar(
    a: np.ndarray, b: np.ndarray, s: np.ndarray, max_pairs: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The max_pairs most similar of the pairs (a, b, s), and how many were left out."""
    if len(s) <= max_pairs:
        return a, b, s, 0
    best = np.argpartition(-s, max_pairs)[:max_pairs]
    return a[best], b[best], s[best], len(s) - max_pairs


def indexed_pairs(
    unit: np.ndarray,
    threshold: float,
    max_pairs: int = 100_000,
    on_progress: Callable[[int, int], None] | None = None,
    nprobe: int = PAIR_NPROBE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Pairs a < b of unit-length rows with unit[a] . unit[b] above threshold, by the index's range search; at most
    max_pairs (the most similar) and how many more, as heads/audit/duplicates.near_pairs returns them."""
    total = len(unit)
    unit = np.ascontiguousarray(unit, dtype=np.float32)
    index = build_index(unit)
    index.nprobe = min(nprobe, index.nlist)
    a, b, s = np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32)
    dropped = 0
    for start in range(0, total, QUERY_BLOCK):
        limits, sims, rows = index.range_search(unit[start : start + QUERY_BLOCK], threshold)
        queries = np.repeat(np.arange(start, start + len(limits) - 1), np.diff(limits.astype(np.int64)))
        later = rows > queries  # the pair from its lower row only: once, and never a row with itself
        a = np.concatenate([a, queries[later]])
        b = np.concatenate([b, rows[later].astype(np.int64)])
        s = np.concatenate([s, sims[later].astype(np.float32)])
        if len(s) > 2 * max_pairs:  # bound the memory of a too-low threshold: keep the most similar
            a, b, s, left_out = most_similar(a, b, s, max_pairs)
            dropped += left_out
        if on_progress:
            on_progress(min(start + QUERY_BLOCK, total), total)
    a, b, s, left_out = most_similar(a, b, s, max_pairs)
    return a, b, s, dropped + left_out
