"""The cache folder's names: every file and folder headstart writes under CACHE/, and "is this path one of ours?".

Every module that reads or writes in the cache takes its names from here, and every output option asks
`owned_by_cache` before writing, so no command can replace a file another command keeps.

    CACHE/features.h5                  the features (features/store.py)
    CACHE/features.h5.partial-<id>     an extract in progress, renamed over features.h5 when complete
    CACHE/features.h5.shards/          --engine ray: the shards its workers write (shard-<run>-<first>.h5) and their
                                       manifest entries (.json), merged into features.h5 and removed at the end
                                       (features/engines/shards.py)
    CACHE/features-<backbone>.h5       the features of another backbone than the default (and its .partial-<id>,
                                       .shards/);
                                       timm:MODEL's file is features-timm-MODEL.h5 (no colon in a file name)
    CACHE/head.pt                      the trained head (heads/checkpoint.py)
    CACHE/head.previous.pt             the head a sweep replaced, kept one generation (heads/sweep/step.py)
    CACHE/metrics.json                 train-head's metrics
    CACHE/curves.png                   loss and accuracy per epoch
    CACHE/calibration.png              the reliability diagram
    CACHE/sweep.csv                    the sweep's table (heads/sweep/table.py)
    CACHE/audit/                       the audit's CSVs, audit.json, learning_curve.png, report.html
    CACHE/thumbnails/                  the HTML pages' thumbnails, by content hash
    CACHE/index/<features>.<space>.faiss  a nearest-neighbour index over a features file (features/neighbours/index.py)
    CACHE/.lock                        held by the command that is writing the cache
    CACHE/.hs-<pid>-<random>.tmp       an output being written (features/files/atomic.py), renamed into place
"""

from __future__ import annotations

import os
from pathlib import Path

from headstart.features.backbones.registry import DEFAULT_BACKBONE, TIMM_PREFIX, backbone_entry

FEATURES_FILE = "features.h5"  # the default backbone's, as every cache before the registry named it
BACKBONE_FEATURES = ("features-", ".h5")  # features-<backbone>.h5: another backbone's features
TIMM_FILE_PREFIX = "timm-"  # stands for TIMM_PREFIX in file names
PARTIAL_SUFFIX = ".partial"
SHARDS_SUFFIX = ".shards"  # the folder beside a features file where a cluster's workers write their shards
SHARD_PREFIX, SHARD_SUFFIX, MANIFEST_SUFFIX = "shard-", ".h5", ".json"  # inside it: shard-<run>-<first>.h5, .json
HEAD_FILE = "head.pt"
PREVIOUS_HEAD_FILE = "head.previous.pt"
METRICS_FILE = "metrics.json"
CURVES_FILE = "curves.png"
CALIBRATION_FILE = "calibration.png"
SWEEP_FILE = "sweep.csv"
AUDIT_DIR = "audit"
THUMBNAILS_DIR = "thumbnails"
INDEX_DIR = "index"
INDEX_SUFFIX = ".faiss"
LOCK_FILE = ".lock"
TEMPORARY_PREFIX = ".hs-"

FILES = (
    FEATURES_FILE,
    HEAD_FILE,
    PREVIOUS_HEAD_FILE,
    METRICS_FILE,
    CURVES_FILE,
    CALIBRATION_FILE,
    SWEEP_FILE,
    LOCK_FILE,
)
FOLDERS = (AUDIT_DIR, THUMBNAILS_DIR, INDEX_DIR)
PREFIXES = (f"{FEATURES_FILE}{PARTIAL_SUFFIX}", BACKBONE_FEATURES[0], TEMPORARY_PREFIX)


def features_file(backbone: str) -> str:
    """The name of a backbone's features file in the cache folder."""
    if backbone == DEFAULT_BACKBONE:
        return FEATURES_FILE
    if backbone.startswith(TIMM_PREFIX):
        backbone = TIMM_FILE_PREFIX + backbone[len(TIMM_PREFIX) :]
    return f"{BACKBONE_FEATURES[0]}{backbone}{BACKBONE_FEATURES[1]}"


def shards_folder(features: str | os.PathLike) -> Path:
    """The folder beside a features file where --engine ray's workers write their shards."""
    features = Path(features)
    return features.with_name(features.name + SHARDS_SUFFIX)


