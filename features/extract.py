"""The extract step: scan the dataset, reuse cached rows of unchanged files, run the backbone on the rest, write the store."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .backbone import BACKBONE, FEATURE_DIM, WeightsIdentity, file_sha256, load_backbone
from .config import ExtractConfig
from .folder import Dataset, ImageEntry, find_dataset, text_path
from .images import PREPROCESSINGS, FileStamp
from .lock import cache_lock
from .pipeline import ProgressCallback, choose_embedder, driver_device
from .store import FEATURES_FILE, FeatureStore, Rows, StoreError, StoreWriter, partial_files

BLOCK_ROWS = 256


@dataclass
class SplitSummary:
    split: str
    found: int = 0
    extracted: int = 0
    reused: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.found - len(self.skipped)


@dataclass
class ExtractSummary:
    path: Path
    classes: list[str]
    weights: WeightsIdentity
    device: str
    splits: list[SplitSummary]
    rebuild_reason: str | None
    seconds: float
    resumed: int = 0


@dataclass(frozen=True)
class _CachedRow:
    source: int
    split: str
    row: int
    size: int
    mtime_ns: int
    sha256: str


def _sha256(path: Path) -> str | None:
    try:
        return file_sha256(path)
    except OSError:
        return None


def _header(config: ExtractConfig, dataset: Dataset, weights: WeightsIdentity, torch_version: str,
            torchvision_version: str) -> dict:
    from . import __version__

    return {
        "producer": f"headstart {__version__}",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "classes": dataset.classes,
        "backbone": BACKBONE,
        "weights": weights.to_dict(),
        "preprocessing": PREPROCESSINGS[config.preprocess].describe(),
        "precision": config.precision,
        "data_root": text_path(dataset.root.resolve()),
        "torch_version": torch_version,
        "torchvision_version": torchvision_version,
    }


def incompatibility(old: dict, new: dict) -> str | None:
    """Why features recorded under header `old` cannot stand for features computed under `new`, or None."""
    old_weights, new_weights = WeightsIdentity.from_dict(old["weights"]), WeightsIdentity.from_dict(new["weights"])
    if old.get("backbone") != new["backbone"]:
        return f"backbone changed ({old.get('backbone')} -> {new['backbone']})"
    if not old_weights.same_weights(new_weights):
        return f"weights changed ({old_weights.describe()} -> {new_weights.describe()})"
    if old.get("preprocessing") != new["preprocessing"]:
        return f"preprocessing changed ({old['preprocessing'].get('name')} -> {new['preprocessing']['name']})"
    if old.get("precision") != new["precision"]:
        return f"precision changed ({old.get('precision')} -> {new['precision']})"
    return None


class _PreviousRows:
    """Rows computed before that may be reused: the last complete features file and interrupted runs' partials."""

    def __init__(self, path: Path, header: dict):
        self.stores: list[FeatureStore] = []
        self.rebuild_reason: str | None = None
        self.resumed_from: list[Path] = []
        self._candidates: dict[str, list[_CachedRow]] = {}
        if path.exists():
            self.rebuild_reason = self._add(path, header)
        for partial in partial_files(path):
            if self._add(partial, header) is None:
                self.resumed_from.append(partial)

    def _add(self, path: Path, header: dict) -> str | None:
        """Index a store's rows if they can stand for rows computed under header; else why not."""
        try:
            store = FeatureStore(path)
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
        return None

    @staticmethod
    def _rows_of(store: FeatureStore, source: int) -> dict[str, list[_CachedRow]]:
        found: dict[str, list[_CachedRow]] = {}
        for split in store.splits:
            paths, sizes, mtimes_ns, sha256 = store.stamps(split)
            for row, name in enumerate(paths):
                cached = _CachedRow(source, split, row, int(sizes[row]), int(mtimes_ns[row]), sha256[row])
                found.setdefault(name, []).append(cached)
        return found

    def reusable(self, entry: ImageEntry) -> tuple[_CachedRow, FileStamp] | None:
        """A cached row whose file is unchanged (same size and mtime, or same content), with the file's stamp."""
        candidates = self._candidates.get(entry.name)
        if not candidates:
            return None
        try:
            stat = os.stat(entry.path)
        except OSError:
            return None
        same_size = [cached for cached in candidates if cached.size == stat.st_size]
        for cached in same_size:
            if cached.mtime_ns == stat.st_mtime_ns:
                return cached, FileStamp(stat.st_size, stat.st_mtime_ns, cached.sha256)
        content = _sha256(entry.path) if same_size else None
        for cached in same_size:
            if cached.sha256 == content:
                return cached, FileStamp(stat.st_size, stat.st_mtime_ns, cached.sha256)
        return None

    def features(self, rows: list[_CachedRow]) -> dict[_CachedRow, np.ndarray]:
        """Feature rows, read in one go per store and split."""
        found = {}
        for source, split in {(row.source, row.split) for row in rows}:
            wanted = sorted({row for row in rows if (row.source, row.split) == (source, split)}, key=lambda r: r.row)
            numbers = np.asarray([row.row for row in wanted])
            found.update(zip(wanted, self.stores[source].read(split, numbers).features))
        return found

    def close(self) -> None:
        for store in self.stores:
            store.close()


