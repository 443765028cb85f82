"""A label table read by its format (features/sources/tables.py) -> a dataset: each path checked inside the data
folder, each file found, the classes and splits checked; a bad row is one line naming the table, the row and the fix,
or a counted, listed skip.

Multi-label tables (extract --multi-label): a label cell may hold several labels joined by `|` (`dog|cat`), a path
may come back on rows of the same split with more labels (one row per (path, label)), and an empty label cell is an
image with no label (all negatives). Each entry then carries its label set; its label is the set's lowest (-1: none).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from headstart.features.folder import SPLIT_NAMES, Dataset, ImageEntry, text_path
from headstart.features.sources.rule import UNSPLIT
from headstart.features.sources.tables import (
    JSONL_SUFFIXES,
    PARQUET_SUFFIXES,
    TEXT_SUFFIXES,
    TableColumns,
    TableError,
    TableRow,
    check_suffix,
    jsonl_rows,
    row_word,
    text_rows,
)


@dataclass
class _Kept:
    """The rows kept so far: per name its row, class and split; the classes in order of first appearance."""

    rows: dict[str, tuple[int, int, str]] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    sets: dict[str, set[int]] = field(default_factory=dict)  # multi-label: per name, every label it was given
    skipped: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class _Table:
    """The table being read, for the messages: its file, its rows' word, its base folder and --strict."""

    path: Path
    word: str
    root: str  # the absolute, normalised base folder
    strict: bool
    multi_label: bool = False

    def error(self, number: int, what: str) -> TableError:
        return TableError(f"{text_path(self.path)}: {self.word} {number}: {what}")


def read_table(table: Path, columns: TableColumns) -> Iterator[TableRow]:
    """The table's rows, one at a time, in file order, read by its format (its suffix)."""
    suffix = check_suffix(table)
    if suffix in PARQUET_SUFFIXES:
        from headstart.features.sources.parquet_table import parquet_rows

        return parquet_rows(table, columns)
    if suffix in JSONL_SUFFIXES:
        return jsonl_rows(table, columns)
    return text_rows(table, columns, TEXT_SUFFIXES[suffix])


def _opened(table: Path, root: Path, strict: bool, option: str = "--data", multi_label: bool = False) -> _Table:
    """The table and its base folder, both checked to exist."""
    if not table.is_file():
        what = "does not exist" if not table.exists() else "is not a file"
        raise TableError(f"label table {text_path(table)} {what}: give a CSV, TSV, JSON Lines or Parquet file")
    if not root.is_dir():
        raise TableError(
            f"{option} {text_path(root)} is not a folder: give the folder the table's paths are relative to"
        )
    return _Table(table, row_word(table), os.path.normpath(os.path.abspath(root)), strict, multi_label)


def table_dataset(
    table: Path, root: Path, columns: TableColumns, strict: bool = False, multi_label: bool = False
) -> Dataset:
    """The dataset a label table names, its paths relative to root; rows without a split go under UNSPLIT;
    multi_label: each entry with its label set (the module docstring)."""
    where = _opened(table, root, strict, multi_label=multi_label)
    kept = _Kept()
    for row in read_table(table, columns):
        _keep(where, kept, row)
    if not kept.rows and not kept.skipped:
        raise TableError(f"{text_path(table)} has no rows: add one row per image (path, label[, split])")
    used = {label for name in kept.rows for label in kept.sets.get(name, {kept.rows[name][1]})} - {-1}
    classes = sorted(name for name, number in kept.labels.items() if number in used)
    if len(classes) < 2:
        raise TableError(
            f"{text_path(table)} names {len(classes)} class(es) in its readable rows: a classifier needs at least 2"
        )
    order = [kept.labels[name] for name in classes]  # first-appearance number -> sorted index
    index = {number: position for position, number in enumerate(order)}
    splits: dict[str, list[ImageEntry]] = {name: [] for name in (*SPLIT_NAMES, UNSPLIT)}
    for name, (_, label, split) in kept.rows.items():
        if multi_label:
            labels = tuple(sorted(index[number] for number in kept.sets[name]))
            splits[split].append(ImageEntry(Path(where.root, name), name, labels[0] if labels else -1, labels))
        else:
            splits[split].append(ImageEntry(Path(where.root, name), name, index[label]))
    _check_classes(where, kept, classes, index)
    return Dataset(
        root, classes, {name: entries for name, entries in splits.items() if entries}, table_skipped=kept.skipped
    )


def scored_entries(
    table: Path, root: Path, columns: TableColumns, classes: list[str], strict: bool = False, multi_label: bool = False
) -> tuple[list[ImageEntry], list[tuple[str, str]]]:
    """evaluate --labels: every row of a label table as an image to score, labelled by its index in `classes` (the
    head's), in table order, with the rows skipped (missing files, repeats: (path, why)); any split is ignored. A
    label the head does not know is a TableError naming the row. multi_label (a multi-label head): each entry with
    its label set, read as extract --multi-label reads a table (every form, the module docstring)."""
    where = _opened(table, root, strict, option="FOLDER", multi_label=multi_label)
    kept = _Kept(labels={name: index for index, name in enumerate(classes)})
    for row in read_table(table, columns):
        named = [part.strip() for part in row.label.split("|") if part.strip()] if multi_label else [row.label]
        for text in named:
            if text and text not in kept.labels:
                raise where.error(
                    row.number, f"label {text!r} is not a class the head knows ({', '.join(classes)}): fix the row"
                )
        _keep(where, kept, row)
    if not kept.rows and not kept.skipped:
        raise TableError(f"{text_path(table)} has no rows: add one row per image (path, label)")
    entries = []
    for name, (_, label, _) in kept.rows.items():
        labels = tuple(sorted(kept.sets[name])) if multi_label else None
        entries.append(ImageEntry(Path(where.root, name), text_path(root / name), label, labels))
    return entries, kept.skipped


