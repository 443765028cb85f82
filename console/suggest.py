"""The suggest command, its options, and what it prints: the images ranked, the suggestions' head, the files."""

from __future__ import annotations

from pathlib import Path

import click

from headstart.console.errors import errors_as_exit_codes
from headstart.console.outputs import backbone_run_options, page_option, prepare_outputs, show_files, table_option
from headstart.console.reporter import Reporter
from headstart.heads.suggest.config import STRATEGIES, SuggestConfig

_SUGGEST_OPTIONS = (
    click.option(
        "-n",
        "n",
        type=click.IntRange(1),
        default=SuggestConfig.n,
        show_default=True,
        help="How many images to suggest, the one to label first first.",
    ),
    click.option(
        "--strategy",
        type=click.Choice(STRATEGIES),
        default=SuggestConfig.strategy,
        show_default=True,
        help="margin: the head cannot choose between two classes; entropy: its belief is spread; diversity: far "
        "from everything labelled and suggested; unknown: unlike anything labelled; combined: diversity weighted "
        "by margin; random: the control. docs/label-loop.md says how the default was chosen.",
    ),
    click.option(
        "--head",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="The trained head that ranks the images  [default: CACHE/head.pt]",
    ),
    click.option(
        "--seed", type=click.IntRange(0), default=SuggestConfig.seed, show_default=True, help="random's order."
    ),
    table_option(SuggestConfig.out, "rank, path, sha256, score, suggested, confidence, why"),
    page_option("the suggestions' thumbnails"),
)


def suggest_options(command):
    """suggest's -n, --strategy, --head, --seed, --out and --html."""
    for option in reversed(_SUGGEST_OPTIONS):
        command = option(command)
    return command


def show_suggest(report: Reporter, summary) -> None:
    """The counts, the first suggestions, the images skipped, and the files written."""
    report.note(
        f"{summary.ranked} images of {summary.source} ranked by {summary.strategy}: "
        f"{len(summary.suggestions)} suggested"
    )
    for record in summary.suggestions[:5]:
        report.note(f"  {record.rank}. {record.path} ({record.suggested}, {record.score:.3f}): {record.why}")
    for image, reason in summary.skipped:
        report.warn(f"skipped {image}: {reason}")
    show_files(report, summary.files)


@click.command("suggest")
@click.argument("folders", nargs=-1, type=click.Path(exists=True, file_okay=False, path_type=Path))
@suggest_options
@backbone_run_options
@click.pass_context
def suggest_command(ctx: click.Context, folders: tuple[Path, ...], out: Path, html: Path | None, **options) -> None:
    """Which images to label next: the cache's unlabeled pool (extract --pool), or the images in FOLDERS run
    through the backbone the cache's features came from, ranked by the trained head."""
    report = ctx.ensure_object(Reporter)
    prepare_outputs(report, out, html, folders)
    with errors_as_exit_codes():
        from headstart.heads.suggest.step import suggest

        config = SuggestConfig(folders=folders, out=out, html=html, **options)
        with report.progress("suggest", unit="img") as on_progress:
            summary = suggest(config, on_progress, report.warn)
        show_suggest(report, summary)
