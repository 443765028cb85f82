"""The features file (HDF5). This docstring is its schema; bump FORMAT_VERSION on any change.

    /                      attributes
        format_version     int, FORMAT_VERSION
        producer           "headstart <version>"
        created            ISO 8601 time, UTC
        classes            JSON list of class names; a label is an index into it
        backbone           a name in features/backbones/registry.py, or timm:MODEL (format 1 and 2 files: "resnet18")
        weights            JSON {"kind": "torchvision"|"timm"|"file"|"none", "name": str, "sha256": str}
        preprocessing      JSON {"name", "resize", "crop", "mean", "std", "interpolation"}
        precision          "fp32" | "bf16"
        data_root          the --data folder the paths are relative to
        torch_version, torchvision_version; forward: "batchnorm folded" (absent: "torchvision eager"; not a reuse key)
        split              JSON null, or a content split's {"val_fraction", "test_fraction", "seed", "rule"} (format 3)
        task               "multi-label" (format 5, written only then); absent: "single-label", format 4 as before
    /<split>               one group per split: train, val (and test, and pool)
        features           float32 (N, width), the backbone's width (512 for resnet18), chunked and resizable
        labels             int64 (N,), an index into classes (-1 in pool); it, features, sizes, mtimes_ns: Fletcher32
                           per chunk (older files: none); multi-label: the lowest label of the row's set (-1: none)
        label_sets         multi-label only: uint8 (N, classes), 1 where the row has that label (Fletcher32)
        paths              UTF-8 strings (N,), relative to data_root (undecodable bytes as \\xNN)
        sizes              int64 (N,) file size in bytes       } what the incremental cache
        mtimes_ns          int64 (N,) modification time, ns    } compares to decide whether
        sha256             ASCII strings (N,) content hash     } a file changed
        attribute skipped  JSON list of [path, reason] for files that could not be decoded

The `pool` split (format 4; extract --pool): unlabeled images, every label -1; fitting never sees it
(`labelled_splits` lists the others; `pool()` reads its rows). Everything read back is untrusted
(features/untrusted.py): outside pointers refused, declared sizes checked, every value checked as read.

Written as DIR/features.h5.partial-<id>, flushed per batch, renamed over DIR/features.h5 when complete. An
interrupted run leaves its partial file (its last split may lack rows); the next extract reuses its rows.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path

import h5py
import numpy as np

from headstart.features.files.atomic import move_into_place, signals_held
from headstart.features.files.cachedir import PARTIAL_SUFFIX
from headstart.features.files.regular import check_regular
from headstart.features.files.room import ensure_room
from headstart.features.folder import POOL
from headstart.features.provenance import Preprocessing, WeightsIdentity
from headstart.features.sources.rule import SplitRule
from headstart.features.untrusted import (
    UntrustedValueError,
    check_classes,
    check_columns,
    check_features,
    check_label_sets,
    check_labels,
    check_row_path,
    check_sha256,
    check_task,
    read_block_rows,
    refuse_outside_pointers,
)

# 2 added `forward` and Fletcher32; 3: `backbone` names any registry entry (files named per backbone,
# features/files/cachedir.py) and the optional `split`; 4: the optional `pool` split of unlabeled rows (label -1),
# which an older reader would refuse as damaged. Older files, all without a pool, load as before.
# 5: a multi-label file (`task`, `label_sets`); single-label files are still written as format 4, unchanged.
FORMAT_VERSION, READABLE_VERSIONS = 4, (1, 2, 3, 4, 5)
MULTI_LABEL_VERSION = 5
SINGLE_LABEL, MULTI_LABEL = "single-label", "multi-label"
JSON_ATTRS = ("classes", "weights", "preprocessing", "split")
ROW_FIELDS = ("features", "labels", "paths", "sizes", "mtimes_ns", "sha256")
_STR = h5py.string_dtype("utf-8")
METADATA_MARGIN = 256 << 10  # room kept for HDF5 metadata (a 2-split file has ~40 kB), so closing always succeeds
ROW_OVERHEAD = 512  # bytes per row of the variable-length columns: path and hash on the heap, their references
CHECKSUMMED = ("features", "labels", "sizes", "mtimes_ns")  # HDF5 cannot checksum variable-length strings
_OPTIONAL = ("forward", "split", "task")  # attributes older files (and single-label ones) lack


class StoreError(ValueError):
    """A features file that is missing, damaged, foreign or of another version; the message says to re-run extract."""


class StoreBusyError(StoreError):
    """A features file another program holds open for writing: not damage, so nothing is thrown away for it."""


@dataclass
class Rows:
    """A block of rows of one split, in file order."""

    features: np.ndarray  # float32 (n, dim)
    labels: np.ndarray  # int64 (n,)
    paths: list[str]
    sizes: np.ndarray  # int64 (n,)
    mtimes_ns: np.ndarray  # int64 (n,)
    sha256: list[str]
    label_sets: np.ndarray | None = None  # uint8 (n, classes) in a multi-label file; None in a single-label one

    def __len__(self) -> int:
        return len(self.paths)


@dataclass(frozen=True)
class FeaturesHeader:
    """The file's root attributes, typed: the one record of what the features are, read wherever they are used."""

    producer: str
    created: str
    classes: list[str]
    backbone: str
    weights: WeightsIdentity
    preprocessing: Preprocessing
    precision: str
    data_root: str
    torch_version: str
    torchvision_version: str
    forward: str = "torchvision eager"  # what files written before BatchNorm folding (which lack it) ran
    split: SplitRule | None = None  # how a folder without train/ was split; None: by its folders
    format_version: int = FORMAT_VERSION
    task: str = SINGLE_LABEL  # or MULTI_LABEL: rows carry label_sets

    @property
    def multi_label(self) -> bool:
        return self.task == MULTI_LABEL

    def to_dict(self) -> dict:
        """Plain values (the weights and preprocessing records as dicts), in the order the attributes are written."""
        records = {
            "weights": self.weights.to_dict(),
            "preprocessing": self.preprocessing.describe(),
            "split": self.split.to_dict() if self.split else None,
        }
        values = {field.name: records.get(field.name, getattr(self, field.name)) for field in fields(self)}
        if not self.multi_label:  # a single-label file's attributes stay those of format 4
            del values["task"]
        else:
            values["format_version"] = max(self.format_version, MULTI_LABEL_VERSION)
        return values

    @classmethod
    def from_dict(cls, values: dict) -> FeaturesHeader:
        """Rebuild the header from plain values; a missing or malformed one raises KeyError, TypeError or ValueError."""
        return cls(
            **{
                **{field.name: values[field.name] for field in fields(cls) if field.name not in _OPTIONAL},
                "forward": values.get("forward", cls.forward),
                "task": check_task(values.get("task", SINGLE_LABEL), values["format_version"]),
                "split": SplitRule.from_dict(values["split"]) if values.get("split") is not None else None,
                "weights": WeightsIdentity.from_dict(values["weights"]),
                "preprocessing": Preprocessing.from_description(values["preprocessing"]),
            }
        )

    def to_attrs(self) -> dict[str, str | int]:
        """The HDF5 attributes: JSON for the records, text for the rest, format_version an integer."""
        return {
            name: json.dumps(value) if name in JSON_ATTRS else value if name == "format_version" else str(value)
            for name, value in self.to_dict().items()
        }


