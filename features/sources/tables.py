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


class TableError(DatasetError):
    """A label table that cannot be read as asked; the message names the file, the row and the fix."""


@dataclass(frozen=True, kw_only=True)
class TableColumns:
    """The columns of a label table, by name; split None: `split` when the table has that column, else none."""

    path: str = "path"
    label: str = "label"
    split: str | None = None

    def pick(self, table: Path, names: list[str]) -> tuple[str, str, str | None]:
        """The path, label and split column names present in names; a missing one raises TableError."""
        options = ((self.path, "--path-column"), (self.label, "--label-column"), (self.split, "--split-column"))
        for name, option in options:
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
            path, label, split = columns.pick(table, names)
            where = [names.index(path), names.index(label), names.index(split) if split else None]
            for cells in reader:
                if not any(value.strip() for value in cells):
                    continue  # a blank line, as spreadsheets leave at the end
                yield _text_row(table, reader.line_num, cells, where, names)
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
                picked = columns.pick(table, list(record))
            path, label, split = picked
            missing = [name for name in (path, label) if name not in record]
            if missing:
                raise TableError(f"{text_path(table)}: line {number} has no {missing[0]!r} key: give every object one")
            yield TableRow(number, cell(record[path]), cell(record[label]), cell(record.get(split)) if split else "")
        if picked is None:
            raise TableError(f"{text_path(table)} is empty: write one JSON object per line (path, label[, split])")
