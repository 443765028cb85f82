"""Shards: the rows a cluster's workers write themselves, one file per block, and the manifest that vouches for each.

    CACHE/<features file>.shards/              (its name: features/files/cachedir.py)
        shard-<run>-<first>.h5                 a features file (features/store.py's format and header, its
                                               rows' splits as groups, each with its `skipped` attribute)
        shard-<run>-<first>.json               its manifest entry, written after the shard is complete:
            format_version   int, MANIFEST_VERSION
            shard            the shard's file name
            rows             rows written (skipped files not counted)
            skipped          files of the block that could not be decoded
            sha256           hex digest of the shard file
            producer, run, created, backbone, weights_sha256    what wrote it, in which run, when, with what

A shard counts only with its manifest entry and a file whose size and sha256 match it; anything else in the
folder (a shard without an entry, an entry without its shard or that does not match, a half-written file) is
discarded before the next extract resumes from the shards that count. The driver merges the shards into the one
features file a shard at a time (features/merge.py through EmbeddedBatches) and then removes the folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from headstart.features.backbone import file_sha256
from headstart.features.engines.batches import EmbeddedBatch, ShardReport, ShardTarget
from headstart.features.files.atomic import atomic_write
from headstart.features.files.cachedir import MANIFEST_SUFFIX, SHARD_PREFIX, SHARD_SUFFIX, shards_folder
from headstart.features.folder import ImageEntry
from headstart.features.images import FileStamp
from headstart.features.sources.multilabel import label_matrix
from headstart.features.store import FeaturesHeader, FeatureStore, Rows, StoreError, StoreWriter

MANIFEST_VERSION = 1
MANIFEST_BYTES = 64 << 10  # an entry is a few hundred bytes; anything far larger is not one
_SHARD_NAME = re.compile(rf"^{re.escape(SHARD_PREFIX)}[0-9a-f]+-\d+{re.escape(SHARD_SUFFIX)}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
CACHED_SHARDS = 4  # shards the read-back keeps open at once: blocks finish about in order


class ShardError(ValueError):
    """A shard or manifest entry that cannot be used; the message names the file."""


@dataclass(frozen=True)
class ShardEntry:
    """A manifest entry: one complete shard and what vouches for it."""

    shard: str
    rows: int
    skipped: int
    sha256: str
    producer: str
    run: str
    created: str
    backbone: str
    weights_sha256: str
    format_version: int = MANIFEST_VERSION

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: object) -> ShardEntry:
        """An entry read from a file, checked field by field; anything else is a ShardError."""
        if not isinstance(values, dict) or values.get("format_version") != MANIFEST_VERSION:
            raise ShardError(f"not a manifest entry of format {MANIFEST_VERSION}")
        texts = ("shard", "sha256", "producer", "run", "created", "backbone", "weights_sha256")
        if set(values) != {*texts, "rows", "skipped", "format_version"} or not all(
            isinstance(values[name], str) for name in texts
        ):
            raise ShardError("a manifest entry's fields are missing or of the wrong type")
        if not all(type(values[name]) is int and values[name] >= 0 for name in ("rows", "skipped")):
            raise ShardError("a manifest entry's row counts are not counts")
        if not _SHARD_NAME.match(values["shard"]) or not _HEX64.match(values["sha256"]):
            raise ShardError("a manifest entry's shard name or sha256 is malformed")
        return cls(**values)


def new_target(features: Path, header: FeaturesHeader, splits: list[str], report: ShardReport) -> ShardTarget:
    """A target for this run: the shards folder beside features (made by the first shard), the header, a fresh run
    id; what the run does with shards is counted in report."""
    folder = shards_folder(features)
    run = f"{os.getpid():x}{os.urandom(4).hex()}"
    return ShardTarget(str(folder), header.to_dict(), run, tuple(splits), report)


def _entries(batch: dict[str, np.ndarray]) -> list[ImageEntry]:
    sets = [json.loads(text) if text else None for text in batch["label_set"]]
    return [
        ImageEntry(Path(os.fsdecode(path)), str(name), int(label), tuple(found) if found is not None else None)
        for path, name, label, found in zip(batch["path"], batch["name"], batch["label"], sets)
    ]


def write_shard(batch: dict[str, np.ndarray], folder: str, header: dict, run: str) -> dict[str, np.ndarray]:
    """A worker's block -> its shard file and manifest entry; what goes back to the driver is the block's row
    indices and the shard's name, no feature rows."""
    values = FeaturesHeader.from_dict(header)
    Path(folder).mkdir(exist_ok=True)
    entries, ok = _entries(batch), batch["ok"]
    name = f"{SHARD_PREFIX}{run}-{int(batch['index'][0]):09d}{SHARD_SUFFIX}"
    path = Path(folder) / name
    features, label_count = batch["features"], len(values.classes) if values.multi_label else 0
    with StoreWriter(path, values, features.shape[1], chunk_rows=max(1, min(256, len(entries)))) as writer:
        for split in dict.fromkeys(batch["split"]):  # the block's splits, in order (a block is in scan order)
            rows = [row for row in range(len(entries)) if batch["split"][row] == split]
            good = [row for row in rows if ok[row]]
            writer.begin_split(str(split))
            writer.append(
                Rows(
                    features[good],
                    np.asarray([entries[row].label for row in good], np.int64),
                    [entries[row].name for row in good],
                    batch["size"][good].astype(np.int64),
                    batch["mtime_ns"][good].astype(np.int64),
                    [str(batch["sha256"][row]) for row in good],
                    label_matrix([entries[row] for row in good], label_count) if label_count else None,
                )
            )
            writer.end_split([(entries[row].name, str(batch["error"][row])) for row in rows if not ok[row]])
        writer.commit()
    entry = ShardEntry(
        name,
        int(ok.sum()),
        int((~ok).sum()),
        file_sha256(path),
        values.producer,
        run,
        datetime.now(UTC).isoformat(timespec="seconds"),
        values.backbone,
        values.weights.sha256,
    )
    with atomic_write(path.with_suffix(MANIFEST_SUFFIX), "w", result=False, encoding="utf-8") as out:
        json.dump(entry.to_dict(), out)
    return {"index": batch["index"], "shard": np.asarray([name] * len(entries), object)}


