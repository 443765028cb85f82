"""Refuse a write the disk cannot take before it starts: HDF5 does not recover from a failed write (h5py can crash
the process while closing such a file), so running out of space is caught before, never after."""

from __future__ import annotations

import errno
import resource
import shutil
from pathlib import Path


def _size(count: int) -> str:
    return f"{count >> 20} MiB" if count >= 1 << 20 else f"{-(-count // 1024)} kB"


def ensure_room(path: Path, written: Path, needed: int) -> None:
    """Raise ENOSPC, naming path, unless the disk (and the process's file-size limit, for the file being written)
    can take `needed` more bytes."""
    room = shutil.disk_usage(written.parent).free
    limit, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if limit != resource.RLIM_INFINITY:
        room = min(room, limit - (written.stat().st_size if written.exists() else 0))
    if room < needed:
        raise OSError(
            errno.ENOSPC,
            f"not enough free space to write {path} ({_size(max(room, 0))} left, about "
            f"{_size(needed)} more needed): free some space and run again",
        )
