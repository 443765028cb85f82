"""Every output option's one check, and the one way a streamed text output is opened.

Before a command writes anything, each of its outputs (`predict --out`, `evaluate --out` and `--html`, export's
files, and any option added later) goes through `check_outputs`:

- an output may not be one of the cache's own files (features/files/cachedir.py's `owned_by_cache`: by resolved path and
  by inode, so a hard or symbolic link to head.pt is refused too);
- two outputs of one command may not be the same file (the same resolved path, or the same inode);
- a special file (a character device, a FIFO) is never unlinked or replaced: write-then-rename is for regular
  files. A streamed text output (predict's CSV/JSONL, evaluate's CSV) is written into it in place, as `-` is
  written to stdout; any other output (an export, an HTML page) naming one is refused. A block device or a
  socket is refused for every output.

A refused output is an OutputError (a ValueError): one line naming the option, the path and the fix.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from headstart.features.files.atomic import atomic_write
from headstart.features.files.cachedir import owned_by_cache

STDOUT = "-"


class OutputError(ValueError):
    """An output that must not be written: one of the cache's own files, another output's file, a device."""


@dataclass(frozen=True)
class Output:
    """One output of a command: the option that names it (for messages), its path, and whether it is a text
    stream that can be written in place into a character device or a FIFO."""

    option: str
    path: Path
    streamed: bool = False


def special_kind(path: str | os.PathLike) -> str | None:
    """What path is when it is not a regular file or a folder (links followed): 'a character device', 'a named
    pipe', 'a block device' or 'a socket'; None for a regular file, a folder, or nothing yet."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    for test, name in (
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return None


def _streamable(kind: str | None) -> bool:
    return kind in ("a character device", "a named pipe")


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_dev, found.st_ino


def _same_file(first: Path, second: Path) -> bool:
    if first.resolve() == second.resolve():
        return True
    identity = _identity(first)
    return identity is not None and identity == _identity(second)


def _check_one(output: Output, cache: Path) -> None:
    ours = owned_by_cache(output.path, cache)
    if ours is not None:
        raise OutputError(
            f"{output.option} {output.path} would replace {ours}, one of headstart's own files in {cache}: "
            "write it somewhere else"
        )
    kind = special_kind(output.path)
    if kind is not None and not (output.streamed and _streamable(kind)):
        can = "a regular file" if output.streamed else "a regular file, replaced whole"
        raise OutputError(f"{output.option} {output.path} is {kind}; it is never replaced: name {can} instead")


def check_outputs(cache: str | os.PathLike, *outputs: Output) -> None:
    """Refuse (OutputError) an output that is one of the cache's own files, a special file it cannot be written
    into, or the same file as another output of the same command. `-` (stdout) is always fine."""
    files = [output for output in outputs if str(output.path) != STDOUT]
    for output in files:
        _check_one(output, Path(cache))
    for index, first in enumerate(files):
        for second in files[index + 1 :]:
            if _same_file(first.path, second.path):
                raise OutputError(
                    f"{first.option} {first.path} and {second.option} {second.path} are the same file: "
                    "give each output its own name"
                )


@contextmanager
def _in_place(path: str | os.PathLike) -> Iterator[IO[str]]:
    """A character device or a FIFO opened for writing where it is, never created, truncated or replaced; a FIFO
    no one reads is refused at once (O_NONBLOCK) rather than waited on."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        if error.errno == errno.ENXIO:
            raise OutputError(f"{path} is a named pipe no one is reading: start its reader first") from None
        raise
    os.set_blocking(descriptor, True)
    with open(descriptor, "w", encoding="utf-8", newline="") as handle:
        yield handle


@contextmanager
def text_output(path: str | os.PathLike) -> Iterator[IO[str]]:
    """A text handle for a streamed output: stdout for '-', a character device or FIFO written in place, else a
    regular file written whole or not at all (features/files/atomic.py)."""
    if str(path) == STDOUT:
        yield sys.stdout
        sys.stdout.flush()
    elif _streamable(special_kind(path)):
        with _in_place(path) as handle:
            yield handle
    else:
        with atomic_write(path, "w", encoding="utf-8", newline="") as handle:
            yield handle