def _decode_attrs(attrs: h5py.AttributeManager) -> dict:
    decoded = {}
    for key, value in attrs.items():
        value = value.decode() if isinstance(value, bytes) else value
        decoded[key] = json.loads(value) if key in JSON_ATTRS else (value.item() if hasattr(value, "item") else value)
    return decoded


def _damaged(path: Path, detail: object) -> StoreError:
    if "filter returned failure" in str(detail):  # HDF5's words for a Fletcher32 mismatch
        detail = "a stored checksum does not match: the file was changed on disk after it was written"
    return StoreError(f"{path} is damaged ({detail}): re-run `extract`")


class FeatureStore:
    """Read access to a complete features file."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise StoreError(f"{self.path} does not exist: run `extract` first")
        check_regular(self.path, fix="remove it, then run `extract`")  # h5py would wait forever on a named pipe
        try:
            self._file = h5py.File(self.path, "r")
            attrs = _decode_attrs(self._file.attrs)
        except BlockingIOError:  # HDF5's own file lock: another program has it open for writing
            raise StoreBusyError(f"{self.path} is open for writing in another program: close it, run again") from None
        except (OSError, ValueError, KeyError) as error:
            raise StoreError(f"{self.path} is not a readable features file ({error}): re-run `extract`") from None
        version = attrs.get("format_version")
        if version not in READABLE_VERSIONS:
            self.close()
            what = "not a headstart features file" if version is None else f"features format {version}"
            raise StoreError(
                f"{self.path} is {what}; this headstart reads format {' or '.join(map(str, READABLE_VERSIONS))}: "
                "re-run `extract`"
            )
        try:
            self.header = FeaturesHeader.from_dict(attrs)
            check_classes(self.header.classes)
        except (KeyError, TypeError, ValueError) as error:
            self.close()
            raise _damaged(self.path, f"header: {error}") from None
        try:
            refuse_outside_pointers(self._file)
            self.width = check_columns(self._file, self.path.stat().st_size)
        except (UntrustedValueError, OSError, KeyError, TypeError) as error:
            self.close()
            raise _damaged(self.path, error) from None

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    @property
    def splits(self) -> list[str]:
        """Every split in the file, the unlabeled pool included."""
        return list(self._file.keys())

    @property
    def labelled_splits(self) -> list[str]:
        """The splits whose rows carry a class: every split but the pool."""
        return [split for split in self.splits if split != POOL]

    def pool(self) -> Rows:
        """The unlabeled pool's rows (label -1 each), or no rows when the file has no pool."""
        if POOL in self.splits:
            return self.read(POOL)
        width = self.width or 0
        empty = np.zeros(0, np.int64)
        return Rows(np.zeros((0, width), np.float32), empty, [], empty, empty.copy(), [])

    def count(self, split: str) -> int:
        return self._group(split)["labels"].shape[0]

    def skipped(self, split: str) -> list[tuple[str, str]]:
        return [tuple(item) for item in json.loads(self._group(split).attrs.get("skipped", "[]"))]

    @contextmanager
    def _reading(self, where: str = "") -> Iterator[None]:
        """What HDF5 raises on a damaged file becomes one StoreError that says to re-run extract."""
        try:
            yield
        except (OSError, KeyError, ValueError, TypeError) as error:
            raise _damaged(self.path, f"{where}{error}") from None

    def stamps(self, split: str, rows: slice = slice(None)) -> tuple[list[str], np.ndarray, np.ndarray, list[str]]:
        """Paths, sizes, mtimes and hashes of a split's rows, without features: what the incremental cache compares."""
        group = self._group(split)
        with self._reading(f"split '{split}': "):
            return (
                [check_row_path(path) for path in group["paths"].asstr()[rows]],
                group["sizes"][rows].astype(np.int64, copy=False),
                group["mtimes_ns"][rows].astype(np.int64, copy=False),
                self.digests(split, rows),
            )

    def digests(self, split: str, rows: slice = slice(None)) -> list[str]:
        """A split's content hashes (sha256, hex), checked, without its paths (whose checks cost more)."""
        with self._reading(f"split '{split}': "):
            return [check_sha256(digest) for digest in self._group(split)["sha256"].asstr()[rows]]

    def labels(self, split: str, rows: slice = slice(None)) -> np.ndarray:
        group = self._group(split)
        with self._reading(f"split '{split}': "):
            return self._labels(group, split, rows)

    def _labels(self, group: h5py.Group, split: str, rows: np.ndarray | slice) -> np.ndarray:
        classes, multi = len(self.header.classes), self.header.multi_label
        return check_labels(group["labels"][rows], classes, unlabeled=split == POOL, empty_sets=multi)

    def label_sets(self, split: str, rows: np.ndarray | slice = slice(None)) -> np.ndarray | None:
        """A multi-label file's (N, classes) 0/1 matrix of rows, checked; None for a single-label file."""
        if not self.header.multi_label:
            return None
        group = self._group(split)
        with self._reading(f"split '{split}': "):
            return check_label_sets(group["label_sets"][rows], group["labels"][rows], len(self.header.classes))

    def _group(self, split: str) -> h5py.Group:
        """A split's group, checked whole: every column present and of one length."""
        if split not in self._file:
            raise StoreError(f"{self.path} has no '{split}' split (it has {self.splits}): re-run `extract`")
        group = self._file[split]
        with self._reading(f"split '{split}': "):
            names = (*ROW_FIELDS, "label_sets") if self.header.multi_label else ROW_FIELDS
            lengths = {name: group[name].shape[0] for name in names}
        if len(set(lengths.values())) != 1:
            raise _damaged(self.path, f"split '{split}' has columns of different lengths {lengths}")
        return group

    def read(self, split: str, rows: np.ndarray | slice = slice(None)) -> Rows:
        """Rows of a split; `rows` is a slice or increasing row numbers."""
        group = self._group(split)
        with self._reading(f"split '{split}': "):
            return Rows(
                _read_features(group["features"], rows),
                self._labels(group, split, rows),
                [check_row_path(path) for path in group["paths"].asstr()[rows]],
                group["sizes"][rows].astype(np.int64, copy=False),
                group["mtimes_ns"][rows].astype(np.int64, copy=False),
                [check_sha256(digest) for digest in group["sha256"].asstr()[rows]],
                self.label_sets(split, rows),
            )

    def read_vectors(self, split: str, rows: slice) -> tuple[np.ndarray, np.ndarray]:
        """The features and labels of rows (a slice), checked as read() checks them; no paths, no hashes."""
        group = self._group(split)
        with self._reading(f"split '{split}': "):
            features = _read_features(group["features"], rows)
            return features, check_labels(group["labels"][rows], len(self.header.classes), unlabeled=split == POOL)