def _entry_of(manifest: Path) -> ShardEntry:
    """A manifest file read as untrusted input: size-capped, JSON, checked fields, naming its own shard."""
    if not manifest.is_file() or manifest.is_symlink() or manifest.stat().st_size > MANIFEST_BYTES:
        raise ShardError(f"{manifest} is not a manifest entry file")
    try:
        entry = ShardEntry.from_dict(json.loads(manifest.read_text(encoding="utf-8")))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ShardError(f"{manifest} is not JSON ({error})") from None
    if manifest.with_suffix(SHARD_SUFFIX).name != entry.shard:
        raise ShardError(f"{manifest} vouches for another shard ({entry.shard})")
    return entry


def _checks(folder: Path, entry: ShardEntry) -> bool:
    """Whether the shard entry names exists as a regular file with the entry's sha256."""
    shard = folder / entry.shard
    return shard.is_file() and not shard.is_symlink() and file_sha256(shard) == entry.sha256


def complete_shards(features: Path) -> tuple[list[Path], int]:
    """The shards beside features that count (their entry checks, their file matches it), and how many files were
    discarded: everything else in the folder is removed, so a resumed run starts from what is vouched for."""
    folder = shards_folder(features)
    if not folder.is_dir() or folder.is_symlink():
        return [], 0
    kept: list[Path] = []
    for manifest in sorted(folder.glob(f"{SHARD_PREFIX}*{MANIFEST_SUFFIX}")):
        try:
            entry = _entry_of(manifest)
        except (ShardError, OSError):
            continue
        if _checks(folder, entry):
            kept.append(folder / entry.shard)
    keep = {path.name for path in kept} | {path.with_suffix(MANIFEST_SUFFIX).name for path in kept}
    discarded = 0
    for path in sorted(folder.iterdir()):
        if path.name not in keep:
            discarded += path.name.endswith(SHARD_SUFFIX)
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink(missing_ok=True)
    return kept, discarded


def remove_shards(features: Path) -> None:
    """The shards folder beside features, gone: its rows are in the complete features file now."""
    folder = shards_folder(features)
    if folder.is_symlink():
        folder.unlink()
    elif folder.is_dir():
        shutil.rmtree(folder)


def _read_shard(path: Path) -> dict[str, tuple[FileStamp | None, str | None, np.ndarray | None]]:
    """Every row of a shard by name: (stamp, None, feature row), or (None, reason, None) for a skipped file."""
    found: dict[str, tuple[FileStamp | None, str | None, np.ndarray | None]] = {}
    with FeatureStore(path) as store:
        for split in store.splits:
            rows = store.read(split)
            for row, name in enumerate(rows.paths):
                stamp = FileStamp(int(rows.sizes[row]), int(rows.mtimes_ns[row]), rows.sha256[row])
                found[name] = (stamp, None, rows.features[row])
            found.update((name, (None, reason, None)) for name, reason in store.skipped(split))
    return found


def read_back(
    entries: list[ImageEntry], shard_of: dict[int, str], folder: Path, batch_size: int, width: int
) -> Iterator[EmbeddedBatch]:
    """The entries' rows read from the shards the workers wrote, in input order, a few shards open at a time:
    memory holds a shard's rows, never the run's."""
    cached: OrderedDict[str, dict] = OrderedDict()
    for start in range(0, len(entries), batch_size):
        chunk = entries[start : start + batch_size]
        stamps, errors, features = [], [], []
        for index, entry in enumerate(chunk, start):
            name = shard_of.get(index)
            if name is None:
                raise ShardError(f"no shard holds {entry.name}: the pipeline lost it")
            if name not in cached:
                try:
                    cached[name] = _read_shard(folder / name)
                except StoreError as error:
                    raise ShardError(f"shard {folder / name}: {error}") from None
                if len(cached) > CACHED_SHARDS:
                    cached.popitem(last=False)
            stamp, reason, feature = cached[name].get(entry.name, (None, None, None))
            if stamp is None and reason is None:
                raise ShardError(f"shard {folder / name} lacks {entry.name}: re-run `extract`")
            stamps.append(stamp)
            errors.append(reason)
            if feature is not None:
                features.append(feature)
        yield EmbeddedBatch(chunk, stamps, errors, np.stack(features) if features else np.zeros((0, width), np.float32))
