"""What similar and suggest share about their outputs: a table (--out, `-` for stdout) and an optional page
(--html), neither inside the folders read, and the files written, reported."""

from __future__ import annotations

from pathlib import Path

import click

from headstart.console.options import (
    batch_option,
    cache_option,
    device_option,
    pick_backbone_option,
    quiet_option,
    refuse_output_inside_inputs,
    workers_option,
)
from headstart.console.reporter import Reporter


def table_option(default: Path, columns: str):
    """--out: the table written, `-` for stdout."""
    return click.option(
        "--out",
        type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
        default=default,
        show_default=True,
        help=f"The table to write (- for stdout): {columns}.",
    )


def page_option(what: str):
    """--html: an optional self-contained page."""
    return click.option(
        "--html",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help=f"Also write a self-contained page of {what}  [default: no page]",
    )


def backbone_run_options(command):
    """The options of a command that may run images through the cache's backbone: --cache, --backbone, --device,
    --batch-size, --workers and --quiet."""
    for option in reversed(
        (cache_option, pick_backbone_option, device_option, batch_option, workers_option, quiet_option)
    ):
        command = option(command)
    return command


def prepare_outputs(report: Reporter, out: Path, html: Path | None, inputs: tuple[Path, ...]) -> None:
    """Results to stderr when the table goes to stdout; refuse a table or page inside the folders read."""
    if str(out) == "-":
        report.results_to_stderr()
    for target in (out, html):
        if target is not None and str(target) != "-":
            refuse_output_inside_inputs(target, inputs)


def show_files(report: Reporter, files: list[str]) -> None:
    """The files written (not stdout)."""
    for path in files:
        if path != "-":
            report.note(f"-> {path}")
