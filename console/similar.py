"""The similar command, its options, and what it prints: the queries answered, the splits searched, the files."""

from __future__ import annotations

from pathlib import Path

import click

from headstart.console.errors import errors_as_exit_codes
from headstart.console.outputs import backbone_run_options, page_option, prepare_outputs, show_files, table_option
from headstart.console.reporter import Reporter
from headstart.features.neighbours.config import POOL_SPLIT, SIMILAR_FORMATS, SimilarConfig

_SIMILAR_OPTIONS = (
    click.option(
        "-k",
        "k",
        type=click.IntRange(1),
        default=SimilarConfig.k,
        show_default=True,
        help="How many cached images to list per query, nearest first.",
    ),
    click.option(
        "--split",
        "splits",
        multiple=True,
        help="Search only this split (repeat for several)  [default: every split but the pool]",
    ),
    click.option("--pool", is_flag=True, help=f"Search the unlabeled pool too (the split named {POOL_SPLIT!r})."),
    table_option(SimilarConfig.out, "query, rank, path, split, label, similarity"),
    click.option(
        "--format",
        "output_format",
        type=click.Choice(SIMILAR_FORMATS),
        default=SimilarConfig.format,
        show_default=True,
        help="CSV, or JSON Lines (one object per neighbour).",
    ),
    page_option("each query's thumbnail beside its neighbours'"),
)


def similar_options(command):
    """similar's -k, --split, --pool, --out, --format and --html."""
    for option in reversed(_SIMILAR_OPTIONS):
        command = option(command)
    return command


def show_similar(report: Reporter, summary) -> None:
    """The counts, the queries that could not be read, and the files written."""
    report.note(
        f"{summary.queries} queries ({summary.cached} already cached), {summary.records} neighbours, "
        f"searched {summary.searched} rows of {', '.join(summary.splits)}"
    )
    for query, reason in summary.failed:
        report.warn(f"skipped {query}: {reason}")
    show_files(report, summary.files)


@click.command("similar")
@click.argument("queries", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@similar_options
@backbone_run_options
@click.pass_context
def similar_command(ctx: click.Context, queries: tuple[Path, ...], out: Path, html: Path | None, **options) -> None:
    """For each image in QUERIES (files, or folders searched recursively), the nearest cached images by their
    features; an image not in the cache is run through the backbone its features came from."""
    report = ctx.ensure_object(Reporter)
    prepare_outputs(report, out, html, queries)
    with errors_as_exit_codes():
        from headstart.features.neighbours import find_similar

        config = SimilarConfig(
            queries=queries,
            out=out,
            html=html,
            format=options.pop("output_format"),
            splits=tuple(options.pop("splits")),
            **options,
        )
        with report.progress("similar", unit="img") as on_progress:
            summary = find_similar(config, on_progress, report.warn)
        show_similar(report, summary)
