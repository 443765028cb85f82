"""The similar command's table. This docstring is its schema.

One record per (query, neighbour), queries in the order found (files and folders searched recursively, sorted by
name), neighbours nearest first:

    query       the query image as given (a folder's images by their path under it)
    rank        1 for the nearest cached image, then 2, 3, ... up to k
    path        the cached image's path relative to the features' data_root (as features.h5 stores it)
    split       the cached image's split (train, val, test, pool, ...)
    label       its class name; empty (JSON: null) for an unlabeled row
    similarity  cosine similarity of the two images' features, centred on the mean of the searched rows
    labels      a multi-label features file only: every label of the cached image, in class order (CSV: `|`-joined,
                empty for none; JSON: a list). A single-label file's table has no such column, as before.

CSV (`--format csv`): the header first, then the records, written by the one CSV writer
(features/files/csvfile.py: a path starting with = + - @ becomes ./<path>, other such text cells get a leading
apostrophe). JSON Lines (`--format jsonl`): one object per record with the keys above, the exact paths.
A query that could not be read has no records; it is counted and listed in what the command prints.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from headstart.features.files.csvfile import CsvWriter, safe_path
from headstart.features.files.outputs import text_output

COLUMNS = ["query", "rank", "path", "split", "label", "similarity"]
LABEL_SEPARATOR = "|"


class SimilarError(ValueError):
    """A similar search that cannot run as asked; the message names the file or option and the fix."""


@dataclass(frozen=True)
class Neighbour:
    """One record of the table: a cached image near a query."""

    query: str
    rank: int
    path: str
    split: str
    label: str | None
    similarity: float
    labels: list[str] | None = None  # a multi-label file's: the cached image's every label; None: single-label


def write_neighbours(
    out: str | os.PathLike, records: Iterable[Neighbour], output_format: str, multi_label: bool = False
) -> int:
    """Write the records as CSV or JSON Lines into out ('-': stdout), whole or not at all; the count written.
    multi_label: with the labels column (the module docstring)."""
    written = 0
    with text_output(out) as handle:
        if output_format == "csv":
            writer = CsvWriter(handle, [*COLUMNS, "labels"] if multi_label else COLUMNS)
            for record in records:
                cells = [
                    safe_path(record.query),
                    record.rank,
                    safe_path(record.path),
                    record.split,
                    record.label or "",
                    f"{record.similarity:.6f}",
                ]
                writer.writerow([*cells, LABEL_SEPARATOR.join(record.labels or [])] if multi_label else cells)
                written += 1
        else:
            for record in records:
                values = {**asdict(record), "similarity": round(record.similarity, 6)}
                if not multi_label:
                    del values["labels"]
                handle.write(json.dumps(values) + "\n")
                written += 1
    return written