def _read_features(column: h5py.Dataset, rows: np.ndarray | slice) -> np.ndarray:
    """The features of rows, read a bounded block at a time and checked finite."""
    if not isinstance(rows, slice):
        return check_features(column[rows])
    start, stop, step = rows.indices(column.shape[0])
    if step != 1:
        return check_features(column[rows])
    out = np.empty((max(0, stop - start), column.shape[1]), np.float32)
    block = read_block_rows(column)
    for first in range(start, stop, block):
        last = min(stop, first + block)
        out[first - start : last - start] = check_features(column[first:last])
    return out


def partial_files(path: str | os.PathLike) -> list[Path]:
    """Partial files of interrupted runs beside path, oldest first."""
    path = Path(path)
    return sorted(path.parent.glob(f"{path.name}{PARTIAL_SUFFIX}-*"), key=lambda p: p.stat().st_mtime_ns)


class StoreWriter:
    """Writes DIR/features.h5.partial-<id> split by split, then renames it over DIR/features.h5 on commit()."""

    def __init__(self, path: str | os.PathLike, header: FeaturesHeader, dim: int, chunk_rows: int = 256):
        self.path = Path(path)
        self.label_count = len(header.classes) if header.multi_label else 0  # 0: no label_sets column
        self.partial = self.path.with_name(f"{self.path.name}{PARTIAL_SUFFIX}-{os.getpid()}-{time.time_ns()}")
        self._dim = dim
        self.dim = dim  # the features' width
        self._chunk_rows = chunk_rows
        self._group: h5py.Group | None = None
        self._ensure_room(0)
        self._file = _create(self.partial, header)

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        """A failure deletes the partial file; an interruption (Ctrl-C, SIGTERM) keeps it for the next run to resume."""
        if kind is not None:
            self.abandon() if issubclass(kind, Exception) else self.keep_partial()

    def begin_split(self, split: str) -> None:
        group = self._file.create_group(split)
        chunk = (self._chunk_rows,)
        matrix = {"maxshape": (None, self._dim), "chunks": (self._chunk_rows, self._dim), "fletcher32": True}
        group.create_dataset("features", (0, self._dim), np.float32, **matrix)
        columns = {"labels": np.int64, "paths": _STR, "sizes": np.int64, "mtimes_ns": np.int64, "sha256": _STR}
        for name, dtype in columns.items():
            group.create_dataset(name, (0,), dtype, maxshape=(None,), chunks=chunk, fletcher32=name in CHECKSUMMED)
        if self.label_count:
            count = self.label_count
            shape = {"maxshape": (None, count), "chunks": (self._chunk_rows, count)}
            group.create_dataset("label_sets", (0, count), np.uint8, **shape, fletcher32=True)
        self._group = group

    def _split(self) -> h5py.Group:
        """The group of the split begun and not yet ended."""
        if self._group is None:
            raise StoreError(f"{self.partial}: no split begun (begin_split comes before append and end_split)")
        return self._group

    def append(self, rows: Rows) -> None:
        """Add rows at the end of the current split and flush, so a crash loses at most this batch."""
        if not len(rows):
            return
        group = self._split()
        self._ensure_room(len(rows))
        start = group["labels"].shape[0]
        end = start + len(rows)
        names: tuple[str, ...] = ROW_FIELDS
        if self.label_count:
            if rows.label_sets is None or rows.label_sets.shape != (len(rows), self.label_count):
                raise StoreError(f"{self.partial}: a multi-label file's rows need label_sets of {self.label_count}")
            names = (*ROW_FIELDS, "label_sets")
        # Ctrl-C or SIGTERM between two columns would leave them of different lengths: hold them until all are written.
        with signals_held():
            for name in names:
                dataset = group[name]
                dataset.resize(end, axis=0)
                dataset[start:end] = getattr(rows, name)
            self._file.flush()

    def _ensure_room(self, rows: int) -> None:
        """Refuse the next append unless the disk can take what it allocates: its new chunks, strings, metadata."""
        start = self._group["labels"].shape[0] if self._group is not None else 0
        new_chunks = -(-(start + rows) // self._chunk_rows) - -(-start // self._chunk_rows)
        row_bytes = self._dim * 4 + 3 * 8 + 2 * 16  # features; labels, sizes, mtimes; two string references
        ensure_room(
            self.path, self.partial, METADATA_MARGIN + new_chunks * self._chunk_rows * row_bytes + rows * ROW_OVERHEAD
        )

    def end_split(self, skipped: list[tuple[str, str]]) -> None:
        self._split().attrs["skipped"] = json.dumps([list(item) for item in skipped], allow_nan=False)
        self._group = None

    def commit(self) -> None:
        self._file.close()
        move_into_place([(self.partial, self.path)])

    def keep_partial(self) -> None:
        """Close, leaving the rows written so far for the next run to resume from."""
        self._file.close()

    def abandon(self) -> None:
        """Close and delete the partial file; the previous complete file is untouched."""
        self._file.close()
        self.partial.unlink(missing_ok=True)


def _create(partial: Path, header: FeaturesHeader) -> h5py.File:
    """A new partial file holding the header (never an existing name, nor through a link); on failure, none."""
    file = None
    try:
        file = h5py.File(partial, "x")
        for key, value in header.to_attrs().items():
            file.attrs[key] = value
        file.flush()
        return file
    except BaseException:
        if file is not None:
            file.close()
        partial.unlink(missing_ok=True)
        raise
