"""The duplicates of a streamed audit (heads/audit/streamed.py): exact pairs from the hash column read a chunk at a
time, near pairs over the whitened rows (32 floats a row) as heads/audit/duplicates.py finds them.

Exact pairs: every row's hash is reduced to its first 8 bytes (a uint64, 8 bytes a row) a chunk of hashes at a
time; the rows sharing a prefix are the only candidates, and their full hashes are read back to confirm them, so
no Python string is held for every row. Near pairs: the whitening is fitted on the streamed audit's sample (as
below the limit on at most WHITEN_SAMPLE_ROWS train rows), every row's 32-d projection is held, in float16 where the
lists search it (64 bytes a row: docs/scale.md; each block compared is cast back to float32), and searched by the
same functions as below the limit.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from headstart.features.chunks import COLUMN_CHUNK_ROWS
from headstart.features.store import FeatureStore
from headstart.heads.audit.duplicates import Pairs, combine_pairs, near_pairs
from headstart.heads.audit.listed import ListedRows

PREFIX_HEX = 16  # hex digits of a hash compared first (8 bytes)


def hash_prefixes(store: FeatureStore, rows: ListedRows) -> np.ndarray:
    """Every row's hash's first 8 bytes as a uint64, the hashes read (and checked) a chunk at a time."""
    prefixes = np.empty(len(rows), np.uint64)
    for name, count in zip(rows.split.names, rows.split.counts):
        offset = rows.split.start(name)
        for start in range(0, count, COLUMN_CHUNK_ROWS):
            digests = store.digests(name, slice(start, min(count, start + COLUMN_CHUNK_ROWS)))
            joined = bytes.fromhex("".join(digest[:PREFIX_HEX] for digest in digests))
            prefixes[offset + start : offset + start + len(digests)] = np.frombuffer(joined, ">u8")
    return prefixes


def streamed_exact_pairs(store: FeatureStore, rows: ListedRows) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of rows whose files have the same content hash, a < b, as exact_pairs gives them."""
    prefixes = hash_prefixes(store, rows)
    order = np.argsort(prefixes, kind="stable")
    same = prefixes[order][1:] == prefixes[order][:-1]
    del prefixes
    candidates = np.unique(np.concatenate([order[1:][same], order[:-1][same]]))
    del order
    probe = ListedRows(
        rows.labels, rows.split, type(rows.paths)(), type(rows.sha256)(), [], rows.data_root, rows.header
    )
    probe.read_listed(store, candidates)
    groups: dict[str, list[int]] = defaultdict(list)
    for row in candidates.tolist():  # increasing: each group's rows in file order
        groups[probe.sha256[row]].append(row)
    pairs = [(a, b) for members in groups.values() for i, a in enumerate(members) for b in members[i + 1 :]]
    array = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    return array[:, 0], array[:, 1]