def _keep(where: _Table, kept: _Kept, row: TableRow) -> None:
    """Check one row and keep it, skip it (listed), or raise TableError."""
    if not row.path:
        raise where.error(row.number, "the path is empty: give every row an image path")
    if not row.label and not where.multi_label:
        raise where.error(row.number, f"{row.path!r} has no label: give one (unlabeled images go in --pool)")
    if "|" in row.label and not where.multi_label:
        raise where.error(row.number, f"label {row.label!r} names several classes: add --multi-label, or give one")
    split = row.split.lower() or UNSPLIT
    if split not in (*SPLIT_NAMES, UNSPLIT):
        raise where.error(
            row.number, f"unknown split {row.split!r}: use train, val or test, or leave it empty to split by content"
        )
    name = _inside(where, row)
    if where.multi_label:
        return _keep_set(where, kept, row, name, split)
    label = kept.labels.setdefault(row.label, len(kept.labels))
    before = kept.rows.get(name)
    if before is not None:
        _same_path(where, kept, row, name, before, (label, split))
        return
    problem = _unusable(os.path.join(where.root, name))
    if problem:
        if where.strict:
            raise where.error(row.number, f"{name} {problem}: fix the row, or drop --strict to skip such rows")
        kept.skipped.append((name, f"{problem} ({where.word} {row.number})"))
        return
    kept.rows[name] = (row.number, label, split)


def _keep_set(where: _Table, kept: _Kept, row: TableRow, name: str, split: str) -> None:
    """A multi-label row: its `|`-joined labels added to the path's set (a path again in another split: an error)."""
    numbers = {kept.labels.setdefault(part.strip(), len(kept.labels)) for part in row.label.split("|") if part.strip()}
    before = kept.rows.get(name)
    if before is not None:
        if before[2] != split:
            raise where.error(
                row.number,
                f"{name} is in {split} here but in {before[2]} at {where.word} {before[0]}: give an image one split",
            )
        kept.sets[name] |= numbers
        return
    problem = _unusable(os.path.join(where.root, name))
    if problem:
        if where.strict:
            raise where.error(row.number, f"{name} {problem}: fix the row, or drop --strict to skip such rows")
        kept.skipped.append((name, f"{problem} ({where.word} {row.number})"))
        return
    kept.rows[name] = (row.number, min(numbers, default=-1), split)
    kept.sets[name] = numbers


def _inside(where: _Table, row: TableRow) -> str:
    """The row's path relative to the base folder, with / separators; a path that leaves it raises TableError."""
    full = os.path.normpath(os.path.join(where.root, os.path.expanduser(row.path)))
    if not full.startswith(where.root.rstrip(os.sep) + os.sep) or "\0" in full:
        raise where.error(
            row.number,
            f"{row.path!r} is outside {text_path(where.root)}: give paths inside --data (or put the table in the "
            "images' folder and leave --data out)",
        )
    return text_path(full[len(where.root.rstrip(os.sep) + os.sep) :]).replace(os.sep, "/")  # relpath, less work


def _same_path(where: _Table, kept: _Kept, row: TableRow, name: str, before: tuple, now: tuple) -> None:
    """A path named twice: the same label and split is a listed skip; anything else is an error naming both rows."""
    number, label, split = before
    if (label, split) == now:
        kept.skipped.append((name, f"listed again ({where.word} {row.number}, first at {where.word} {number})"))
        return
    names = {index: text for text, index in kept.labels.items()}
    first = f"{names[label]!r}" + (f" in {split}" if split != UNSPLIT else "")
    second = f"{names[now[0]]!r}" + (f" in {now[1]}" if now[1] != UNSPLIT else "")
    raise where.error(
        row.number,
        f"{name} is {second} here but {first} at {where.word} {number}: keep one row per image "
        "(several labels per image are the multi-label mode's)",
    )


def _unusable(path: str) -> str | None:
    """Why a named file cannot be read, or None; one stat, as a 100,000-row table makes 100,000 of them."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return "is missing"
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "is missing"
        return f"cannot be read ({error.strerror})"
    if not stat.S_ISREG(mode):
        return "is not a file"
    return None if os.access(path, os.R_OK) else "cannot be read (permission denied)"


def _check_classes(where: _Table, kept: _Kept, classes: list[str], index: dict[int, int]) -> None:
    """Every class learnable: a row in train, or a row split by content (which keeps one in train)."""
    seen: dict[int, dict[str, int]] = {}
    for name, (number, label, split) in kept.rows.items():
        for each in kept.sets.get(name, {label}):
            seen.setdefault(index[each], {}).setdefault(split, number)
    for position, name in enumerate(classes):
        of_class = seen.get(position, {})
        if "train" in of_class or UNSPLIT in of_class:  # a class split by content keeps an image in train
            continue
        first = min(of_class.values())
        only = "only in val" if set(of_class) == {"val"} else f"only in {' and '.join(sorted(of_class))}"
        raise where.error(
            first, f"class {name!r} is {only}, with no train rows: add train rows for it, or leave their split empty"
        )