def _computed(batches: Iterator) -> Iterator[tuple[FileStamp | None, str | None, np.ndarray | None, bool]]:
    """Per entry, in order: its stamp, its error, its feature row, and whether it ends its batch."""
    for batch in batches:
        ok_rows = iter(batch.features)
        last = len(batch.entries) - 1
        for position, (stamp, error) in enumerate(zip(batch.stamps, batch.errors)):
            yield stamp, error, (next(ok_rows) if error is None else None), position == last


def _write_block(writer: StoreWriter, previous: _PreviousRows, block: list) -> None:
    """block: (entry, stamp, feature row or _CachedRow), in file order."""
    cached = previous.features([source for _, _, source in block if isinstance(source, _CachedRow)])
    features = [cached[source] if isinstance(source, _CachedRow) else source for _, _, source in block]
    writer.append(Rows(
        np.stack(features).astype(np.float32) if features else np.zeros((0, FEATURE_DIM), np.float32),
        np.asarray([entry.label for entry, _, _ in block], np.int64),
        [entry.name for entry, _, _ in block],
        np.asarray([stamp.size for _, stamp, _ in block], np.int64),
        np.asarray([stamp.mtime_ns for _, stamp, _ in block], np.int64),
        [stamp.sha256 for _, stamp, _ in block],
    ))


def extract_features(config: ExtractConfig, on_progress: ProgressCallback | None = None,
                     on_start: Callable[[ExtractSummary], None] | None = None) -> ExtractSummary:
    """Write config.cache/features.h5 for the dataset in config.data; return what was done."""
    import torch
    import torchvision

    started = time.perf_counter()
    embed = choose_embedder(config.engine, config.device, config.address)
    dataset = find_dataset(config.data)
    local = config.engine == "local"
    device = driver_device(config.engine, config.device)
    backbone = load_backbone(config.weights, device, config.precision)
    header = _header(config, dataset, backbone.identity, torch.__version__, torchvision.__version__)
    path = Path(config.cache) / FEATURES_FILE
    summary = ExtractSummary(path, dataset.classes, backbone.identity, str(device) if local else
                             f"ray, device {config.device}", [], None, 0.0)
    with cache_lock(config.cache, "extract"):
        previous = _PreviousRows(path, header)
        embedded = None
        try:
            summary.rebuild_reason = previous.rebuild_reason
            summary.resumed = len(previous.resumed_from)
            plans = {
                split: [(entry, previous.reusable(entry)) for entry in entries]
                for split, entries in dataset.splits.items()
            }
            todo = [entry for plan in plans.values() for entry, reuse in plan if reuse is None]
            if on_start:
                on_start(summary)
            embedded = embed(todo, backbone, PREPROCESSINGS[config.preprocess], config.batch_size, config.workers,
                             on_progress)
            computed = _computed(embedded)
            writer = StoreWriter(path, header, FEATURE_DIM, BLOCK_ROWS)
            try:
                for split, plan in plans.items():
                    summary.splits.append(_write_split(writer, split, plan, previous, computed))
                writer.commit()
            except Exception:
                writer.abandon()
                raise
            except BaseException:
                writer.keep_partial()  # interrupted: the next run resumes from what this one finished
                raise
        finally:
            if embedded is not None:
                embedded.close()  # stops the decoding workers (or the Ray pipeline) whatever ended the run
            previous.close()
        for partial in partial_files(path):  # resumed from, or unusable: the complete file supersedes them all
            partial.unlink(missing_ok=True)
    summary.seconds = time.perf_counter() - started
    return summary


def _write_split(writer: StoreWriter, split: str, plan: list, previous: _PreviousRows,
                 computed: Iterator) -> SplitSummary:
    summary = SplitSummary(split, found=len(plan))
    writer.begin_split(split)
    block = []
    for entry, reuse in plan:
        batch_done = False
        if reuse is not None:
            cached, stamp = reuse
            block.append((entry, stamp, cached))
            summary.reused += 1
        else:
            stamp, error, feature, batch_done = next(computed)
            if error is not None:
                summary.skipped.append((entry.name, error))
            else:
                block.append((entry, stamp, feature))
                summary.extracted += 1
        # Each computed batch reaches the disk at once, so an interrupted run loses at most one batch.
        if len(block) == BLOCK_ROWS or batch_done:
            _write_block(writer, previous, block)
            block = []
    _write_block(writer, previous, block)
    writer.end_split(summary.skipped)
    return summary
