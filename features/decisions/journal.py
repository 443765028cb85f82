"""apply's journal (`QUARANTINE/apply-NNNN.jsonl`): every rename, written down before it happens. This docstring
is its schema.

JSON Lines, one object per line, appended and flushed to disk (fsync) before the rename it announces:

    {"journal": 2, "producer": "headstart <version>", "created": ISO 8601 UTC, "data": absolute dataset folder,
     "quarantine": absolute quarantine folder, "decisions": the decisions file,
     "table": the absolute label table apply --labels edited, else null (format 2)}          the first line
    {"op": "move", "from": absolute path, "to": absolute path, "sha256": hex, "made": [folders created for it]}
    {"op": "table", "path": absolute label table, "before": absolute copy of its old bytes in the quarantine folder,
     "sha256": the old bytes' hex, "after": the new bytes' hex}          apply --labels: before the table is replaced
    {"op": "done", "moves": int}                                                          the last line, when whole

Format 2 added the table line (format 1 journals, moves only, are read as before). With `apply --labels TABLE` the
old table's bytes are copied to `apply-NNNN.before<suffix>` beside the journal, that copy and the table line put
on disk, and only then is the table replaced whole (write-then-rename): after an interruption the table holds its
old bytes or its new ones. `apply --undo --labels TABLE` puts the copy's bytes back when the table holds the new
ones (byte for byte), does nothing when it still holds the old ones, and lists it when it holds anything else.

A move line is written before its rename, so after an interruption at any moment each file is at `from` (the
rename never happened) or at `to` (it did); never both, never neither. `apply --undo` reads the newest journal not
yet undone, renames every file found at `to` back to `from` (never over a file; a file whose sha256 is not the
recorded one is listed and left), removes the folders the moves created when they are empty, and renames the
journal to `apply-NNNN.undone.jsonl`. It reads the journal as untrusted input: every path must lie inside the
recorded dataset or quarantine folder, which must be the ones given; a torn last line (a kill while writing it) is
ignored, since its rename had not begun (a journal whose only line is torn, or empty, moved nothing).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from headstart.features import __version__

FORMAT_VERSION = 2
READABLE = (1, 2)
PREFIX, SUFFIX, UNDONE = "apply-", ".jsonl", ".undone.jsonl"
_NAME = re.compile(r"apply-(\d{4,})\.jsonl")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class JournalError(ValueError):
    """A journal that cannot be trusted or does not belong to the dataset given; the message says what to do."""


@dataclass
class Entry:
    """One recorded move."""

    source: Path
    target: Path
    sha256: str
    made: list[Path] = field(default_factory=list)


@dataclass
class TableEntry:
    """The recorded table rewrite: the table, the copy of its old bytes, and both contents' sha256."""

    table: Path
    before: Path
    sha256: str
    after: str


def journals(folder: Path) -> list[Path]:
    """The journals not yet undone in folder, oldest first."""
    numbered = []
    for name in os.listdir(folder) if folder.is_dir() else []:
        if match := _NAME.fullmatch(name):
            numbered.append((int(match.group(1)), name))
    return [folder / name for _, name in sorted(numbered)]


def next_journal(folder: Path) -> Path:
    """The name of the next journal in folder (undone ones count: numbers are never reused)."""
    numbers = [int(match.group(1)) for name in os.listdir(folder) if (match := re.match(r"apply-(\d{4,})\.", name))]
    return folder / f"{PREFIX}{max(numbers, default=0) + 1:04d}{SUFFIX}"


def write_line(handle: IO[str], record: dict) -> None:
    """Append one record and put it on disk before returning."""
    handle.write(json.dumps(record) + "\n")
    handle.flush()
    os.fsync(handle.fileno())


def header(data: Path, quarantine: Path, decisions: Path, table: Path | None = None) -> dict:
    """The journal's first line."""
    return {
        "table": None if table is None else str(table.resolve()),
        "journal": FORMAT_VERSION,
        "producer": f"headstart {__version__}",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": str(data.resolve()),
        "quarantine": str(quarantine.resolve()),
        "decisions": str(decisions),
    }


def _path(value: object, roots: tuple[Path, ...], journal: Path) -> Path:
    if not isinstance(value, str) or not any(Path(value).resolve().is_relative_to(root) for root in roots):
        raise JournalError(f"{journal} names a path outside its dataset and quarantine folders: it is not apply's")
    return Path(value)


def _entry(record: dict, roots: tuple[Path, ...], journal: Path) -> Entry:
    made = record.get("made", [])
    if not isinstance(made, list) or not _SHA256.fullmatch(str(record.get("sha256", ""))):
        raise JournalError(f"{journal} holds a damaged move record: restore it, or move the files back by hand")
    return Entry(
        _path(record.get("from"), roots, journal),
        _path(record.get("to"), roots, journal),
        record["sha256"],
        [_path(folder, roots, journal) for folder in made],
    )


def read_journal(journal: Path, data: Path, quarantine: Path) -> list[Entry]:
    """The journal's moves in the order made; a JournalError when it is not for this dataset or is damaged."""
    records, roots = _records(journal, data, quarantine)
    moves = [record for record in records[1:] if isinstance(record, dict) and record.get("op") == "move"]
    return [_entry(record, roots, journal) for record in moves]


def read_table_entry(journal: Path, data: Path, quarantine: Path, table: Path | None) -> TableEntry | None:
    """The journal's table rewrite (None: it made none); a JournalError when it names another table than `table`."""
    records, _ = _records(journal, data, quarantine)
    found = [record for record in records[1:] if isinstance(record, dict) and record.get("op") == "table"]
    if not found:
        return None
    record = found[0]
    named = Path(str(record.get("path")))
    if table is None or named != table.resolve():
        raise JournalError(f"{journal} rewrote the label table {named}: pass --labels {named} to undo it")
    before = _path(record.get("before"), (quarantine.resolve(),), journal)
    if not all(_SHA256.fullmatch(str(record.get(key, ""))) for key in ("sha256", "after")):
        raise JournalError(f"{journal} holds a damaged table record: restore it, or restore the table from {before}")
    return TableEntry(named, before, record["sha256"], record["after"])


def _records(journal: Path, data: Path, quarantine: Path) -> tuple[list, tuple[Path, Path]]:
    """The journal's records, its first checked to be a readable header for this dataset and quarantine."""
    lines = journal.read_text(encoding="utf-8").split("\n")
    records = []
    for number, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number >= len(lines) - 2:
                break  # the torn last line of a killed apply, or the empty string after the last newline
            raise JournalError(f"{journal} line {number + 1} is not JSON: restore it") from None
    roots = (data.resolve(), quarantine.resolve())
    if not records:
        return [], roots  # an apply killed before its first line was on disk: it had moved nothing
    first = records[0] if isinstance(records[0], dict) else {}
    if first.get("journal") not in READABLE:
        raise JournalError(f"{journal} is not an apply journal of format {', '.join(map(str, READABLE))}")
    if (Path(str(first.get("data"))), Path(str(first.get("quarantine")))) != roots:
        raise JournalError(f"{journal} is for {first.get('data')}, not {data}: pass that --data")
    return records, roots
