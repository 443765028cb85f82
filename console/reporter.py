"""The Reporter, the one place that prints: results to stdout, progress and warnings to stderr, plain off a terminal."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text


class _RateColumn(ProgressColumn):
    def __init__(self, unit: str):
        super().__init__()
        self.unit = unit

    def render(self, task) -> Text:
        return Text(f"{task.speed:.1f} {self.unit}/s" if task.speed else f"- {self.unit}/s")


def detach_closed_stdout() -> None:
    """The reader of stdout has gone (`| head`): point stdout at /dev/null, so nothing written later (nor the
    flush at exit) fails again."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, sys.stdout.fileno())
    os.close(null)


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """A report nobody reads any more is not a failure of the work it reports on (rich would exit 1)."""
        self.quiet = True
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, self.file.fileno())
        os.close(null)


class Reporter:
    """The one place that prints: results to stdout, progress and warnings to stderr; plain when not a terminal."""

    def __init__(self, quiet: bool = False):
        # markup=False: paths and class names like "IMG [edited].jpg" are printed as they are.
        self.out = _Console(quiet=quiet, highlight=False, markup=False)
        self.err = _Console(stderr=True, quiet=quiet, highlight=False, markup=False)

    def set_quiet(self) -> None:
        self.out.quiet = self.err.quiet = True

    def results_to_stderr(self) -> None:
        """When stdout carries data (predict --out -), everything else goes to stderr."""
        self.out = self.err

    def note(self, message: str) -> None:
        self.out.print(message)

    def warn(self, message: str) -> None:
        self.err.print(Text.assemble(("warning:", "yellow"), f" {message}"))

    def table(self, table: Table) -> None:
        self.out.print(table)

    @contextmanager
    def progress(self, description: str, unit: str = "img", delay: float = 0.5) -> Iterator[Callable[[int, int], None]]:
        """A callback(done, total) driving a bar with rate and time left; shown only once a step lasts `delay` s."""
        columns = [
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _RateColumn(unit),
            TimeRemainingColumn(),
        ]
        progress = Progress(*columns, console=self.err, disable=self.err.quiet)
        task = progress.add_task(description, total=None)
        started, shown = time.monotonic(), False

        def update(done: int, total: int) -> None:
            nonlocal shown
            progress.update(task, completed=done, total=total or None)
            if not shown and (not total or done < total) and time.monotonic() - started >= delay:
                progress.start()
                shown = True

        try:
            yield update
        finally:
            if shown:
                progress.stop()
