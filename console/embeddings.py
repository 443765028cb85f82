"""The embeddings command, its options, and what it prints: the files written, the rows per split, the width."""

from __future__ import annotations

from pathlib import Path

import click

from headstart.console.errors import errors_as_exit_codes
from headstart.console.options import cache_option, pick_backbone_option, quiet_option
from headstart.console.reporter import Reporter
from headstart.features.vectors.config import EMBEDDING_FORMATS, EmbeddingsConfig

_EMBEDDINGS_OPTIONS = (
    click.option(
        "--format",
        "output_format",
        type=click.Choice(EMBEDDING_FORMATS),
        default=EmbeddingsConfig.format,
        show_default=True,
        help="parquet: one file, the vector a fixed-size float32 list column (pip install 'headstart[embeddings]'); "
        "npy: OUT.npy with OUT.csv (path, split, label) and OUT.json (backbone, weights, preprocessing) beside it.",
    ),
    click.option(
        "--out",
        type=click.Path(dir_okay=False, path_type=Path),
        required=True,
        help="File to write (for npy, a name ending in .npy).",
    ),
)


def embeddings_options(command):
    """embeddings' --format and --out."""
    for option in reversed(_EMBEDDINGS_OPTIONS):
        command = option(command)
    return command


def show_embeddings(report: Reporter, summary) -> None:
    """One line per file written, and the count of rows per split."""
    counts = ", ".join(f"{split} {count}" for split, count in summary.rows.items())
    report.note(f"{summary.total} rows ({counts}), {summary.dim} values each")
    for path in summary.files:
        report.note(f"-> {path}")


@click.command("embeddings")
@embeddings_options
@cache_option
@pick_backbone_option
@quiet_option
@click.pass_context
def embeddings_command(ctx: click.Context, output_format: str, out: Path, cache: Path, backbone: str | None) -> None:
    """Write every cached row (path, split, label, the features) as Parquet or .npy, for other tools."""
    report = ctx.ensure_object(Reporter)
    with errors_as_exit_codes():
        from headstart.features.vectors import write_embeddings

        config = EmbeddingsConfig(out=out, cache=cache, format=output_format, backbone=backbone)
        with report.progress("embeddings", unit="row") as on_progress:
            summary = write_embeddings(config, on_progress)
        show_embeddings(report, summary)
