"""Label tables (`extract --labels FILE`): the formats read, their rules, and the rows streamed one at a time.

A label table names one image per row: a path, a label and, optionally, a split.

- Formats, by the file's suffix: `.csv` and `.txt` (the separator sniffed from the header line among `,` `;` and
  tab, so Excel's `;` files read as they are), `.tsv` and `.tab` (tab), `.jsonl` and `.ndjson` (one JSON object per
  line), `.parquet` and `.pq` (pyarrow, the `.[parquet]` extra; features/sources/parquet_table.py).
- Text is UTF-8, decoded a line at a time; a UTF-8 byte order mark (Excel's "CSV UTF-8") is dropped. Other encodings
  are refused, naming the line.
- Columns are found by name: `path` and `label` (`--path-column`, `--label-column`), and `split` when the table has
  one (`--split-column` names another, and is then required). Cells are trimmed; a JSON or Parquet value that is not
  text (a number) is read as its text.
- Rows are streamed: a table of any length is read in memory bounded by its longest row (the rows kept are the
  ones it names, one small record each, as a folder scan keeps one per file).
- The 0/1 form (multi-label only, `extract --labels FILE --multi-label`, `evaluate --labels` on a multi-label head):
  a table read for multi-label with no label column (`label`, or `--label-column`'s name) has one 0/1 column per
  label: every column other than the path and the split is a label named by its header, and each of its cells is
  `0` or `1` (a JSON or Parquet value may be the number or a boolean). The row's label set is the columns holding 1;
  a cell that is anything else (`2`, `yes`, empty) is one line naming the row and the column. With a label column
  present, the table is read in the label-cell form as always: the rule needs no guessing from the cells.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NamedTuple

from headstart.features.folder import DatasetError, text_path

TEXT_SUFFIXES = {".csv": None, ".txt": None, ".tsv": "\t", ".tab": "\t"}  # None: sniffed from the header line
JSONL_SUFFIXES = (".jsonl", ".ndjson")
PARQUET_SUFFIXES = (".parquet", ".pq")
SNIFFED = (",", ";", "\t")
SUFFIXES = (*TEXT_SUFFIXES, *JSONL_SUFFIXES, *PARQUET_SUFFIXES)
SEPARATOR = "|"  # between the labels of one multi-label cell


class TableError(DatasetError):
    """A label table that cannot be read as asked; the message names the file, the row and the fix."""


@dataclass(frozen=True, kw_only=True)
class TableColumns:
    """The columns of a label table, by name; split None: `split` when the table has that column, else none."""

    path: str = "path"
    label: str = "label"
    split: str | None = None
    multi_label: bool = False  # a table without the label column is then read in the 0/1 form (the docstring)

    def pick(self, table: Path, names: list[str]) -> tuple[str, str, str | None]:
        """The path, label and split column names present in names; a missing one raises TableError."""
        return self._pick(table, names, ((self.path, "--path-column"), (self.label, "--label-column")))

    def pick_form(self, table: Path, names: list[str]) -> tuple[str, str | None, str | None, tuple[str, ...]]:
        """pick's columns and (); or, in the 0/1 form, the path and split columns, None and the label columns."""
        if not self.multi_label or self.label in names:
            return (*self.pick(table, names), ())
        path, _, split = self._pick(table, names, ((self.path, "--path-column"),))
        flags = tuple(name for name in names if name not in (path, split))
        for name in flags:
            if not name or SEPARATOR in name or flags.count(name) > 1:
                raise TableError(
                    f"{text_path(table)}: label column {name!r} is empty, holds {SEPARATOR!r} or comes twice: a table "
                    f"without a {self.label!r} column has one 0/1 column per label, named by the label"
                )
        if not flags:
            raise TableError(
                f"{text_path(table)} has no {self.label!r} column and no 0/1 label columns: give a label column "
                "(--label-column) or one 0/1 column per label"
            )
        return path, None, split, flags

    def _pick(self, table: Path, names: list[str], options: tuple) -> tuple[str, str, str | None]:
        for name, option in (*options, (self.split, "--split-column")):
            if name is not None and name not in names:
                present = ", ".join(map(repr, names)) or "none"
                raise TableError(
                    f"{text_path(table)} has no column {name!r} (its columns: {present}): name the column with {option}"
                )
        split = self.split if self.split is not None else ("split" if "split" in names else None)
        return self.path, self.label, split


class TableRow(NamedTuple):
    """One row of a table: where it is (a line of a text table, a row of a Parquet one), its cells as text."""

    number: int
    path: str
    label: str
    split: str  # "" when the table has no split column or the cell is empty


def flagged(table: Path, number: int, flags: tuple[str, ...], values: list[Any], default_label: str) -> str:
    """A 0/1 row's label set as a label cell (`a|b`, "" for none); a cell not 0 or 1 raises TableError."""
    found = []
    for name, value in zip(flags, values):
        flag = _zero_one(value)
        if flag is None:
            raise TableError(
                f"{text_path(table)}: {row_word(table)} {number}: column {name!r} holds {cell(value)!r}, not 0 or 1: "
                f"write 0 or 1 (a multi-label table without a {default_label!r} column has one 0/1 column per label)"
            )
        if flag:
            found.append(name)
    return SEPARATOR.join(found)


