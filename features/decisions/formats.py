"""The decisions file (`decisions.csv`): what to do about each finding. This docstring is its schema.

Format 1. A CSV (UTF-8, a BOM allowed, comma-separated) whose header row is exactly these columns, in this order;
the header row is how a reader tells format 1 from a later one, which will add columns after these:

    path        the image, relative to the dataset folder (as the audit's CSVs and features.h5 write it)
    action      relabel | remove | duplicate-of | move-split | ignore
    argument    relabel: the new class; move-split: the split folder to move to; duplicate-of: the kept image's
                path (this one is removed); remove, ignore: empty
    sha256      the image's content hash when the decision was made (audit and suggest write it): a file whose
                content changed since is stale, and its decision is skipped
    source      what produced the row ("headstart report.html <version>", or a person's tool); free text

report.html writes it with the same rule as the one CSV writer (features/files/csvfile.py): a text cell that starts
with = + - @ gets a leading apostrophe, a path ./ before it; the reader takes both off again.

It is read as untrusted input: at most MAX_BYTES, MAX_ROWS rows; a row whose path is absolute, climbs out of the
folder (..), or is not a plain relative name, whose action is unknown, whose argument is missing or not a plain
name, or whose sha256 is not 64 hex digits is an invalid row: counted, listed with its line and skipped, never
acted on. A file that is not this format (no such header, not UTF-8, too large) is one DecisionsError.
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from headstart.features.files.csvfile import FORMULA_STARTS, TEXT_GUARD, CsvWriter, safe_path
from headstart.features.files.outputs import text_output
from headstart.features.files.regular import open_regular

FORMAT_VERSION = 1
COLUMNS = ["path", "action", "argument", "sha256", "source"]
ACTIONS = ("relabel", "remove", "duplicate-of", "move-split", "ignore")
MAX_BYTES = 64 * 1024 * 1024
MAX_ROWS = 1_000_000
_SHA256 = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[^/\\\x00-\x1f]{1,255}")  # one folder name: a class or a split


class DecisionsError(ValueError):
    """A decisions file that cannot be read at all; the message names it and the fix."""


@dataclass(frozen=True)
class Decision:
    """One row: what to do with the image at `path` (relative to the dataset folder)."""

    path: str
    action: str
    argument: str
    sha256: str
    source: str = ""
    line: int = 0  # the row's line in the file (1: the header)


@dataclass(frozen=True)
class InvalidRow:
    """A row not acted on: its line, its path as written, and why."""

    line: int
    path: str
    reason: str


def _unguard(cell: str) -> str:
    if cell.startswith(TEXT_GUARD) and cell[1:].startswith(FORMULA_STARTS):
        return cell[1:]
    return cell


def relative_path(text: str) -> str | None:
    """A plain relative path (posix separators), normalised; None when absolute, climbing out, or empty."""
    if not text or "\\" in text or "\x00" in text or text.startswith("/"):
        return None
    parts = [part for part in PurePosixPath(text).parts if part != "."]
    if not parts or any(part == ".." for part in parts):
        return None
    return "/".join(parts)


def _problem(decision: Decision) -> str | None:
    if decision.action not in ACTIONS:
        return f"action {decision.action!r} is not one of {', '.join(ACTIONS)}"
    if not _SHA256.fullmatch(decision.sha256):
        return "sha256 is not 64 lowercase hex digits"
    if decision.action in ("relabel", "move-split"):
        name = decision.argument
        if not _NAME.fullmatch(name) or name in (".", "..") or name.startswith("."):
            return f"{decision.action} needs a plain folder name as its argument, not {name!r}"
    if decision.action == "duplicate-of" and relative_path(decision.argument) is None:
        return f"duplicate-of needs the kept image's relative path as its argument, not {decision.argument!r}"
    return None


def _text(path: Path) -> str:
    descriptor = open_regular(path, fix="name the decisions CSV file")
    with open(descriptor, "rb") as handle:
        data = handle.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise DecisionsError(f"{path} is larger than {MAX_BYTES >> 20} MiB: split it into smaller decisions files")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DecisionsError(f"{path} is not UTF-8 text (byte {error.start}): save it as UTF-8 CSV") from None


def read_decisions(path: str | os.PathLike) -> tuple[list[Decision], list[InvalidRow]]:
    """The file's valid decisions in file order, and its invalid rows (listed, never acted on)."""
    path = Path(path)
    reader = csv.reader(io.StringIO(_text(path), newline=""))
    header = next(reader, None)
    if header is None or [_unguard(cell).strip() for cell in header] != COLUMNS:
        raise DecisionsError(
            f"{path} is not a decisions file (format {FORMAT_VERSION}): its header must be {','.join(COLUMNS)}"
        )
    decisions: list[Decision] = []
    invalid: list[InvalidRow] = []
    for line, row in enumerate(reader, start=2):
        if line - 1 > MAX_ROWS:
            raise DecisionsError(f"{path} has more than {MAX_ROWS} rows: split it into smaller decisions files")
        if not row:
            continue
        if len(row) != len(COLUMNS):
            invalid.append(InvalidRow(line, row[0] if row else "", f"{len(row)} cells, not {len(COLUMNS)}"))
            continue
        cells = [_unguard(cell) for cell in row]
        where = relative_path(cells[0])
        if where is None:
            invalid.append(InvalidRow(line, cells[0], "the path is not a relative path inside the dataset folder"))
            continue
        decision = Decision(where, cells[1], cells[2], cells[3], cells[4], line)
        reason = _problem(decision)
        if reason:
            invalid.append(InvalidRow(line, cells[0], reason))
            continue
        if decision.action == "duplicate-of":
            decision = Decision(where, decision.action, relative_path(cells[2]) or "", cells[3], cells[4], line)
        decisions.append(decision)
    return decisions, invalid


def write_decisions(out: str | os.PathLike, decisions: list[Decision]) -> int:
    """Write decisions as a format-1 file ('-': stdout), whole or not at all; the count written."""
    with text_output(out) as handle:
        writer = CsvWriter(handle, COLUMNS)
        for decision in decisions:
            argument = safe_path(decision.argument) if decision.action == "duplicate-of" else decision.argument
            writer.writerow([safe_path(decision.path), decision.action, argument, decision.sha256, decision.source])
    return len(decisions)
