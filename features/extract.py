"""The extract step: scan the dataset, reuse cached rows of unchanged files, run the backbone on the rest, write the store."""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .backbone import BACKBONE, FEATURE_DIM, WeightsIdentity, load_backbone, pick_device
from .config import ExtractConfig
from .folder import Dataset, ImageEntry, find_dataset, text_path
from .images import PREPROCESSINGS, FileStamp
from .lock import cache_lock
from .pipeline import ProgressCallback, embed_images
from .store import FEATURES_FILE, PARTIAL_SUFFIX, FeatureStore, Rows, StoreError, StoreWriter

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


@dataclass(frozen=True)
class _CachedRow:
    split: str
    row: int
    size: int
    mtime_ns: int
    sha256: str


def _sha256(path: Path) -> str | None:
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
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


def _open_previous(path: Path, header: dict) -> tuple[FeatureStore | None, str | None]:
    """The previous store when its rows can be reused, else None and the reason everything is extracted."""
    if not path.exists():
        return None, None
    try:
        store = FeatureStore(path)
    except StoreError as error:
        return None, f"the previous {path.name} is unreadable ({error})"
    reason = incompatibility(store.header, header)
    if reason:
        store.close()
        return None, reason
    return store, None


def _index(store: FeatureStore) -> dict[str, _CachedRow]:
    index = {}
    for split in store.splits:
        paths, sizes, mtimes_ns, sha256 = store.stamps(split)
        for row, name in enumerate(paths):
            index[name] = _CachedRow(split, row, int(sizes[row]), int(mtimes_ns[row]), sha256[row])
    return index


def _reusable(entry: ImageEntry, cached: _CachedRow | None) -> FileStamp | None:
    """The file's current stamp if its cached features still hold: same size and mtime, or same content."""
    if cached is None:
        return None
    try:
        stat = os.stat(entry.path)
    except OSError:
        return None
    if stat.st_size != cached.size:
        return None
    if stat.st_mtime_ns == cached.mtime_ns or _sha256(entry.path) == cached.sha256:
        return FileStamp(stat.st_size, stat.st_mtime_ns, cached.sha256)
    return None


def _computed(batches: Iterator) -> Iterator[tuple[FileStamp | None, str | None, np.ndarray | None]]:
    """Per entry, in order: its stamp, its error, its feature row."""
    for batch in batches:
        ok_rows = iter(batch.features)
        for stamp, error in zip(batch.stamps, batch.errors):
            yield stamp, error, (next(ok_rows) if error is None else None)


def _write_block(writer: StoreWriter, previous: FeatureStore | None, block: list) -> None:
    """block: (entry, stamp, feature row or _CachedRow); reads the cached rows in one go per split."""
    cached_features: dict[tuple[str, int], np.ndarray] = {}
    for split in {item[2].split for item in block if isinstance(item[2], _CachedRow)}:
        rows = sorted({item[2].row for item in block if isinstance(item[2], _CachedRow) and item[2].split == split})
        for row, feature in zip(rows, previous.read(split, np.asarray(rows)).features):
            cached_features[(split, row)] = feature
    features = [
        cached_features[(source.split, source.row)] if isinstance(source, _CachedRow) else source
        for _, _, source in block
    ]
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
    dataset = find_dataset(config.data)
    device = pick_device(config.device)
    backbone = load_backbone(config.weights, device, config.precision)
    header = _header(config, dataset, backbone.identity, torch.__version__, torchvision.__version__)
    path = Path(config.cache) / FEATURES_FILE
    summary = ExtractSummary(path, dataset.classes, backbone.identity, str(device), [], None, 0.0)
    with cache_lock(config.cache, "extract"):
        previous, summary.rebuild_reason = _open_previous(path, header)
        index = _index(previous) if previous else {}
        plans = {
            split: [(entry, _reusable(entry, index.get(entry.name))) for entry in entries]
            for split, entries in dataset.splits.items()
        }
        todo = [entry for plan in plans.values() for entry, stamp in plan if stamp is None]
        if on_start:
            on_start(summary)
        computed = _computed(embed_images(todo, backbone, PREPROCESSINGS[config.preprocess], config.batch_size,
                                          config.workers, on_progress))
        writer = StoreWriter(path, header, FEATURE_DIM, BLOCK_ROWS)
        try:
            for split, plan in plans.items():
                summary.splits.append(_write_split(writer, split, plan, index, previous, computed))
            writer.commit()
        except BaseException:
            writer.abandon()
            raise
        finally:
            if previous:
                previous.close()
    summary.seconds = time.perf_counter() - started
    return summary


def _write_split(writer: StoreWriter, split: str, plan: list, index: dict, previous: FeatureStore | None,
                 computed: Iterator) -> SplitSummary:
    summary = SplitSummary(split, found=len(plan))
    writer.begin_split(split)
    block = []
    for entry, stamp in plan:
        if stamp is not None:
            block.append((entry, stamp, index[entry.name]))
            summary.reused += 1
        else:
            stamp, error, feature = next(computed)
            if error is not None:
                summary.skipped.append((entry.name, error))
                continue
            block.append((entry, stamp, feature))
            summary.extracted += 1
        if len(block) == BLOCK_ROWS:
            _write_block(writer, previous, block)
            block = []
    _write_block(writer, previous, block)
    writer.end_split(summary.skipped)
    return summary
