"""The one CSV writer: every CSV headstart writes (predictions, evaluate's mistakes, the audit's tables, sweep.csv)
goes through `CsvWriter`, so every text cell follows one rule and every file reads with defaults.

- The first line is the header row, then one row per record: no comment line, no preamble, so `csv.reader` and
  `pandas.read_csv` read every file with their default options. Format versions live in the command's JSON
  outputs (metrics.json, audit.json), never in the CSV.
- Python's csv module quotes a cell as needed, so commas, quotes, newlines and non-ASCII round-trip.
- Spreadsheet formula injection: a text cell that starts with = + - @ (or a tab or carriage return) would be run
  as a formula by Excel, LibreOffice or Google Sheets. Such a cell is written with a leading apostrophe
  (`'=HYPERLINK(...)`), which spreadsheets show as text and never evaluate; a number such as `-0.25` or `-inf`
  is not text and is written as it is. Paths are made safe first by `safe_path` (`./` before the name: the same
  file, still a path), which the rule then leaves alone. The rule applies to every cell, class names included
  (`label`, `label_<k>`, `true`, `predicted`, `given`, `suggested`, `nearest`).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import IO

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
TEXT_GUARD = "'"


def _number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return cell[0] in "+-"  # a tab or carriage return before digits is still text: float() would strip it


def safe_cell(value: object) -> str:
    """The cell as written: a text cell that a spreadsheet would run as a formula gets a leading apostrophe."""
    cell = value if isinstance(value, str) else str(value)
    if cell.startswith(FORMULA_STARTS) and not _number(cell):
        return TEXT_GUARD + cell
    return cell


def safe_path(path: str) -> str:
    """A relative path as written in a CSV cell: ./ before a formula-like start, so it still names the same file."""
    return f"./{path}" if path.startswith(FORMULA_STARTS) else path


class CsvWriter:
    """csv.writer with the formula-safe rule applied to every cell; `header` is written first."""

    def __init__(self, handle: IO[str], header: list[str]):
        self._writer = csv.writer(handle)
        self.writerow(header)

    def writerow(self, row: Iterable[object]) -> None:
        """One row, every cell through `safe_cell`."""
        self._writer.writerow([safe_cell(cell) for cell in row])
