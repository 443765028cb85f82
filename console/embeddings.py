"""The embeddings command's options, and what it prints: the files written, the rows per split, the width."""

from __future__ import annotations

from pathlib import Path

import click

from headstart.console.reporter import Reporter
from headstart.vectors.config import EMBEDDING_FORMATS, EmbeddingsConfig

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
