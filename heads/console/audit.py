"""What `audit` prints: a progress bar per stage, the counts, the leakage warning and where each file is."""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from typing import Callable, Iterator

from .reporter import Reporter


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
    report.note(f"done in {result.seconds:.1f} s -> {result.folder}/ (report.html, label_issues.csv, "
                f"duplicates.csv, outliers.csv, learning_curve.png, audit.json)")
