"""One writer per cache folder: a second run on the same folder is refused at once instead of interleaving writes."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

LOCK_FILE = ".lock"


class CacheBusyError(RuntimeError):
    """Another headstart process holds the cache folder."""


@contextmanager
def cache_lock(folder: str | os.PathLike, command: str) -> Iterator[None]:
    """Hold an exclusive lock on folder; the OS releases it if the process dies, so it never goes stale."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise CacheBusyError(
                f"{folder} is in use by {holder}: wait for it to finish, or use another --cache folder"
            ) from None
        handle.truncate(0)
        handle.write(f"`{command}` (pid {os.getpid()})")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)
