"""Write files whole or not at all: temporary files beside them, renamed over them only when complete."""

from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from stat import S_ISBLK, S_ISCHR, S_ISDIR, S_ISFIFO, S_ISSOCK
from typing import IO

from headstart.features.files.cachedir import TEMPORARY_PREFIX
from headstart.features.files.regular import UnsafeFileError

# Temporary names are short whatever the target's name (a 255-byte name still gets one) and carry the pid
# of their writer, so a later run can tell a killed run's leftovers from a live run's work.
_TEMPORARY = re.compile(rf"^{re.escape(TEMPORARY_PREFIX)}(\d+)-\w+\.tmp$")
_replaced: list[Path] = []  # every target this process replaced, in order: what an interrupt message must admit


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


def replaced_paths() -> list[Path]:
    """The files this process has replaced so far, oldest first."""
    return list(_replaced)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def sweep_stale_temporaries(folder: Path) -> None:
    """Delete the temporary files of writers that are no longer running (killed before they could clean up)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        found = _TEMPORARY.match(name)
        if found and int(found.group(1)) != os.getpid() and not _alive(int(found.group(1))):
            try:
                os.unlink(folder / name)  # unlink never follows a link
            except OSError:
                pass


def _new_file_mode(path: Path) -> int:
    """The mode the file would get if written in place: its current one, else 0666 less the umask."""
    try:
        return path.stat().st_mode & 0o7777
    except (FileNotFoundError, NotADirectoryError):
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _temporary_beside(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temporaries(path.parent)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f"{TEMPORARY_PREFIX}{os.getpid()}-", suffix=".tmp")
    try:
        os.fchmod(handle, _new_file_mode(path))  # mkstemp makes 0600 files
    finally:
        os.close(handle)
    return Path(temporary)


def _backup(target: Path) -> Path | None:
    """A second name for target's current content, to put it back if a later rename of the same commit fails;
    None when there is no target yet. A folder in target's place is refused before anything is replaced."""
    try:
        found = os.lstat(target)
    except FileNotFoundError:
        return None
    if S_ISDIR(found.st_mode):
        raise IsADirectoryError(errno.EISDIR, "a folder is in the way of this output", str(target))
    backup = _temporary_beside(target)  # a fresh name of ours; the link below needs it free
    backup.unlink()
    try:
        os.link(target, backup, follow_symlinks=False)
    except OSError:  # no hard links on this file system (or not allowed): a copy serves as well
        shutil.copy2(target, backup, follow_symlinks=False)
    return backup


def _refuse_special(target: Path) -> None:
    """A device, a pipe or a socket under an output's name is never renamed over: that would delete the node."""
    try:
        mode = os.lstat(target).st_mode
    except OSError:
        return
    if S_ISCHR(mode) or S_ISBLK(mode) or S_ISFIFO(mode) or S_ISSOCK(mode):
        raise UnsafeFileError(f"{target} is not a regular file, and headstart never replaces one: name a file instead")


def move_into_place(pairs: list[tuple[Path, Path]], result: bool = True) -> None:
    """Rename each (temporary, target) in order, flushed to disk first, with Ctrl-C and SIGTERM held until all are
    done; if a rename fails, the targets already replaced get their previous content back: all or none. result=False:
    the targets are not results (a cache of thumbnails), so an interrupt message does not name them."""
    for temporary, _ in pairs:
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
    backups = [_backup(target) for _, target in pairs[:-1]]  # the last rename failing leaves nothing to undo
    done: list[tuple[Path, Path | None]] = []
    try:
        with signals_held():
            try:
                for (temporary, target), backup in zip(pairs, [*backups, None]):
                    os.replace(temporary, target)
                    done.append((target, backup))
            except BaseException:
                for target, backup in reversed(done):
                    if backup is None:
                        target.unlink(missing_ok=True)
                    else:
                        os.replace(backup, target)
                raise
            if result:
                _replaced.extend(target for _, target in pairs)
    finally:
        for backup in backups:
            if backup is not None:
                backup.unlink(missing_ok=True)


def _naming_targets(error: OSError, temporaries: list[Path], targets: list[Path]) -> OSError:
    """An error while writing a temporary file names the file being replaced, which is the one the user knows."""
    named = {str(temporary): str(target) for temporary, target in zip(temporaries, targets)}
    if error.filename is not None and str(error.filename) not in named:
        return error
    where = named.get(str(error.filename)) or ", ".join(map(str, targets))
    return OSError(error.errno, error.strerror or str(error), where)


@contextmanager
def replace_together(*paths: str | os.PathLike, result: bool = True) -> Iterator[list[Path]]:
    """Yield one temporary path per target; when the block succeeds all are renamed over their targets, in order
    (put the file others depend on last), and on any error all are deleted and every target is left as it was.
    result=False: move_into_place's."""
    targets = [Path(path) for path in paths]
    for target in targets:
        _refuse_special(target)
    temporaries: list[Path] = []
    try:
        try:
            for target in targets:
                with signals_held():  # a signal between mkstemp and the append would leave a file no one removes
                    temporaries.append(_temporary_beside(target))
            yield temporaries
            move_into_place(list(zip(temporaries, targets)), result)
        except OSError as error:
            raise _naming_targets(error, temporaries, targets) from None
    finally:
        for temporary in temporaries:
            temporary.unlink(missing_ok=True)


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", *, result: bool = True, **open_args) -> Iterator[IO]:
    """Yield a handle to a temporary file; on success it replaces path, on any error it is deleted (result: as
    move_into_place's)."""
    with replace_together(path, result=result) as (temporary,):
        with open(temporary, mode, **open_args) as out:
            yield out
