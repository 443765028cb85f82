"""The ignore list (`extract --exclude FILE`): images left out of the features without moving them. This docstring
is its schema.

A UTF-8 text file (a BOM allowed), one image a line, its path relative to --data as features.h5 and the audit's CSVs
write it (`train/ants/0013.jpg`); blank lines and lines starting with `#` are ignored. A CSV whose first header cell
is `path` (a decisions file, an audit CSV, suggestions.csv) is read the same way: its first column, header skipped.
There is no version to carry: the format is a list of names, and a later format would be a CSV with columns.

Read as untrusted input: at most MAX_BYTES; a line that is an absolute path or climbs out of --data (`..`) is an
ExcludeError naming the file and the line. A listed path that matches no image is counted, not an error.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os

from headstart.features.files.regular import open_regular
from headstart.features.folder import Dataset, DatasetError, text_path

MAX_BYTES = 64 * 1024 * 1024


class ExcludeError(DatasetError):
    """An ignore list that cannot be read; the message names the file, the line and the fix."""


def _normal(text: str) -> str | None:
    parts = [part for part in text.replace("\\", "/").split("/") if part not in ("", ".")]
    if not parts or text.startswith("/") or ".." in parts:
        return None
    return "/".join(parts)


def read_exclude(path: str | os.PathLike) -> set[str]:
    """The relative paths the file lists."""
    descriptor = open_regular(path, fix="name a text file of paths to leave out")
    with open(descriptor, "rb") as handle:
        data = handle.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise ExcludeError(f"{text_path(path)} is larger than {MAX_BYTES >> 20} MiB: list fewer paths")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ExcludeError(f"{text_path(path)} is not UTF-8 (byte {error.start}): save it as UTF-8 text") from None
    lines = [line.strip() for line in text.splitlines()]
    if lines and lines[0].split(",")[0].strip() == "path":
        lines = [row[0] if row else "" for row in csv.reader(io.StringIO(text.lstrip("\ufeff")))][1:]
        lines = [line.removeprefix("./") if line.startswith("./") else line for line in lines]
    names = set()
    for number, line in enumerate(lines, start=1):
        if not line or line.startswith("#"):
            continue
        name = _normal(line)
        if name is None:
            raise ExcludeError(
                f"{text_path(path)} line {number}: {line!r} is not a path relative to --data: write it as "
                "features.h5 does (train/ants/0013.jpg)"
            )
        names.add(name)
    return names


def exclude_entries(dataset: Dataset, exclude: str | os.PathLike) -> Dataset:
    """The dataset without the images the ignore list names; dataset.excluded lists those left out."""
    names = read_exclude(exclude)
    splits = {
        split: [entry for entry in entries if entry.name not in names] for split, entries in dataset.splits.items()
    }
    left_out = sorted(entry.name for entries in dataset.splits.values() for entry in entries if entry.name in names)
    return dataclasses.replace(dataset, splits=splits, excluded=left_out)
