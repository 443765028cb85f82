"""Write files whole or not at all: temporary files beside them, renamed over them only when complete."""

from __future__ import annotations

import os
import signal
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator


@contextmanager
def signals_held() -> Iterator[None]:
    """Delay Ctrl-C and SIGTERM until the block is done, so a step that must be whole is never cut in two.

    Python runs signal handlers in the main thread whichever thread the OS delivers to, so the handlers are
    swapped for ones that only record, and the recorded signal is raised again once the block ends.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {number: signal.signal(number, lambda number, frame: caught.append(number)) for number in held}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if caught:
            signal.raise_signal(caught[0])


def _new_file_mode(path: Path) -> int:
    """The mode the file would get if written in place: its current one, else 0666 less the umask."""
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _temporary_beside(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    os.chmod(temporary, _new_file_mode(path))  # mkstemp makes 0600 files
    return Path(temporary)


@contextmanager
def replace_together(*paths: str | os.PathLike) -> Iterator[list[Path]]:
    """Yield one temporary path per target; when the block succeeds all are renamed over their targets, in order
    (put the file others depend on last), and on any error all are deleted and every target is left as it was."""
    targets = [Path(path) for path in paths]
    temporaries: list[Path] = []
    try:
        temporaries = [_temporary_beside(target) for target in targets]
        yield temporaries
        for temporary in temporaries:
            with open(temporary, "rb+") as handle:
                os.fsync(handle.fileno())
        with signals_held():
            for temporary, target in zip(temporaries, targets):
                os.replace(temporary, target)
    except BaseException:
        for temporary in temporaries:
            temporary.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", **open_args) -> Iterator[IO]:
    """Yield a handle to a temporary file; on success it replaces path, on any error it is deleted."""
    with replace_together(path) as (temporary,):
        with open(temporary, mode, **open_args) as out:
            yield out
