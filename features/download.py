"""Fetch and unpack the tutorial's hymenoptera_data.zip when the default data folder is missing."""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

DATASET_URL = "https://download.pytorch.org/tutorial/hymenoptera_data.zip"


class DownloadError(RuntimeError):
    """The dataset could not be fetched or unpacked; the message says to pass --data."""


def _fetch(url: str, target: Path, on_progress: Callable[[int, int], None] | None, timeout: float) -> None:
    with urllib.request.urlopen(url, timeout=timeout) as response, open(target, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0)
        done = 0
        for block in iter(lambda: response.read(1 << 16), b""):
            out.write(block)
            done += len(block)
            if on_progress:
                on_progress(done, total)
    if total and done != total:
        raise OSError(f"download incomplete: {done} of {total} bytes")


def _unpack(archive: Path, into: Path) -> None:
    """Unpack, refusing members that would land outside `into`."""
    with zipfile.ZipFile(archive) as zipped:
        for member in zipped.namelist():
            if not (into / member).resolve().is_relative_to(into.resolve()):
                raise DownloadError(f"the archive holds an unsafe path {member!r}")
        zipped.extractall(into)


def download_dataset(
    folder: str | os.PathLike,
    url: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    timeout: float = 30,
) -> Path:
    """Make `folder` by downloading the zip at url (default DATASET_URL); the folder appears whole or not at all."""
    url = url or DATASET_URL
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".download-") as scratch_name:
        scratch = Path(scratch_name)
        archive = scratch / "data.zip"
        try:
            _fetch(url, archive, on_progress, timeout)
            _unpack(archive, scratch / "unpacked")
        except (urllib.error.URLError, OSError, zipfile.BadZipFile) as error:
            reason = getattr(error, "reason", None) or error
            raise DownloadError(
                f"cannot download the dataset from {url} ({reason}): pass a local dataset folder with --data"
            ) from None
        unpacked = scratch / "unpacked"
        inner = [p for p in unpacked.iterdir() if p.is_dir() and not p.name.startswith("__MACOSX")]
        root = inner[0] if len(inner) == 1 and not (unpacked / "train").exists() else unpacked
        if not (root / "train").is_dir():
            raise DownloadError(f"the archive from {url} holds no train/ folder: pass a dataset folder with --data")
        shutil.move(root, folder)
    return folder
