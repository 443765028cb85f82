"""One writer per cache folder: a second run on the same folder is refused at once instead of interleaving writes."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from headstart.features.files.cachedir import LOCK_FILE
from headstart.features.files.regular import UnsafeFileError, open_regular


class CacheBusyError(RuntimeError):
    """Another headstart process holds the cache folder."""


_held: set[int] = set()  # descriptors of the locks this process holds


def _let_go_in_child() -> None:
    """A forked child (a decoding worker) drops its copy of each held lock: a flock belongs to the open file, which
    fork shares, so a worker outliving a killed parent would otherwise keep the next run out for seconds."""
    for descriptor in _held:
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, descriptor)  # the number stays valid in the child; it just no longer refers to the lock
        os.close(null)
    _held.clear()


os.register_at_fork(after_in_child=_let_go_in_child)


@contextmanager
def cache_lock(folder: str | os.PathLike, command: str) -> Iterator[None]:
    """Hold an exclusive lock on folder; it is released when this process ends however it ends, and forked children
    do not keep it, so it never goes stale.

    The lock file is opened without following links and must be a regular file with no other name, since its
    holder's description is written into it.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    descriptor = open_regular(path, os.O_RDWR | os.O_CREAT, follow=False)
    with os.fdopen(descriptor, "r+", encoding="utf-8", errors="replace") as handle:
        if os.fstat(descriptor).st_nlink != 1:
            raise UnsafeFileError(
                f"{path} has other names (hard links), so writing it would change another file: remove it and run again"
            )
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = handle.read(200).strip() or "another process"
            raise CacheBusyError(
                f"{folder} is in use by {holder}: wait for it to finish, or use another --cache folder"
            ) from None
        _held.add(descriptor)
        try:
            handle.truncate(0)
            handle.write(f"`{command}` (pid {os.getpid()})")
            handle.flush()
            yield
        finally:
            handle.truncate(0)
            handle.flush()
            _held.discard(descriptor)
            fcntl.flock(handle, fcntl.LOCK_UN)
