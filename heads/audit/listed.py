"""The rows of a streamed audit as the writer and the page read them, without a Python string for every row.

heads/audit/rows.py's CachedRows holds every row's path and hash (about 200 bytes a row); above the in-memory
limit (features/chunks.py) the streamed audit (heads/audit/streamed.py) keeps every row's label (8 bytes) and
reads the paths and hashes of the rows it lists only, once it knows them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from headstart.features import FeaturesHeader, FeatureStore

READ_ROWS = 4096  # listed rows whose paths and hashes one read fetches


class SplitColumn:
    """Each row's split from the splits' row ranges (train first), as CachedRows.split gives it; iterating it gives
    the splits that hold rows (what `set(rows.split)` asks)."""

    def __init__(self, names: list[str], counts: list[int]):
        self.names, self.counts = names, counts
        self.ends = np.cumsum(counts)

    def __getitem__(self, row):
        found = np.searchsorted(self.ends, row, side="right")
        return np.asarray(self.names)[found] if np.ndim(row) else self.names[int(found)]

    def __iter__(self) -> Iterator[str]:
        return iter([name for name, count in zip(self.names, self.counts) if count])

    def start(self, split: str) -> int:
        """The first row number of a split."""
        index = self.names.index(split)
        return int(self.ends[index]) - self.counts[index]


class ListedColumn(dict):
    """A text column of the listed rows only, by row number: reading another row is a KeyError, not a silent gap."""

    def __getitem__(self, row) -> str:
        return super().__getitem__(int(row))


@dataclass
class ListedRows:
    """Rows of all splits in file order (train first), every row's label and split, the listed rows' paths and
    hashes: what write_audit and the page read of CachedRows."""

    labels: np.ndarray  # int64 (N,)
    split: SplitColumn
    paths: ListedColumn
    sha256: ListedColumn
    classes: list[str]
    data_root: Path
    header: FeaturesHeader
    label_sets: None = None  # single-label only: multi-label features above the limit refuse

    def __len__(self) -> int:
        return len(self.labels)

    def where(self, split: str) -> np.ndarray:
        """Row numbers of a split."""
        if split not in self.split.names:
            return np.zeros(0, np.int64)
        start = self.split.start(split)
        return np.arange(start, start + self.split.counts[self.split.names.index(split)])

    @property
    def counts(self) -> dict[str, int]:
        """Rows per split."""
        return {name: count for name, count in zip(self.split.names, self.split.counts) if count}

    def read_listed(self, store: FeatureStore, rows: np.ndarray) -> None:
        """Read the paths and hashes of `rows` (row numbers), checked as every read is, READ_ROWS at a time."""
        rows = np.unique(rows)
        found = np.searchsorted(self.split.ends, rows, side="right")
        for index, name in enumerate(self.split.names):
            local = rows[found == index] - self.split.start(name)
            for first in range(0, len(local), READ_ROWS):
                part = local[first : first + READ_ROWS]
                paths, _, _, digests = store.stamps(name, part)  # increasing row numbers: h5py reads them alone
                offset = self.split.start(name)
                self.paths.update(zip((part + offset).tolist(), paths))
                self.sha256.update(zip((part + offset).tolist(), digests))


def layout(store: FeatureStore) -> ListedRows:
    """Every labelled row's label and split (train first, then the other splits sorted), no path or hash yet."""
    names = ["train", *sorted(split for split in store.labelled_splits if split != "train")]
    counts = [store.count(name) if name in store.splits else 0 for name in names]
    labels = np.concatenate(
        [store.labels(name) if count else np.zeros(0, np.int64) for name, count in zip(names, counts)]
    )
    if not counts[0]:
        raise ValueError(f"{store.path} has no training rows: check the dataset and re-run `extract`")
    header = store.header
    return ListedRows(
        labels,
        SplitColumn(names, counts),
        ListedColumn(),
        ListedColumn(),
        list(header.classes),
        Path(header.data_root),
        header,
    )
