"""The incremental cache: which previous rows stand for the files scanned now, so only new or changed ones are run.

The previous rows are those of the last complete features file, of interrupted runs' partial files and of the shards
an interrupted `--engine ray` run's workers completed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from headstart.features.backbone import file_sha256
from headstart.features.files.regular import UnsafeFileError
from headstart.features.folder import ImageEntry
from headstart.features.images import FileStamp, stored_mtime_ns
from headstart.features.store import FeaturesHeader, FeatureStore, StoreBusyError, StoreError, partial_files


@dataclass(frozen=True)
class CachedRow:
    """A row of a previous store (stores[source]) and the stamp of the file it was computed from."""

    source: int
    split: str
    row: int
    size: int
    mtime_ns: int
    sha256: str
    class_name: str = ""  # the label the row was stored with, by name ("" unlabeled): counts relabelled rows


# Per scanned entry: the cached row that stands for it with the file's current stamp, or None to compute it.
Reuse = tuple[CachedRow, FileStamp] | None


@dataclass
class ReusePlan:
    """Per split, every scanned entry with its reuse (None: to compute), in scan order."""

    splits: dict[str, list[tuple[ImageEntry, Reuse]]] = field(default_factory=dict)

    @property
    def todo(self) -> list[ImageEntry]:
        """The entries the engine must compute, in scan order."""
        return [entry for plan in self.splits.values() for entry, reuse in plan if reuse is None]


def incompatibility(old: FeaturesHeader, new: FeaturesHeader) -> str | None:
    """Why features recorded under header `old` cannot stand for features computed under `new`, or None."""
    if old.backbone != new.backbone:
        return f"backbone changed ({old.backbone} -> {new.backbone})"
    if not old.weights.same_weights(new.weights):
        return f"weights changed ({old.weights.describe()} -> {new.weights.describe()})"
    if old.preprocessing != new.preprocessing:
        return f"preprocessing changed ({old.preprocessing.name} -> {new.preprocessing.name})"
    if old.precision != new.precision:
        return f"precision changed ({old.precision} -> {new.precision})"
    return None


def _sha256(path: Path) -> str | None:
    try:
        return file_sha256(path)
    except OSError:
        return None


def _damaged_rows(store: FeatureStore, split: str, count: int, step: int = 256) -> np.ndarray:
    """A mask of the rows whose stored checksums no longer match, found by reading the split a block at a time (a
    block spanning a spoiled chunk fails as a whole). Files from before the checksums have none to fail."""
    damaged = np.zeros(count, bool)
    for start in range(0, count, step):
        try:
            store.read(split, slice(start, start + step))
        except StoreError:
            damaged[start : start + step] = True
    return damaged


class PreviousRows:
    """Rows computed before that may be reused: the last complete features file and interrupted runs' partials."""

    def __init__(self, path: Path, header: FeaturesHeader, shards: list[Path] | None = None):
        """path's complete file and partial files, and shards: files of the same format a cluster's workers wrote
        (features/engines/shards.py, already checked against their manifest)."""
        self.stores: list[FeatureStore] = []
        self.rebuild_reason: str | None = None
        self.resumed_from: list[Path] = []
        self._candidates: dict[str, list[CachedRow]] = {}
        self._by_content: dict[str, CachedRow] = {}  # an image moved or renamed keeps its features
        self._partial_sources: set[int] = set()
        if path.exists():
            self.rebuild_reason = self._add(path, header)
        self.resumed_shards = 0
        for shard in shards or ():
            if self._add(shard, header) is None:
                self._partial_sources.add(len(self.stores) - 1)
                self.resumed_shards += 1
        for partial in partial_files(path):
            try:
                if self._add(partial, header) is None:
                    self._partial_sources.add(len(self.stores) - 1)
                    self.resumed_from.append(partial)
            except (StoreBusyError, UnsafeFileError):  # held by a killed run's lingering worker, or a pipe: not
                pass  # resumed from, and removed with the other partial files at the end

    def _add(self, path: Path, header: FeaturesHeader) -> str | None:
        """Index a store's rows if they can stand for rows computed under header; else why not. A file another
        program holds open (StoreBusyError) or a pipe (UnsafeFileError) is not damage: it is not replaced."""
        try:
            store = FeatureStore(path)
        except StoreBusyError:
            raise
        except StoreError as error:
            return f"the previous {path.name} is unreadable ({error})"
        try:
            reason = incompatibility(store.header, header)
            found = {} if reason else self._rows_of(store, source=len(self.stores))
        except (StoreError, KeyError, TypeError, ValueError) as error:
            reason = f"the previous {path.name} is damaged ({error})"
        if reason:
            store.close()
            return reason
        self.stores.append(store)
        for name, rows in found.items():
            self._candidates.setdefault(name, []).extend(rows)
            self._by_content.update((row.sha256, row) for row in rows)
        return None

    @staticmethod
    def _rows_of(store: FeatureStore, source: int) -> dict[str, list[CachedRow]]:
        found: dict[str, list[CachedRow]] = {}
        for split in store.splits:
            paths, sizes, mtimes_ns, sha256 = store.stamps(split)
            classes = store.header.classes
            names = [classes[label] if 0 <= label < len(classes) else "" for label in store.labels(split).tolist()]
            damaged = _damaged_rows(store, split, len(paths))  # computed again, never copied
            for row, name in enumerate(paths):
                if damaged[row]:
                    continue
                cached = CachedRow(source, split, row, int(sizes[row]), int(mtimes_ns[row]), sha256[row], names[row])
                found.setdefault(name, []).append(cached)
        return found

    def plan(self, splits: dict[str, list[ImageEntry]]) -> ReusePlan:
        """What to reuse and what to compute for the scanned splits."""
        return ReusePlan(
            {split: [(entry, self.reusable(entry)) for entry in entries] for split, entries in splits.items()}
        )

    def reusable(self, entry: ImageEntry) -> Reuse:
        """A cached row whose file is unchanged (same size and mtime, or same content), with the file's stamp; a
        file under a name the cache does not hold (moved to another class folder, renamed) is found by its content."""
        candidates = self._candidates.get(entry.name)
        try:
            stat = os.stat(entry.path)
        except OSError:
            return None
        mtime_ns = stored_mtime_ns(stat.st_mtime_ns)
        if not candidates:
            moved = self._by_content.get(_sha256(entry.path) or "") if self._by_content else None
            return (moved, FileStamp(stat.st_size, mtime_ns, moved.sha256)) if moved else None
        same_size = [cached for cached in candidates if cached.size == stat.st_size]
        for cached in same_size:
            if cached.mtime_ns == mtime_ns:
                return cached, FileStamp(stat.st_size, mtime_ns, cached.sha256)
        content = _sha256(entry.path) if same_size else None
        for cached in same_size:
            if cached.sha256 == content:
                return cached, FileStamp(stat.st_size, mtime_ns, cached.sha256)
        return None

    def resumed_rows(self, plan: ReusePlan) -> int:
        """How many of the plan's reused rows come from interrupted runs' partial files."""
        return sum(
            1
            for entries in plan.splits.values()
            for _, reuse in entries
            if reuse is not None and reuse[0].source in self._partial_sources
        )

    def features(self, rows: list[CachedRow]) -> dict[CachedRow, np.ndarray]:
        """Feature rows, read in one go per store and split."""
        found: dict[CachedRow, np.ndarray] = {}
        for source, split in {(row.source, row.split) for row in rows}:
            wanted = sorted({row for row in rows if (row.source, row.split) == (source, split)}, key=lambda r: r.row)
            numbers = np.asarray([row.row for row in wanted])
            found.update(zip(wanted, self.stores[source].read(split, numbers).features))
        return found

    def close(self) -> None:
        for store in self.stores:
            store.close()
