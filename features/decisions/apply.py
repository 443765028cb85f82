"""The apply step: decisions -> plan -> (with yes) each rename journalled before it happens; and its undo."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from headstart.features.decisions.config import ApplyConfig, quarantine_folder
from headstart.features.decisions.formats import DecisionsError, read_decisions
from headstart.features.decisions.journal import (
    SUFFIX,
    UNDONE,
    TableEntry,
    header,
    journals,
    next_journal,
    read_journal,
    read_table_entry,
    write_line,
)
from headstart.features.decisions.plan import Move, Plan, file_sha256, plan_decisions
from headstart.features.decisions.table import Edit, TablePlan, plan_table, rewritten
from headstart.features.files.atomic import atomic_write
from headstart.features.files.outputs import Output, check_outputs
from headstart.features.sources.tables import TableColumns


@dataclass
class ApplyResult:
    """The plan, the moves made (none on a dry run) and the journal that records them."""

    plan: Plan | TablePlan
    done: list[Move] = field(default_factory=list)
    journal: Path | None = None
    edited: list[Edit] = field(default_factory=list)  # apply --labels: the table's rows changed (none on a dry run)


@dataclass
class UndoResult:
    """The journal undone, the files put back, and those left where they are with why."""

    journal: Path
    restored: int = 0
    left: list[tuple[str, str]] = field(default_factory=list)
    table: Path | None = None  # the label table put back as it was, when the apply rewrote one


def _folders_to_make(target: Path) -> list[Path]:
    """The folders missing above target, outermost first."""
    missing = []
    folder = target.parent
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    return missing[::-1]


def move_file(source: Path, target: Path) -> None:
    """One rename that never replaces a file (checked just before; the journal holds the plan)."""
    if os.path.lexists(target):
        raise FileExistsError(f"{target} appeared during apply: it is never overwritten")
    os.rename(source, target)


def dataset_folder(config: ApplyConfig) -> tuple[Path, Path]:
    """The dataset folder (--data, else the one the cache's features file records) and the quarantine folder."""
    if config.data is not None:
        data = Path(config.data)
    else:
        from headstart.features.files.cachedir import chosen_features
        from headstart.features.store import FeatureStore

        with FeatureStore(chosen_features(config.cache, config.backbone)) as store:
            data = Path(store.header.data_root)
    if not data.is_dir():
        raise DecisionsError(f"the dataset folder {data} is not a folder: pass --data FOLDER")
    quarantine = quarantine_folder(config, data)
    if quarantine.resolve().is_relative_to(data.resolve()):
        raise DecisionsError(f"--quarantine {quarantine} is inside {data}: extract would read it back; choose another")
    return data, quarantine


def apply_decisions(config: ApplyConfig, on_move: Callable[[Move], None] | None = None) -> ApplyResult:
    """Plan config.decisions on config.data; with config.yes, carry out every move, each journalled first."""
    data, quarantine = dataset_folder(config)
    if config.decisions is None:
        raise DecisionsError("name the decisions file to apply (or pass --undo)")
    decisions, invalid = read_decisions(config.decisions)
    if config.labels is not None:
        return _apply_table(config, plan_table(decisions, invalid, data, quarantine, config.labels, _columns(config)))
    plan = plan_decisions(decisions, invalid, data, quarantine)
    result = ApplyResult(plan)
    if not config.yes or not plan.moves:
        return result
    quarantine.mkdir(parents=True, exist_ok=True)
    result.journal = next_journal(quarantine)
    with open(result.journal, "x", encoding="utf-8") as handle:
        write_line(handle, header(data, quarantine, Path(config.decisions)))
        for move in plan.moves:
            made = _folders_to_make(move.target)
            write_line(
                handle,
                {
                    "op": "move",
                    "from": str(move.source.resolve()),
                    "to": str(move.target.resolve()),
                    "sha256": move.sha256,
                    "made": [str(folder.resolve()) for folder in made],
                },
            )
            for folder in made:
                folder.mkdir()
            move_file(move.source, move.target)
            result.done.append(move)
            if on_move is not None:
                on_move(move)
        write_line(handle, {"op": "done", "moves": len(result.done)})
    return result


def _columns(config: ApplyConfig) -> TableColumns:
    return TableColumns(path=config.path_column, label=config.label_column, split=config.split_column)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _apply_table(config: ApplyConfig, plan: TablePlan) -> ApplyResult:
    """With config.yes: the old table copied beside the journal, the rewrite journalled, then the table replaced."""
    result = ApplyResult(plan)
    if not config.yes or not plan.edits:
        return result
    check_outputs(config.cache, Output("--labels", plan.table))
    new = rewritten(plan.table, plan.original, _columns(config), plan.edits)
    plan.quarantine.mkdir(parents=True, exist_ok=True)
    result.journal = next_journal(plan.quarantine)
    before = result.journal.with_name(result.journal.name[: -len(SUFFIX)] + ".before" + plan.table.suffix)
    with atomic_write(before) as out:
        out.write(plan.original)
    with open(result.journal, "x", encoding="utf-8") as handle:
        write_line(handle, header(plan.data, plan.quarantine, Path(config.decisions or ""), plan.table))
        record = {"path": str(plan.table.resolve()), "before": str(before.resolve()), "sha256": _sha(plan.original)}
        write_line(handle, {"op": "table", **record, "after": _sha(new)})
        if file_sha256(plan.table) != record["sha256"]:
            raise DecisionsError(f"{plan.table} changed while apply read it: run apply again")
        with atomic_write(plan.table) as out:
            out.write(new)
        result.edited = list(plan.edits)
        write_line(handle, {"op": "done", "moves": 0, "edits": len(plan.edits)})
    return result


def _put_table_back(entry: TableEntry, result: UndoResult) -> None:
    """The table's old bytes back when it holds the new ones; nothing when it still holds the old; else listed."""
    now = file_sha256(entry.table)
    if now == entry.sha256:
        return  # the rewrite never happened
    if now != entry.after:
        result.left.append((str(entry.table), "changed since apply rewrote it (its sha256 differs): restore by hand"))
        return
    old = entry.before.read_bytes() if file_sha256(entry.before) == entry.sha256 else None
    if old is None:
        result.left.append((str(entry.table), f"its old bytes in {entry.before} are missing or changed"))
        return
    with atomic_write(entry.table) as out:
        out.write(old)
    result.table = entry.table


def _put_back(entry, result: UndoResult) -> None:
    if not os.path.lexists(entry.target):
        if not os.path.lexists(entry.source):
            result.left.append((str(entry.source), f"missing: neither it nor {entry.target} exists"))
        return  # its rename never happened: it is where it was
    if os.path.lexists(entry.source):
        result.left.append((str(entry.target), f"{entry.source} exists again: never overwritten"))
        return
    if file_sha256(entry.target) != entry.sha256:
        result.left.append((str(entry.target), "changed since apply moved it (its sha256 differs)"))
        return
    entry.source.parent.mkdir(parents=True, exist_ok=True)
    move_file(entry.target, entry.source)
    result.restored += 1


def undo_last(config: ApplyConfig) -> UndoResult:
    """Undo the newest apply not yet undone: every moved file back where it was, byte for byte."""
    data, quarantine = dataset_folder(config)
    found = journals(quarantine)
    if not found:
        raise DecisionsError(f"{quarantine} holds no apply journal to undo: nothing was applied to {data}")
    journal = found[-1]
    entries = read_journal(journal, data, quarantine)
    table = read_table_entry(journal, data, quarantine, config.labels)
    result = UndoResult(journal)
    if table is not None:
        _put_table_back(table, result)
    for entry in reversed(entries):
        _put_back(entry, result)
    for entry in reversed(entries):
        for folder in reversed(entry.made):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    if not result.left:  # else it stays the newest: the next --undo tries the files left again
        journal.rename(journal.with_name(journal.name[: -len(".jsonl")] + UNDONE))
    return result
