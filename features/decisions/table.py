"""Decisions on a dataset named by a label table (`apply --labels TABLE`): each decision becomes an edit of the
table's row for its image, and the table is rewritten whole; no image file moves.

- relabel: the row's label cell becomes the new class; move-split: its split cell the new split (a table without a
  split column cannot be moved between splits: the row is skipped, saying so); remove and duplicate-of: the row is
  dropped. The image stays where it is: a table names images in a folder it does not own (another table may list
  the same file), so apply leaves the folder alone and the dropped row is the whole removal. `extract --labels
  TABLE` then leaves the image out; `apply --undo` brings the row back.
- Rows the decisions do not touch keep their bytes (their quoting, separators, line endings, a byte order mark);
  an edited row is written again by Python's csv module with the table's own separator and line ending, a JSON
  Lines row by `json.dumps`. No formula guard is added: a label table is data extract reads back, and an apostrophe
  before a class would change the class.
- A decision is skipped, with why, when its image is no row of the table, is named on several rows or relabels a
  multi-label row (`a|b`: edit those by hand), is missing, or changed since the decision was made (its sha256
  differs: stale).
- CSV, TSV and JSON Lines tables are rewritten; a Parquet table is refused in one line.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from headstart.features.decisions.formats import Decision, DecisionsError, InvalidRow
from headstart.features.decisions.plan import file_sha256
from headstart.features.folder import SPLIT_NAMES
from headstart.features.sources.tables import (
    JSONL_SUFFIXES,
    SNIFFED,
    TEXT_SUFFIXES,
    TableColumns,
    TableError,
    check_suffix,
)

MAX_TABLE_BYTES = 256 * 1024 * 1024  # the table and its new bytes are held in memory, and its old bytes kept


@dataclass(frozen=True)
class Edit:
    """One row changed: its line (its first line in the table), the image, the cell edited (`label`, `split`, or
    `drop` for a dropped row), its old and new values, and the decision."""

    line: int
    path: str
    cell: str
    old: str
    new: str
    decision: Decision


@dataclass
class _Row:
    """One row of the table: its physical lines [start, end), its cells (a JSON object for JSON Lines)."""

    start: int
    end: int
    cells: list[str] | dict
    ending: str  # the row's line ending, kept when it is written again


@dataclass
class _Parsed:
    """The table as lines and rows, with where its columns are."""

    lines: list[str]
    rows: list[_Row] = field(default_factory=list)
    delimiter: str | None = None  # None: JSON Lines
    columns: tuple[str, str, str | None] = ("path", "label", None)
    where: tuple[int, int, int | None] = (0, 1, None)


@dataclass
class TablePlan:
    """What apply would do to the table: its edits in file order, the ignored findings, the rows skipped with why."""

    data: Path
    quarantine: Path
    table: Path
    edits: list[Edit] = field(default_factory=list)
    ignored: list[Decision] = field(default_factory=list)
    skipped: list[tuple[int, str, str]] = field(default_factory=list)
    moves: list = field(default_factory=list)  # none: a table's images never move
    original: bytes = b""  # the table's bytes as planned: the rewrite starts from these, the journal keeps them


def read_table_bytes(table: Path) -> bytes:
    """The table's bytes, refused in one line when it is not a readable CSV, TSV or JSON Lines file of sensible size."""
    suffix = check_suffix(table)
    if suffix not in TEXT_SUFFIXES and suffix not in JSONL_SUFFIXES:
        raise DecisionsError(f"{table} is a Parquet table: apply rewrites CSV, TSV and JSON Lines tables; convert it")
    try:
        with open(table, "rb") as handle:
            data = handle.read(MAX_TABLE_BYTES + 1)
    except OSError as error:
        raise DecisionsError(f"the label table {table} cannot be read ({error.strerror}): check --labels") from None
    if len(data) > MAX_TABLE_BYTES:
        raise DecisionsError(f"{table} is larger than {MAX_TABLE_BYTES >> 20} MiB: apply edits smaller tables")
    return data


def _ending(line: str) -> str:
    return "\r\n" if line.endswith("\r\n") else ("\n" if line.endswith("\n") else "")


def _parse(table: Path, data: bytes, columns: TableColumns) -> _Parsed:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DecisionsError(f"{table} is not UTF-8 text (byte {error.start}): save it as UTF-8") from None
    parsed = _Parsed(text.splitlines(keepends=True))
    if check_suffix(table) in JSONL_SUFFIXES:
        return _parse_jsonl(table, parsed, columns)
    if not parsed.lines:
        raise DecisionsError(f"{table} is empty: it has no header row")
    header = parsed.lines[0].lstrip("\ufeff")
    parsed.delimiter = TEXT_SUFFIXES[check_suffix(table)] or max(SNIFFED, key=header.count)
    reader = csv.reader(iter(parsed.lines), delimiter=parsed.delimiter, strict=True)
    try:
        names = [name.strip().lstrip("\ufeff") for name in next(reader)]
        parsed.columns = columns.pick(table, names)
        parsed.where = tuple(names.index(name) if name else None for name in parsed.columns)  # type: ignore[assignment]
        start = reader.line_num
        for cells in reader:
            end = reader.line_num
            if any(cell.strip() for cell in cells):
                cells += [""] * (len(names) - len(cells))
                parsed.rows.append(_Row(start, end, cells, _ending(parsed.lines[end - 1])))
            start = end
    except (csv.Error, TableError) as error:
        raise DecisionsError(f"{table} cannot be read as a label table ({error}): fix it") from None
    return parsed


