"""Pairs of rows at least a similarity apart, found list by list: audit's near duplicates at scale.

Above the index size (INDEX_MIN_ROWS, with faiss installed) heads/audit/duplicates.py asks this module instead
of comparing every pair. The rows are cut into lists of about LIST_ROWS rows each (faiss k-means on a bounded
sample of them, spherical: cosine), every row goes into its nearest list and is compared with the rows of its
PROBES nearest lists, a list at a time (one matrix product per list and block of rows), and the similarity of
every candidate is computed exactly, so no pair below the threshold is ever returned.

Why lists of a fixed size: with sqrt(rows) lists and a fixed number scanned, each row is compared with
PROBES * sqrt(rows) others and the work grows as rows^1.5 (15.8 times from 100,000 to 1,000,000 rows). With a
fixed list size each row is compared with PROBES * LIST_ROWS others whatever the size: the comparisons grow as
the rows do; only the assignment to lists (rows x lists, a matrix product of the LOW-dimensional whitened rows)
grows faster, and it is the smaller part up to millions of rows. Memory beyond the rows: the lists (rows x
PROBES integers) and one block's similarities.

A pair (a, b) is found from a's side when b's list is one of a's, from b's side when a's list is one of b's;
it is kept from one side only (the lower row's when both find it), so each pair is returned once, as a < b.
At most max_pairs (the most similar) are kept and the rest counted. Agreement with comparing every pair is
measured by `python -m bench.neighbours` (docs/features-out.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from headstart.features.neighbours.index import require_faiss

LIST_ROWS = 256  # rows per list, whatever the size: the comparisons per row stay fixed (bench.neighbours)
PROBES = 16  # lists each row is compared with, its own first (bench.neighbours: the exact pairs found)
TRAIN_ROWS = 65_536  # k-means sample, bounded: its cost grows with the lists only
KMEANS_ITERATIONS = 4  # the lists only need to be compact, not converged: a pair near a border is in both lists
GROUPED_FROM = 1024  # lists from which the centres are grouped to find a row's nearest (measured: bench.neighbours)
GROUP_PROBES = 16  # groups of centres each row compares
QUERY_BLOCK = 4096  # rows compared with one list at a time: one block's similarities in memory


def most_similar(
    a: np.ndarray, b: np.ndarray, s: np.ndarray, max_pairs: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The max_pairs most similar of the pairs (a, b, s), and how many were left out."""
    if len(s) <= max_pairs:
        return a, b, s, 0
    best = np.argpartition(-s, max_pairs)[:max_pairs]
    return a[best], b[best], s[best], len(s) - max_pairs


def _centroids(unit: np.ndarray, nlist: int, seed: int) -> np.ndarray:
    """nlist centres: rows drawn at random, moved by KMEANS_ITERATIONS of spherical k-means on a bounded sample."""
    rng = np.random.default_rng(seed)
    centroids = np.ascontiguousarray(unit[np.sort(rng.choice(len(unit), nlist, replace=False))], dtype=np.float32)
    if KMEANS_ITERATIONS == 0:
        return centroids
    faiss = require_faiss()
    sample = np.sort(rng.choice(len(unit), min(len(unit), max(TRAIN_ROWS, 2 * nlist)), replace=False))
    kmeans = faiss.Kmeans(unit.shape[1], nlist, niter=KMEANS_ITERATIONS, spherical=True, seed=seed, verbose=False)
    kmeans.cp.min_points_per_centroid = 1  # a bounded sample: fewer than faiss's 39 per list is the point
    kmeans.cp.max_points_per_centroid = len(sample)
    kmeans.train(np.ascontiguousarray(unit[sample], dtype=np.float32), init_centroids=centroids)
    return kmeans.centroids


def _quantizer(centroids: np.ndarray, faiss: Any) -> Any:
    """What finds a row's nearest centres: every centre compared below GROUPED_FROM lists; above, the centres are
    grouped (sqrt(lists) groups) and a row compares only the centres of its GROUP_PROBES nearest groups, so the
    assignment's work per row grows as sqrt(lists), not as the lists."""
    nlist, dim = centroids.shape
    if nlist < GROUPED_FROM:
        quantizer = faiss.IndexFlatIP(dim)
    else:
        groups = int(np.sqrt(nlist))
        quantizer = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, groups, faiss.METRIC_INNER_PRODUCT)
        quantizer.cp.min_points_per_centroid = 1
        quantizer.train(centroids)
        quantizer.nprobe = min(groups, GROUP_PROBES)
    quantizer.add(centroids)
    return quantizer