def _shards_folder_name(name: str) -> bool:
    """Whether name is a features file's shards folder (features.h5.shards, features-<backbone>.h5.shards)."""
    stem = name[: -len(SHARDS_SUFFIX)] if name.endswith(SHARDS_SUFFIX) else ""
    start, end = BACKBONE_FEATURES
    return stem == FEATURES_FILE or (stem.startswith(start) and stem.endswith(end) and len(stem) > len(start + end))


def _backbone_of(stem: str) -> str:
    return TIMM_PREFIX + stem[len(TIMM_FILE_PREFIX) :] if stem.startswith(TIMM_FILE_PREFIX) else stem


def index_file(features: str, space: str) -> str:
    """The name (relative to the cache) of the nearest-neighbour index over a features file in a space."""
    return f"{INDEX_DIR}/{features}.{space}{INDEX_SUFFIX}"


def features_files(cache: str | os.PathLike) -> dict[str, Path]:
    """Every backbone's complete features file in cache, by backbone name (the name the file is called by)."""
    folder = Path(cache)
    # exists(), not is_file(): a pipe or a folder under the name is found here and refused by the reader, in one line
    found = {DEFAULT_BACKBONE: folder / FEATURES_FILE} if (folder / FEATURES_FILE).exists() else {}
    start, end = BACKBONE_FEATURES
    for name in sorted(os.listdir(folder)) if folder.is_dir() else ():
        if name.startswith(start) and name.endswith(end) and len(name) > len(start) + len(end):
            found[_backbone_of(name[len(start) : -len(end)])] = folder / name
    return found


class BackboneChoiceError(ValueError):
    """A cache holding several backbones' features, and a command not told which; the message lists them."""


def chosen_features(cache: str | os.PathLike, backbone: str | None = None) -> Path:
    """The features file a command reads: the named backbone's, else the only one the cache holds (the default's
    name when it holds none, for the caller's "run extract first"); several and none named is a
    BackboneChoiceError."""
    if backbone is not None:
        return Path(cache) / features_file(backbone_entry(backbone).name)
    found = features_files(cache)
    if len(found) > 1:
        raise BackboneChoiceError(
            f"{cache} holds the features of several backbones ({', '.join(found)}): pass --backbone NAME"
        )
    return next(iter(found.values()), Path(cache) / FEATURES_FILE)


def present_features(cache: str | os.PathLike, backbone: str) -> Path:
    """The named backbone's features file, which must exist; else a BackboneChoiceError naming what cache holds."""
    name = backbone_entry(backbone).name
    path = Path(cache) / features_file(name)
    if not path.exists():
        held = ", ".join(features_files(cache)) or "none"
        raise BackboneChoiceError(
            f"{cache} holds no features of {name} (it holds: {held}): run `extract --backbone {name}` first"
        )
    return path


def check_head_backbone(head_file: str | os.PathLike, recorded: str, asked: str | None) -> None:
    """--backbone on a command that runs the head: the head must have been trained on that backbone's features."""
    if asked is not None and backbone_entry(asked).name != recorded:
        raise BackboneChoiceError(
            f"{head_file} was trained on {recorded}'s features, not {asked}'s: run `train-head --backbone {asked}` "
            "first, or leave --backbone out"
        )


def _owned_name(relative: Path) -> bool:
    parts = relative.parts
    if not parts:
        return True  # the cache folder itself
    if parts[0] in FOLDERS or _shards_folder_name(parts[0]):
        return True
    return len(parts) == 1 and (parts[0] in FILES or parts[0].startswith(PREFIXES))


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_dev, found.st_ino


def cache_files(cache: Path) -> list[Path]:
    """Every file of ours that exists in cache now (the folders' contents included)."""
    found: list[Path] = []
    for name in os.listdir(cache) if cache.is_dir() else ():
        path = cache / name
        if (name in FOLDERS or _shards_folder_name(name)) and path.is_dir() and not path.is_symlink():
            found.extend(child for child in path.rglob("*") if not child.is_dir())
        elif _owned_name(Path(name)):
            found.append(path)
    return found


def owned_by_cache(path: str | os.PathLike, cache: str | os.PathLike) -> str | None:
    """The name (relative to cache) of the cache's own file that path is, by resolved path or by inode (a hard or
    symbolic link to it); None when path is not one of ours."""
    target, folder = Path(path).resolve(), Path(cache).resolve()
    if target.is_relative_to(folder) and _owned_name(target.relative_to(folder)):
        return str(target.relative_to(folder)) or "."
    identity = _identity(target)
    if identity is None:
        return None
    for ours in cache_files(folder):
        if _identity(ours) == identity:
            return str(ours.relative_to(folder))
    return None