def _parse_jsonl(table: Path, parsed: _Parsed, columns: TableColumns) -> _Parsed:
    for number, line in enumerate(parsed.lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict):
            raise DecisionsError(f"{table} line {number + 1} is not a JSON object: fix it")
        if not parsed.rows:
            try:
                parsed.columns = columns.pick(table, list(record))
            except TableError as error:
                raise DecisionsError(str(error)) from None
        parsed.rows.append(_Row(number, number + 1, record, _ending(line)))
    return parsed


def _cell(parsed: _Parsed, row: _Row, which: int) -> str:
    if isinstance(row.cells, dict):
        name = parsed.columns[which]
        value = row.cells.get(name) if name else None
        return "" if value is None else str(value).strip()
    index = parsed.where[which]
    return "" if index is None else row.cells[index].strip()


def _name(data: Path, path: str) -> str:
    """A row's path as the features file names it: relative to the dataset folder, / separators ("" outside)."""
    root = os.path.normpath(os.path.abspath(data))
    full = os.path.normpath(os.path.join(root, os.path.expanduser(path)))
    return os.path.relpath(full, root).replace(os.sep, "/") if full.startswith(root + os.sep) else ""


def _edit(decision: Decision, parsed: _Parsed, row: _Row) -> Edit | str:
    """The edit a decision makes to its row, or why it makes none."""
    line = row.start + 1
    if decision.action in ("remove", "duplicate-of"):
        return Edit(line, decision.path, "drop", _cell(parsed, row, 1), "", decision)
    if decision.action == "relabel":
        old = _cell(parsed, row, 1)
        if "|" in old:
            return f"a multi-label row ({old}): relabel it by hand"
        return (
            f"already in class {old}"
            if old == decision.argument
            else Edit(line, decision.path, "label", old, decision.argument, decision)
        )
    if parsed.columns[2] is None:
        return "the table has no split column: add one to move images between splits"
    if decision.argument not in SPLIT_NAMES:
        return f"move-split needs one of {', '.join(SPLIT_NAMES)}, not {decision.argument!r}"
    old = _cell(parsed, row, 2)
    return (
        f"already in split {old}"
        if old == decision.argument
        else Edit(line, decision.path, "split", old, decision.argument, decision)
    )


def plan_table(
    decisions: list[Decision],
    invalid: list[InvalidRow],
    data: Path,
    quarantine: Path,
    table: Path,
    columns: TableColumns,
) -> TablePlan:
    """The edits that carry out decisions on the label table; nothing is touched."""
    original = read_table_bytes(table)
    parsed = _parse(table, original, columns)
    plan = TablePlan(Path(data), Path(quarantine), Path(table), original=original)
    plan.skipped += [(row.line, row.path, f"invalid row: {row.reason}") for row in invalid]
    rows: dict[str, list[_Row]] = {}
    for row in parsed.rows:
        rows.setdefault(_name(plan.data, _cell(parsed, row, 0)), []).append(row)
    acted = [decision for decision in decisions if decision.action != "ignore"]
    plan.ignored = [decision for decision in decisions if decision.action == "ignore"]
    twice = {path for path, count in Counter(decision.path for decision in acted).items() if count > 1}
    dropped = {decision.path for decision in acted if decision.action in ("remove", "duplicate-of")}
    for decision in acted:
        found = rows.get(decision.path, [])
        reason = _problem(decision, found, twice, dropped, plan, rows)
        edit = reason or _edit(decision, parsed, found[0])
        if isinstance(edit, Edit):
            plan.edits.append(edit)
        else:
            plan.skipped.append((decision.line, decision.path, edit))
    plan.edits.sort(key=lambda edit: edit.line)
    return plan


def _problem(decision: Decision, found: list, twice: set, dropped: set, plan: TablePlan, rows: dict) -> str | None:
    if decision.path in twice:
        return "conflict: several decisions for this image"
    if not found:
        return f"no row of {plan.table.name} names this image"
    if len(found) > 1:
        return f"{plan.table.name} names this image on {len(found)} rows: edit them by hand"
    sha = file_sha256(plan.data / decision.path)
    if sha is None:
        return "no such regular file"
    if sha != decision.sha256:
        return "stale: the file changed since the decision was made (its sha256 differs)"
    if decision.action == "duplicate-of":
        if decision.argument == decision.path:
            return "an image cannot be a duplicate of itself"
        if decision.argument in dropped:
            return f"the kept image {decision.argument} is itself removed"
        if decision.argument not in rows or file_sha256(plan.data / decision.argument) is None:
            return f"the kept image {decision.argument} is missing"
    return None


def _written(parsed: _Parsed, row: _Row, edit: Edit) -> str:
    if isinstance(row.cells, dict):
        record = dict(row.cells)
        record[parsed.columns[1 if edit.cell == "label" else 2] or ""] = edit.new
        return json.dumps(record, ensure_ascii=False) + row.ending
    cells = list(row.cells)
    cells[parsed.where[1 if edit.cell == "label" else 2] or 0] = edit.new
    out = io.StringIO()
    csv.writer(out, delimiter=parsed.delimiter or ",", lineterminator=row.ending or "").writerow(cells)
    return out.getvalue()


def rewritten(table: Path, data: bytes, columns: TableColumns, edits: list[Edit]) -> bytes:
    """The table's new bytes: each edited row written again or dropped, every other line as it was."""
    parsed = _parse(table, data, columns)
    by_line = {edit.line: edit for edit in edits}
    lines = list(parsed.lines)
    for row in parsed.rows:
        edit = by_line.get(row.start + 1)
        if edit is None:
            continue
        lines[row.start] = "" if edit.cell == "drop" else _written(parsed, row, edit)
        for index in range(row.start + 1, row.end):
            lines[index] = ""
    return "".join(lines).encode("utf-8")
