"""The embeddings files. This docstring is their schema; bump FORMAT_VERSION on any change.

One row per row of CACHE/features.h5, split by split in the file's order (train, val, test), with the columns

    path      the image's path relative to the features' data_root (as features.h5 stores it)
    split     train, val or test
    label     the class name; empty (Parquet: null) for an unlabelled row; a multi-label file's: its lowest label
    labels    format 2, a multi-label features file only: every label of the row, in class order (Parquet: a list of
              strings, empty for none; the npy table: `|`-joined, empty for none). A single-label file's output
              is format 1, without this column, exactly as before.
    sha256    the file's content hash (hex), the features' own key
    embedding the backbone's pooled features, float32, `dim` values (512 for ResNet18)

Parquet (`--format parquet`, needs pyarrow: `pip install 'headstart[embeddings]'`): one file, the columns above, the
embedding a fixed-size list of float32 (`fixed_size_list<float>[dim]`: pandas, polars, DuckDB and LanceDB read it
as a vector column), one row group per chunk of rows. The schema's metadata key `headstart` holds the record below.

npy (`--format npy`): OUT.npy, a float32 (rows, dim) array (`numpy.load`); OUT.csv beside it, one row per array row,
columns row, path, split, label, sha256 (written as every headstart CSV: a path starting with = + - @ becomes
./<path>); and OUT.json, the record below. OUT must end in .npy; the three are replaced together.

The record (JSON): {"format": "headstart embeddings", "format_version", "producer": "headstart <version>",
"created": ISO 8601 UTC, "features": the features file, "dim", "rows": {split: count},
"header": features.h5's header (backbone, weights {kind, name, sha256}, preprocessing, precision, data_root, ...)}.
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from headstart.features import __version__
from headstart.features.files.csvfile import safe_cell
from headstart.features.store import FeaturesHeader, FeatureStore, StoreError
from headstart.heads.predict.writer import safe_path

FORMAT_NAME = "headstart embeddings"
FORMAT_VERSION = 1
MULTI_LABEL_VERSION = 2  # a multi-label features file's output: the `labels` column too
LABEL_SEPARATOR = "|"  # between the labels of one row in the npy table
METADATA_KEY = "headstart"  # the Parquet schema's metadata key holding the record
COLUMNS = ("path", "split", "label", "sha256", "embedding")
SIDECAR_COLUMNS = ["row", "path", "split", "label", "sha256"]


class EmbeddingsError(ValueError):
    """An embeddings output that cannot be written as asked; the message names the file and the fix."""


@dataclass
class Chunk:
    """A block of rows of one split, ready for any writer."""

    split: str
    paths: list[str]
    labels: list[str | None]  # None: unlabelled
    sha256: list[str]
    features: np.ndarray  # float32 (n, dim)
    label_sets: list[list[str]] | None = None  # a multi-label file's: every row's labels, in class order


def _label_names(labels: np.ndarray, classes: list[str], store: FeatureStore) -> list[str | None]:
    if len(labels) and (labels.min() < -1 or labels.max() >= len(classes)):
        raise StoreError(f"{store.path} holds labels outside its {len(classes)} classes: re-run `extract`")
    return [None if label < 0 else classes[label] for label in labels.tolist()]


def read_chunks(store: FeatureStore, chunk_rows: int) -> Iterator[Chunk]:
    """Every row of every split, chunk_rows at a time: memory bounded whatever the file's size."""
    classes = store.header.classes
    for split in store.splits:
        count = store.count(split)
        for start in range(0, count, chunk_rows):
            rows = store.read(split, slice(start, min(count, start + chunk_rows)))
            sets = None
            if rows.label_sets is not None:
                sets = [[classes[label] for label in row.nonzero()[0]] for row in rows.label_sets]
            labels = _label_names(rows.labels, classes, store)
            yield Chunk(split, rows.paths, labels, rows.sha256, rows.features, sets)


def record(store: FeatureStore, dim: int) -> dict:
    """The metadata record of an embeddings file made from store."""
    header: FeaturesHeader = store.header
    return {
        "format": FORMAT_NAME,
        "format_version": MULTI_LABEL_VERSION if header.multi_label else FORMAT_VERSION,
        "producer": f"headstart {__version__}",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "features": str(store.path),
        "dim": dim,
        "rows": {split: store.count(split) for split in store.splits},
        "header": header.to_dict(),
    }


def npy_sidecars(out: Path) -> tuple[Path, Path]:
    """OUT.csv and OUT.json beside OUT.npy; an OUT not ending in .npy is refused (its sidecars would be ambiguous)."""
    if out.suffix != ".npy":
        raise EmbeddingsError(f"--out {out}: an npy output's name ends in .npy (its table and record go beside it)")
    return out.with_suffix(".csv"), out.with_suffix(".json")


class SidecarTable:
    """OUT.csv of an npy output: one row per array row, written as every headstart CSV."""

    def __init__(self, path: str | os.PathLike, multi_label: bool = False):
        self._handle = open(path, "w", encoding="utf-8", newline="")
        self._writer = csv.writer(self._handle)
        self._writer.writerow([*SIDECAR_COLUMNS, "labels"] if multi_label else SIDECAR_COLUMNS)
        self._row = 0

    def write(self, chunk: Chunk) -> None:
        for index, (path, label, sha256) in enumerate(zip(chunk.paths, chunk.labels, chunk.sha256)):
            cells = [self._row, safe_path(path), chunk.split, "" if label is None else label, sha256]
            if chunk.label_sets is not None:  # the labels cell, formula-safe as every CSV's text cells
                cells.append(safe_cell(LABEL_SEPARATOR.join(chunk.label_sets[index])))
            self._writer.writerow(cells)
            self._row += 1

    def close(self) -> None:
        self._handle.close()


def write_record(path: str | os.PathLike, values: dict) -> None:
    """OUT.json of an npy output."""
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(values, handle, indent=2, allow_nan=False)