def _zero_one(value: Any) -> int | None:
    """0 or 1 from a cell: the text "0" or "1", a boolean, or the number 0 or 1; None for anything else."""
    if isinstance(value, str):
        return {"0": 0, "1": 1}.get(value.strip())
    if isinstance(value, bool | int | float) and value in (0, 1):
        return int(value)
    return None


def cell(value: Any) -> str:
    """A cell as trimmed text: None is empty, a number is its text."""
    return "" if value is None else (value if isinstance(value, str) else str(value)).strip()


def check_suffix(table: Path) -> str:
    """The table's suffix, lowercased; one no format has raises TableError."""
    suffix = table.suffix.lower()
    if suffix not in SUFFIXES:
        raise TableError(f"{text_path(table)}: a label table ends in {', '.join(SUFFIXES)}: rename it after its format")
    return suffix


def row_word(table: Path) -> str:
    """How a table's rows are named in messages: lines of a text table, rows of a Parquet one."""
    return "row" if table.suffix.lower() in PARQUET_SUFFIXES else "line"


def _not_utf8(table: Path, line: int) -> TableError:
    return TableError(
        f'{text_path(table)}: line {line} is not UTF-8 text: save the table as UTF-8 (in Excel: "CSV UTF-8")'
    )


def _open_bytes(table: Path) -> IO[bytes]:
    try:
        return open(table, "rb")
    except OSError as error:
        raise TableError(f"{text_path(table)} cannot be read ({error.strerror}): check the path") from None


def _lines(file: IO[bytes], table: Path) -> Iterator[str]:
    """The file's lines as text, decoded one at a time (so an error names its line), a byte order mark dropped."""
    for number, raw in enumerate(file, start=1):
        try:
            yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            raise _not_utf8(table, number) from None


def text_rows(table: Path, columns: TableColumns, delimiter: str | None) -> Iterator[TableRow]:
    """Rows of a CSV or TSV table: the header first, its separator sniffed unless the suffix fixes it."""
    with _open_bytes(table) as file:
        lines = _lines(file, table)
        header_line = next(lines, "")
        if not header_line.strip():
            raise TableError(f"{text_path(table)} is empty: its first line names the columns (path,label[,split])")
        if delimiter is None:
            delimiter = max(SNIFFED, key=header_line.count)  # ties: the first, a comma
        reader = csv.reader(_chain(header_line, lines), delimiter=delimiter, strict=True)
        try:
            names = [name.strip() for name in next(reader)]
            path, label, split, flags = columns.pick_form(table, names)
            where = [names.index(path), names.index(label) if label else None, names.index(split) if split else None]
            for cells in reader:
                if not any(value.strip() for value in cells):
                    continue  # a blank line, as spreadsheets leave at the end
                row = _text_row(table, reader.line_num, cells, where, names)
                if flags:
                    values = [cells[index] if index < len(cells) else "" for index in map(names.index, flags)]
                    row = row._replace(label=flagged(table, row.number, flags, values, columns.label))
                yield row
        except csv.Error as error:
            raise TableError(f"{text_path(table)}: line {reader.line_num} is not a CSV row ({error}): fix it") from None


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


def _text_row(table: Path, number: int, cells: list[str], where: list[int | None], names: list[str]) -> TableRow:
    if len(cells) < len(names):
        cells = cells + [""] * (len(names) - len(cells))  # trailing empty cells a spreadsheet dropped
    path, label, split = (cells[index] if index is not None else "" for index in where)
    return TableRow(number, path.strip(), label.strip(), split.strip())


def jsonl_rows(table: Path, columns: TableColumns) -> Iterator[TableRow]:
    """Rows of a JSON Lines table: one object per line, its keys the columns (checked on the first object)."""
    with _open_bytes(table) as file:
        picked = None
        for number, line in enumerate(_lines(file, table), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise TableError(f"{text_path(table)}: line {number} is not JSON ({error.msg}): fix it") from None
            if not isinstance(record, dict):
                raise TableError(f"{text_path(table)}: line {number} is not a JSON object: write one object per line")
            if picked is None:
                picked = columns.pick_form(table, list(record))
            path, label, split, flags = picked
            missing = [name for name in (path, label, *flags) if name is not None and name not in record]
            if missing:
                raise TableError(f"{text_path(table)}: line {number} has no {missing[0]!r} key: give every object one")
            text = (
                cell(record[label])
                if label
                else flagged(table, number, flags, [record[f] for f in flags], columns.label)
            )
            yield TableRow(number, cell(record[path]), text, cell(record.get(split)) if split else "")
        if picked is None:
            raise TableError(f"{text_path(table)} is empty: write one JSON object per line (path, label[, split])")
