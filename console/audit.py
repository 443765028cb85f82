"""The audit command's options, and what it prints: a bar per stage, the leakage warning, the counts, the files."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import click

from headstart.console.options import pick_backbone_option
from headstart.console.reporter import Reporter
from headstart.heads.audit.config import SCORES, AuditConfig

_OPTIONS = [
    click.option(
        "--head",
        "head_kind",
        type=click.Choice(["logreg", "sgd"]),
        default=AuditConfig().train.head,
        show_default=True,
        help="The head scoring every image (train-head's --head): logreg fits to "
        "convergence; sgd is the tutorial's recipe with its defaults.",
    ),
    click.option(
        "--folds",
        type=click.IntRange(2),
        default=AuditConfig().folds,
        show_default=True,
        help="Folds for the out-of-fold probabilities of the train images.",
    ),
    click.option(
        "--score",
        type=click.Choice(SCORES),
        default=AuditConfig().score,
        show_default=True,
        help="How label issues are ranked (confident learning's self-confidence or normalized margin).",
    ),
    click.option(
        "--near-threshold",
        type=click.FloatRange(-1, 1),
        default=AuditConfig().near_threshold,
        show_default=True,
        help="Whitened cosine similarity from which two images are near duplicates.",
    ),
    click.option(
        "--outlier-quantile",
        type=click.FloatRange(0, 1),
        default=AuditConfig().outlier_quantile,
        show_default=True,
        help="Outliers: images scoring above this quantile of the train images.",
    ),
    click.option(
        "--curve-seeds",
        type=click.IntRange(1),
        default=AuditConfig().curve_seeds,
        show_default=True,
        help="Seeds per learning-curve point (mean and spread).",
    ),
    click.option(
        "--report-rows",
        type=click.IntRange(0),
        default=AuditConfig().report_rows,
        show_default=True,
        help="Rows per section of report.html; the CSVs hold every row.",
    ),
    pick_backbone_option,
]


def audit_options(command):
    """The audit command's own options, each defaulting to AuditConfig's field."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


@contextmanager
def stage_progress(report: Reporter) -> Iterator[Callable[[str, int, int], None]]:
    """A callback(stage, done, total) that shows one bar per stage, each replacing the one before."""
    bars = ExitStack()
    current: dict = {}

    def _update(stage: str, done: int, total: int) -> None:
        if current.get("stage") != stage:
            bars.close()
            current.update(stage=stage, bar=bars.enter_context(report.progress(stage, unit="step")))
        current["bar"](done, total)

    with bars:
        yield _update


def show_audit(report: Reporter, result) -> None:
    """The leakage warning first, then the summary lines, then the files written."""
    for warning in result.warnings:
        report.warn(warning)
    for line in result.summary_lines:
        report.note(line)
    if result.files:  # multi-label features: their own set of files
        report.note(f"done in {result.seconds:.1f} s -> {result.folder}/ ({', '.join(result.files)})")
        return
    report.note(
        f"done in {result.seconds:.1f} s -> {result.folder}/ (report.html, label_issues.csv, "
        f"duplicates.csv, outliers.csv, learning_curve.png, audit.json)"
    )
