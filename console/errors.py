"""Library errors and signals as click exits: one line, exit 1; 130 for Ctrl-C, 143 for SIGTERM; no tracebacks."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from headstart.console.reporter import detach_closed_stdout
from headstart.features.interrupts import Stopped

EXIT_ERROR, EXIT_INTERRUPTED, EXIT_TERMINATED = 1, 130, 143


class Interrupted(click.ClickException):
    """Ctrl-C (exit 130), with what became of the outputs; its subclass Terminated is SIGTERM (exit 143)."""

    exit_code = EXIT_INTERRUPTED  # click declares exit_code a class variable: one class per code
    what = "interrupted"

    def __init__(self, replaced: list[Path]):
        if replaced:  # the signal came after (or while) outputs were renamed into place: say so
            super().__init__(f"{self.what} after writing {', '.join(map(str, replaced))}: those are the new results")
        else:
            super().__init__(f"{self.what}: previous results are untouched")


class Terminated(Interrupted):
    """SIGTERM (exit 143), with what became of the outputs."""

    exit_code = EXIT_TERMINATED
    what = "terminated"


def interrupted(signum: int, replaced: list[Path]) -> Interrupted:
    """The exit for a signal that stopped a command: Interrupted for SIGINT, Terminated for any other."""
    return Interrupted(replaced) if signum == signal.SIGINT else Terminated(replaced)


def _one_line(message: str) -> str:
    """Library messages can carry newlines (HDF5's include a timestamp); an error is one line."""
    return " ".join(message.split())


@contextmanager
def errors_as_exit_codes() -> Iterator[None]:
    """Library errors -> one-line message and exit 1; Ctrl-C -> 130; SIGTERM -> 143. Nothing else prints tracebacks."""
    from headstart.features import CacheBusyError
    from headstart.features.download import DownloadError
    from headstart.features.files.atomic import replaced_paths

    already_replaced = len(replaced_paths())
    try:
        yield
    except BrokenPipeError:  # data for stdout (predict --out -, info --json) whose reader stopped reading
        detach_closed_stdout()
        raise click.ClickException("stdout was closed before all the output was written") from None
    except (ValueError, CacheBusyError, DownloadError) as error:  # every library error names the path and the fix
        raise click.ClickException(_one_line(str(error))) from None
    except OSError as error:
        where = f" ({error.filename})" if error.filename else ""
        raise click.ClickException(_one_line(f"{error.strerror or error}{where}")) from None
    except KeyboardInterrupt:  # the default handler: the CLI run in-process (tests, a notebook)
        raise Interrupted(replaced_paths()[already_replaced:]) from None
    except Stopped as stop:
        raise interrupted(stop.signum, replaced_paths()[already_replaced:]) from None