def _unique(found: list, max_pairs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The pairs found, each once (a pair is found from both rows' sides when each probes the other's list), at
    most max_pairs of them (the most similar) and how many more."""
    from headstart.features.neighbours.pairs import most_similar

    a, b, s = (np.concatenate(column) for column in zip(*found))
    _, first = np.unique(np.stack([a, b]), axis=1, return_index=True)
    return most_similar(a[first], b[first], s[first], max_pairs)


FIND_ROWS = 65_536  # rows whose nearest lists are looked up together
# (row, probed list) pairs grouped at a time: the lists are taken in ranges holding about this many
HITS_PER_RANGE = 1 << 23


def _probe_table(unit: np.ndarray, find, count: int, probes: int) -> np.ndarray:
    """Each row's `probes` nearest lists as 2-byte integers (4 above 65,535 lists), FIND_ROWS rows looked up at a
    time; `count` where fewer lists were found than asked."""
    table = np.empty((len(unit), probes), np.uint16 if count < 1 << 16 else np.int32)
    for first in range(0, len(unit), FIND_ROWS):
        found = find(unit[first : first + FIND_ROWS].astype(np.float32, copy=False))
        table[first : first + FIND_ROWS] = np.where(found >= 0, found, count)
    return table


def list_pairs(
    unit: np.ndarray, sample_unit: np.ndarray, threshold: float, max_pairs: int, on_progress=None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Pairs a < b of unit-length rows with unit[a] . unit[b] >= threshold, each row compared with the rows of its
    PROBES nearest lists (as indexed_pairs), the lists a range at a time; at most max_pairs (the most similar) and
    how many more. Beyond `unit`, a row costs its PROBES list numbers as 2-byte integers (4 above 65,535 lists), its
    list number and its place in the lists' order, not the int64 lists and their sorting of indexed_pairs."""
    from headstart.features.neighbours.pairs import LIST_ROWS, PROBES, list_centres, list_finder

    centres = list_centres(sample_unit, lists=max(1, len(unit) // LIST_ROWS))
    count = len(centres)
    probes = _probe_table(unit, list_finder(centres, PROBES), count, min(PROBES, count))
    own = probes[:, 0].astype(np.int32)
    order = np.argsort(own, kind="stable")
    starts = np.concatenate([[0], np.cumsum(np.bincount(own, minlength=count + 1))])
    del own
    found: list = [(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32))]
    held, dropped = 0, 0
    per_range = max(1, HITS_PER_RANGE * count // max(1, probes.size))
    for low in range(0, count, per_range):
        high = min(count, low + per_range)
        hits = np.concatenate(  # positions in the flattened probes, a column at a time: no (rows, probes) mask
            [
                np.flatnonzero((probes[:, column] >= low) & (probes[:, column] < high)) * probes.shape[1] + column
                for column in range(probes.shape[1])
            ]
        )
        keys = probes.ravel()[hits]
        by_list = np.argsort(keys, kind="stable")
        hits, keys = hits[by_list], keys[by_list]
        bounds = np.searchsorted(keys, np.arange(low, high + 1))
        for number in range(low, high):
            queries = hits[bounds[number - low] : bounds[number - low + 1]] // probes.shape[1]
            members = order[starts[number] : starts[number + 1]]
            if not len(queries) or not len(members):
                continue
            similarity = unit[queries].astype(np.float32, copy=False) @ unit[members].astype(np.float32, copy=False).T
            local_q, local_m = np.nonzero(similarity >= threshold)
            q, m = queries[local_q], members[local_m]
            keep = q != m
            found.append((np.minimum(q, m)[keep], np.maximum(q, m)[keep], similarity[local_q[keep], local_m[keep]]))
            held += int(keep.sum())
            if held > 2 * max_pairs:  # bound the memory of a too-low threshold: keep the most similar
                a, b, s, left_out = _unique(found, max_pairs)
                found, held, dropped = [(a, b, s)], len(s), dropped + left_out
        if on_progress:
            on_progress(int(starts[high]), len(unit))
    a, b, s, left_out = _unique(found, max_pairs)
    return a.astype(np.int64), b.astype(np.int64), s.astype(np.float32), dropped + left_out


def streamed_pairs(
    store: FeatureStore,
    rows: ListedRows,
    unit: np.ndarray,
    sample_unit: np.ndarray,
    exact: tuple[np.ndarray, np.ndarray],
    threshold: float,
    max_pairs: int,
    index_min_rows: int,
    on_progress=None,
) -> Pairs:
    """The exact pairs (streamed_exact_pairs) and the near pairs over every row, each once, in find_duplicates'
    order; `unit` is every row whitened, `sample_unit` the sample's rows whitened (what the lists are fitted on)."""
    from headstart.features.neighbours.index import use_index

    exact_a, exact_b = exact
    if use_index(len(unit), index_min_rows):
        near = list_pairs(unit, sample_unit, threshold, max_pairs, on_progress)
    else:
        near = near_pairs(unit, threshold, max_pairs=max_pairs, on_progress=on_progress)
    # combine_pairs on the rows involved only (their hashes read back), the row numbers mapped back after
    involved = np.unique(np.concatenate([exact_a, exact_b, near[0], near[1]]))
    local = {name: np.searchsorted(involved, values) for name, values in (("ea", exact_a), ("eb", exact_b))}
    near_a, near_b = np.searchsorted(involved, near[0]), np.searchsorted(involved, near[1])
    probe = ListedRows(
        rows.labels, rows.split, type(rows.paths)(), type(rows.sha256)(), [], rows.data_root, rows.header
    )
    probe.read_listed(store, involved)
    digests = [probe.sha256[row] for row in involved.tolist()]
    split = rows.split[involved] if len(involved) else np.zeros(0, str)
    pairs = combine_pairs(
        unit[involved].astype(np.float32, copy=False),
        digests,
        split,
        (local["ea"], local["eb"]),
        (near_a, near_b, *near[2:]),
    )
    pairs.a, pairs.b = involved[pairs.a], involved[pairs.b]
    return pairs
