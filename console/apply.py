"""The apply command, its options, and what it prints: each move (or what would move), the skipped rows, the journal."""

from __future__ import annotations

from pathlib import Path

import click

from headstart.console.errors import errors_as_exit_codes
from headstart.console.options import cache_option, pick_backbone_option, quiet_option
from headstart.console.reporter import Reporter
from headstart.features.decisions.config import QUARANTINE_SUFFIX, ApplyConfig


def _where(path: Path, plan) -> str:
    """A path as printed: relative to the dataset folder, or to the quarantine folder after `quarantine:`."""
    for folder, prefix in ((plan.quarantine, "quarantine: "), (plan.data, "")):
        if path.resolve().is_relative_to(folder.resolve()):
            return prefix + path.resolve().relative_to(folder.resolve()).as_posix()
    return str(path)


def _show_edits(report: Reporter, result, dry_run: bool) -> None:
    """A label table's edits (made, or that would be made) and the count line."""
    plan = result.plan
    edits = plan.edits if dry_run else result.edited
    verb = "would edit" if dry_run else "edited"
    for edit in edits:
        change = "drop the row" if edit.cell == "drop" else f"{edit.cell} {edit.old!r} -> {edit.new!r}"
        report.note(f"{verb} {plan.table.name} line {edit.line} {edit.path}: {change} ({edit.decision.action})")
    for line, path, reason in plan.skipped:
        report.warn(f"skipped line {line} {path}: {reason}")
    report.note(f"{len(edits)} rows {verb}, {len(plan.ignored)} ignored, {len(plan.skipped)} skipped")
    report.note(f"in {plan.table}; no image moves (a dropped row leaves its file in {plan.data})")
    if dry_run and plan.edits:
        report.note("dry run: the table is unchanged; pass --yes to rewrite it")


def show_apply(report: Reporter, result, dry_run: bool) -> None:
    """Every move or table edit (made, or that would be made), the ignored and skipped rows, and the journal."""
    plan = result.plan
    if hasattr(plan, "edits"):
        _show_edits(report, result, dry_run)
        if result.journal is not None:
            report.note(f"journal: {result.journal} (apply --undo --labels {plan.table} puts the table back)")
        return
    verb = "would move" if dry_run else "moved"
    moves = plan.moves if dry_run else result.done
    for move in moves:
        report.note(f"{verb} {_where(move.source, plan)} -> {_where(move.target, plan)} ({move.decision.action})")
    for line, path, reason in plan.skipped:
        report.warn(f"skipped line {line} {path}: {reason}")
    report.note(f"{len(moves)} {verb}, {len(plan.ignored)} ignored, {len(plan.skipped)} skipped")
    report.note(f"in {plan.data}; removed images go to {plan.quarantine}")
    if dry_run and plan.moves:
        report.note("dry run: nothing moved; pass --yes to do it")
    if result.journal is not None:
        report.note(f"journal: {result.journal} (apply --undo puts every file back)")


def show_undo(report: Reporter, result) -> None:
    """The files put back, those left with why, and the journal."""
    for path, reason in result.left:
        report.warn(f"left {path}: {reason}")
    if result.table is not None:
        report.note(f"{result.table} put back as it was")
    report.note(f"{result.restored} files put back from {result.journal}; {len(result.left)} left")


@click.command("apply")
@click.argument("decisions", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The dataset folder the decisions' paths are relative to  [default: the one CACHE's features record]",
)
@click.option(
    "--quarantine",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=f"Where removed images and the journals go  [default: DATA{QUARANTINE_SUFFIX} beside DATA]",
)
@click.option(
    "--labels",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    show_default="none: the dataset is class folders, and images move",
    help="The dataset is this label table (extract --labels): rewrite its rows instead of moving images.",
)
@click.option("--path-column", default=ApplyConfig.path_column, show_default=True, help="The table's path column.")
@click.option("--label-column", default=ApplyConfig.label_column, show_default=True, help="The table's label column.")
@click.option("--split-column", default=None, help="The table's split column  [default: split, if present]")
@click.option("--yes", is_flag=True, help="Move the files. Without it, a dry run: print what would move.")
@click.option("--undo", is_flag=True, help="Put back every file the last apply moved, as it was.")
@cache_option
@pick_backbone_option
@quiet_option
@click.pass_context
def apply_command(ctx: click.Context, decisions: Path | None, undo: bool, **options) -> None:
    """Carry out a decisions file (report.html's "save decisions"): relabel, remove (into a quarantine folder),
    drop a duplicate's copy, move to another split. Never overwrites a file; skips stale and conflicting rows."""
    report = ctx.ensure_object(Reporter)
    if undo and decisions is not None:
        raise click.UsageError("--undo undoes the last apply: give no DECISIONS file with it")
    if not undo and decisions is None:
        raise click.UsageError("name the DECISIONS file to apply, or pass --undo")
    with errors_as_exit_codes():
        from headstart.features.decisions.apply import apply_decisions, undo_last

        config = ApplyConfig(decisions=decisions, **options)
        if undo:
            show_undo(report, undo_last(config))
        else:
            show_apply(report, apply_decisions(config), dry_run=not config.yes)
