"""Open only regular files: a pipe, device or folder planted under a file's name is refused at once, not waited on."""

from __future__ import annotations

import errno
import os
import stat


class UnsafeFileError(ValueError):
    """A path headstart reads or writes is not a plain regular file (a link where none may be, a pipe, a folder)."""


def open_regular(
    path: str | os.PathLike,
    flags: int = os.O_RDONLY,
    mode: int = 0o666,
    *,
    follow: bool = True,
    fix: str = "remove it or use another path",
) -> int:
    """A descriptor for path, which must be a regular file; follow=False also refuses a symbolic link; `fix` ends
    the message.

    O_NONBLOCK makes opening a named pipe return at once instead of waiting for a writer; it is cleared again
    for the regular file, whose reads and writes it would not change anyway.
    """
    flags |= os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        descriptor = os.open(path, flags, mode)
    except OSError as error:
        if error.errno == errno.ELOOP and not follow:
            raise UnsafeFileError(
                f"{path} is a symbolic link, where headstart keeps its own file: remove it and run again"
            ) from None
        raise
    try:
        found = os.fstat(descriptor)
        if not stat.S_ISREG(found.st_mode):
            raise UnsafeFileError(f"{path} is not a regular file ({_kind(found.st_mode)}): {fix}")
        os.set_blocking(descriptor, True)
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def check_regular(path: str | os.PathLike, fix: str = "remove it or use another path") -> None:
    """Refuse path unless it is a regular file (links to one are fine): a reader must never block on a pipe."""
    os.close(open_regular(path, fix=fix))


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "not a plain file"
