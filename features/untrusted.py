"""What a features file may hold, checked before anything in it is believed: it is read as untrusted input.

A crafted or damaged features.h5 must not make headstart read outside the file, allocate more than the file holds,
or build a path out of its strings. So, on open:
- every link is a hard link inside the file: soft links (and their loops), external links, external storage
  (`dataset.external`) and virtual datasets are refused, since each can point at another file;
- a column's declared size (shape x item size) is at most the file's size, so nothing is allocated for rows the
  file cannot hold; rows are then read in bounded blocks;
and on every read:
- a row path is relative, without `..` or a NUL, so it stays inside the data folder it is joined to;
- a sha256 is 64 lowercase hexadecimal digits (the thumbnail cache builds a file name from it);
- labels are integers indexing `classes` (in the unlabeled `pool` split: -1 each); features are finite, of one width;
- a multi-label file's label sets are 0/1, one column per class, and each row's `labels` is its set's lowest (-1 for
  a row with no label).
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath, PureWindowsPath

import h5py
import numpy as np

SHA256 = re.compile(r"[0-9a-f]{64}")
READ_BLOCK_BYTES = 64 << 20  # rows are read at most this many bytes at a time


class UntrustedValueError(ValueError):
    """A value in a features file that cannot be what headstart wrote; the store turns it into a StoreError."""


def refuse_outside_pointers(file: h5py.File) -> None:
    """Refuse any link or storage that can point outside the file: soft and external links, external storage,
    virtual datasets. Hard links are followed once each (a hard-link cycle is visited once)."""
    seen: set = set()
    pending: list[tuple[str, h5py.Group]] = [("/", file)]
    while pending:
        where, group = pending.pop()
        for name in group:
            link = group.get(name, getlink=True)
            at = f"{where.rstrip('/')}/{name}"
            if isinstance(link, h5py.SoftLink):
                raise UntrustedValueError(f"'{at}' is a soft link (to '{link.path}'); headstart writes none")
            if isinstance(link, h5py.ExternalLink):
                raise UntrustedValueError(f"'{at}' is an external link (to '{link.filename}'); headstart writes none")
            item = group[name]
            address = h5py.h5o.get_info(item.id).addr
            if address in seen:
                continue
            seen.add(address)
            if isinstance(item, h5py.Group):
                pending.append((at, item))
            elif isinstance(item, h5py.Dataset):
                _refuse_outside_storage(item, at)


def _refuse_outside_storage(dataset: h5py.Dataset, at: str) -> None:
    if dataset.is_virtual:
        raise UntrustedValueError(f"'{at}' is a virtual dataset (its rows live in other files); headstart writes none")
    if dataset.external:
        raise UntrustedValueError(f"'{at}' keeps its rows in an external file; headstart writes none")


def check_declared_size(dataset: h5py.Dataset, file_size: int, at: str) -> None:
    """Refuse a column whose declared shape needs more bytes than the whole file has."""
    declared = int(np.prod(dataset.shape, dtype=object)) * dataset.dtype.itemsize
    if declared > file_size:
        raise UntrustedValueError(
            f"'{at}' declares shape {dataset.shape} ({declared:,} bytes), more than the file's {file_size:,} bytes"
        )


def read_block_rows(dataset: h5py.Dataset) -> int:
    """How many rows of dataset make one bounded read."""
    row_bytes = max(1, int(np.prod(dataset.shape[1:], dtype=object)) * dataset.dtype.itemsize)
    return max(1, READ_BLOCK_BYTES // row_bytes)


def check_row_path(path: str) -> str:
    """A row's path, refused unless relative, free of `..` and NUL: joined to the data folder, it stays inside."""
    posix, windows = PurePosixPath(path), PureWindowsPath(path)
    if (
        not path
        or "\0" in path
        or posix.is_absolute()
        or windows.is_absolute()
        or windows.drive
        or path.startswith(("/", "\\"))
        or ".." in posix.parts
        or ".." in windows.parts
    ):
        raise UntrustedValueError(f"row path {path!r} is not a relative path inside the data folder")
    return path


def check_sha256(digest: str) -> str:
    """A row's content hash, refused unless 64 lowercase hexadecimal digits."""
    if not SHA256.fullmatch(digest):
        raise UntrustedValueError(f"sha256 {digest[:80]!r} is not 64 lowercase hexadecimal digits")
    return digest