def list_centres(unit: np.ndarray, list_rows: int = LIST_ROWS, seed: int = 0, lists: int | None = None) -> np.ndarray:
    """(rows // list_rows, dim) centres of the lists the rows are cut into (one list: no centres are needed); `lists`:
    that many lists instead (at most one a row), when `unit` is a sample of the rows to be cut."""
    nlist = max(1, min(len(unit), lists) if lists is not None else len(unit) // max(1, list_rows))
    return _centroids(unit, nlist, seed) if nlist > 1 else np.zeros((1, unit.shape[1]), np.float32)


def list_finder(centroids: np.ndarray, probes: int = PROBES) -> Callable[[np.ndarray], np.ndarray]:
    """nearest_lists with its quantizer built once: rows -> (rows, probes) list numbers, nearest first."""
    nlist = len(centroids)
    probes = max(1, min(probes, nlist))
    if nlist == 1:
        return lambda unit: np.zeros((len(unit), 1), np.int64)
    quantizer = _quantizer(centroids, require_faiss())

    def find(unit: np.ndarray) -> np.ndarray:
        found = np.empty((len(unit), probes), np.int64)
        for start in range(0, len(unit), 65536):
            block = np.ascontiguousarray(unit[start : start + 65536])
            found[start : start + 65536] = quantizer.search(block, probes)[1]
        return found

    return find


def nearest_lists(unit: np.ndarray, centroids: np.ndarray, probes: int = PROBES) -> np.ndarray:
    """(rows, probes) list numbers: each row's nearest lists by cosine, nearest first (column 0: its own list)."""
    return list_finder(centroids, probes)(unit)


def assign_lists(unit: np.ndarray, list_rows: int = LIST_ROWS, probes: int = PROBES, seed: int = 0) -> np.ndarray:
    """(rows, probes) list numbers: each row's nearest lists by cosine, nearest first (column 0: its own list)."""
    return nearest_lists(unit, list_centres(unit, list_rows, seed), probes)


def _grouped(lists: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows ordered by list, where each list's rows start): the rows of list j are order[starts[j]:starts[j+1]]."""
    # numpy's stable sort of 16-bit integers is a radix sort: linear in the rows, where int64's is not
    keys = lists.astype(np.uint16) if count <= 1 << 16 else lists
    order = np.argsort(keys, kind="stable")
    starts = np.concatenate([[0], np.cumsum(np.bincount(lists, minlength=count))])
    return order, starts


def _list_pairs(
    unit: np.ndarray, members: np.ndarray, queries: np.ndarray, lists: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs (query, member) above threshold between one list's members and the rows that probe it, each kept
    from one side only: from this query's side when the member does not probe the query's list, or query < member."""
    stored = unit[members].T
    found_a: list[np.ndarray] = [np.empty(0, np.int64)]
    found_b: list[np.ndarray] = [np.empty(0, np.int64)]
    found_s: list[np.ndarray] = [np.empty(0, np.float32)]
    for start in range(0, len(queries), QUERY_BLOCK):
        block = queries[start : start + QUERY_BLOCK]
        similarity = unit[block] @ stored
        local_q, local_m = np.nonzero(similarity >= threshold)
        q, m = block[local_q], members[local_m]
        seen_from_member = (lists[m] == lists[q, :1]).any(axis=1)
        keep = (q < m) | ~seen_from_member
        found_a.append(np.minimum(q, m)[keep])
        found_b.append(np.maximum(q, m)[keep])
        found_s.append(similarity[local_q[keep], local_m[keep]])
    return np.concatenate(found_a), np.concatenate(found_b), np.concatenate(found_s)


def _joined(found: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a, b, s = zip(*found)
    return np.concatenate(a), np.concatenate(b), np.concatenate(s)


def indexed_pairs(
    unit: np.ndarray,
    threshold: float,
    max_pairs: int = 100_000,
    on_progress: Callable[[int, int], None] | None = None,
    probes: int = PROBES,
    list_rows: int = LIST_ROWS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Pairs a < b of unit-length rows with unit[a] . unit[b] >= threshold, each row compared with the rows of its
    `probes` nearest lists; at most max_pairs (the most similar) and how many more, as near_pairs returns them."""
    unit = np.ascontiguousarray(unit, dtype=np.float32)
    return pairs_in_lists(unit, assign_lists(unit, list_rows, probes), threshold, max_pairs, on_progress)


def pairs_in_lists(
    unit: np.ndarray,
    lists: np.ndarray,
    threshold: float,
    max_pairs: int = 100_000,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The pairs of indexed_pairs, given each row's lists (assign_lists): every list's members against the rows
    that probe it."""
    total = len(unit)
    count = int(lists.max()) + 1 if total else 0
    members, member_starts = _grouped(lists[:, 0], count)
    flat = lists.ravel()
    if flat.min() >= 0:  # every row found all its lists: no copy of the flattened lists (rows x probes) needed
        order, probe_starts = _grouped(flat, count)
    else:  # -1: fewer lists found than asked (the grouped search's nearest groups)
        probed = np.flatnonzero(flat >= 0)
        order, probe_starts = _grouped(flat[probed], count)
        order = probed[order]
    probing = order // lists.shape[1]  # positions in the flattened lists -> the rows that probe each list
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = [
        (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32))
    ]
    held, dropped = 0, 0
    for number in range(count):
        found.append(
            _list_pairs(
                unit,
                members[member_starts[number] : member_starts[number + 1]],
                probing[probe_starts[number] : probe_starts[number + 1]],
                lists,
                threshold,
            )
        )
        held += len(found[-1][2])
        if held > 2 * max_pairs:  # bound the memory of a too-low threshold: keep the most similar
            a, b, s, left_out = most_similar(*_joined(found), max_pairs)
            found, held, dropped = [(a, b, s)], len(s), dropped + left_out
        if on_progress:
            on_progress(int(member_starts[number + 1]), total)
    a, b, s, left_out = most_similar(*_joined(found), max_pairs)
    return a.astype(np.int64), b.astype(np.int64), s.astype(np.float32), dropped + left_out
