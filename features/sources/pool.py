"""Unlabeled pools (`extract --pool DIR`): images cached beside the labelled ones, in the `pool` split, label -1.

A pool folder lies inside the data folder (its rows' paths are relative to it, as every row's is); its images are
found as `predict` finds them (recursively, by extension). An image the labelled source also names is labelled, and
not in the pool.
"""

from __future__ import annotations

import os
from pathlib import Path

from headstart.features.folder import POOL, DatasetError, ImageEntry, find_images, text_path

__all__ = ["POOL", "pool_entries", "pool_folders"]


def pool_folders(root: Path, pools: tuple[Path, ...]) -> list[Path]:
    """The pool folders, each checked to be a folder inside root; absolute and normalised."""
    base = os.path.normpath(os.path.abspath(root))
    found = []
    for pool in pools:
        full = os.path.normpath(os.path.abspath(pool))
        if not Path(full).is_dir():
            raise DatasetError(f"--pool {text_path(pool)} is not a folder: give a folder of unlabeled images")
        if not full.startswith(base.rstrip(os.sep) + os.sep):
            raise DatasetError(
                f"--pool {text_path(pool)} is outside the data folder {text_path(base)}: move it inside (a row's path "
                "is relative to the data folder), or give --data a folder holding both"
            )
        found.append(Path(full))
    return found


def pool_entries(root: Path, pools: tuple[Path, ...], labelled: set[str]) -> list[ImageEntry]:
    """The pools' images, unlabeled, named relative to root, each once and sorted; images in labelled left out."""
    base = os.path.normpath(os.path.abspath(root))
    entries = {}
    folders: list[str | os.PathLike] = list(pool_folders(root, pools))
    for entry in find_images(folders):
        name = text_path(os.path.relpath(entry.path, base)).replace(os.sep, "/")
        if name not in labelled:
            entries[name] = ImageEntry(entry.path, name)
    return [entries[name] for name in sorted(entries)]