def check_labels(labels: np.ndarray, classes: int, unlabeled: bool = False, empty_sets: bool = False) -> np.ndarray:
    """Labels as int64, refused unless integers in [0, classes), or every one -1 in an unlabeled split (the pool);
    `empty_sets` (a multi-label file) also allows -1, a row whose label set is empty."""
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise UntrustedValueError(f"labels are {labels.dtype} of shape {labels.shape}, not integers (N,)")
    if unlabeled:
        if len(labels) and (labels != -1).any():
            raise UntrustedValueError(f"the unlabeled pool holds {int((labels != -1).sum())} labels other than -1")
    elif len(labels) and (labels.min() < -int(empty_sets) or labels.max() >= classes):
        raise UntrustedValueError(f"labels run from {labels.min()} to {labels.max()}; {classes} classes allow 0..")
    return labels.astype(np.int64, copy=False)


def check_label_sets(label_sets: np.ndarray, labels: np.ndarray, classes: int) -> np.ndarray:
    """A multi-label file's (N, classes) label sets as uint8, refused unless 0/1 and agreeing with `labels` (the lowest
    label of each non-empty set, -1 for an empty one)."""
    if label_sets.ndim != 2 or label_sets.shape[1] != classes or label_sets.dtype != np.uint8:
        raise UntrustedValueError(f"label_sets are {label_sets.dtype} {label_sets.shape}, not uint8 (N, {classes})")
    if label_sets.shape[0] != len(labels) or (len(label_sets) and label_sets.max() > 1):
        raise UntrustedValueError("label_sets hold values other than 0 and 1, or a row count unlike labels'")
    marked = label_sets.any(1)
    if not np.array_equal(np.where(marked, label_sets.argmax(1), -1), np.asarray(labels)):
        raise UntrustedValueError("a row's label is not the lowest label of its label set (-1 for an empty set)")
    return label_sets


def check_features(features: np.ndarray) -> np.ndarray:
    """Features as float32, refused unless a finite (N, width) array of floats."""
    if features.ndim != 2 or not np.issubdtype(features.dtype, np.floating):
        raise UntrustedValueError(f"features are {features.dtype} of shape {features.shape}, not floats (N, width)")
    if not np.isfinite(features).all():
        raise UntrustedValueError(f"features hold {int((~np.isfinite(features)).sum())} non-finite values")
    return features.astype(np.float32, copy=False)


def check_classes(classes: object) -> list[str]:
    """The class names, refused unless a non-empty list of distinct non-empty strings."""
    if not isinstance(classes, list) or not classes or not all(isinstance(name, str) and name for name in classes):
        raise UntrustedValueError(f"classes {str(classes)[:80]} is not a non-empty list of names")
    if len(set(classes)) != len(classes):
        raise UntrustedValueError(f"classes {str(classes)[:80]} name a class twice")
    return classes


# The kind and rank each column must have; a file that declares anything else was not written by headstart.
_COLUMN_KINDS = {
    **{"features": "f", "labels": "iu", "sizes": "iu", "mtimes_ns": "iu", "paths": "OSU", "sha256": "OSU"},
    "label_sets": "u",
}
_MATRICES = ("features", "label_sets")


def check_columns(file: h5py.File, file_size: int) -> int | None:
    """Every split's columns of the right kind and rank, no larger than the file, features of one width: the width."""
    widths = set()
    for split in file:
        if not isinstance(file[split], h5py.Group):
            raise UntrustedValueError(f"'/{split}' is not a split group")
        for name, kinds in _COLUMN_KINDS.items():
            column = file[split].get(name)
            if column is None:
                continue  # the store names the missing column when the split is used
            at = f"/{split}/{name}"
            rank = 2 if name in _MATRICES else 1
            string = h5py.check_string_dtype(column.dtype) is not None
            if column.ndim != rank or column.dtype.kind not in kinds or (kinds == "OSU") != string:
                raise UntrustedValueError(f"'{at}' is {column.dtype} of shape {column.shape}, not headstart's column")
            check_declared_size(column, file_size, at)
            if name == "features":
                widths.add(column.shape[1])
    if len(widths) > 1 or 0 in widths:
        raise UntrustedValueError(f"the splits' features have widths {sorted(widths)}, not one width")
    return widths.pop() if widths else None


def check_task(task: object, version: int) -> str:
    """The recorded task, refused unless single-label, or multi-label in a format 5 (or later) file."""
    if task not in ("single-label", "multi-label") or (task == "multi-label" and version < 5):
        raise UntrustedValueError(f"task {str(task)[:40]!r} in a format {version} file")
    return str(task)
