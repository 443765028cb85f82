"""Find images and their classes the way torchvision's ImageFolder does, plus folders of unlabeled images."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

# torchvision.datasets.folder.IMG_EXTENSIONS: what a labelled folder reads, as ImageFolder does (no .gif).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
# Images ImageFolder leaves out: predict reads them (a GIF's first frame; HEIC/HEIF need the plugin named), a
# labelled folder lists them as skipped so its image set stays torchvision's.
OTHER_IMAGE_EXTENSIONS = (".gif", ".avif", ".heic", ".heif")
PLUGINS = {".heic": "pillow-heif", ".heif": "pillow-heif", ".avif": "pillow-avif-plugin"}
# Every skipped file's reason starts with its kind; a reason without one is a file that could not be decoded.
NOT_AN_IMAGE = "not an image"
NOT_IMAGEFOLDER = "not an ImageFolder image"
NEEDS_PLUGIN = "needs a plugin"
UNREADABLE = "unreadable"
SKIP_KINDS = (NOT_AN_IMAGE, NOT_IMAGEFOLDER, NEEDS_PLUGIN, UNREADABLE)
SPLIT_NAMES = ("train", "val", "test")
POOL = "pool"  # the split of unlabeled images (extract --pool), every label UNLABELED
UNLABELED = -1


class DatasetError(ValueError):
    """A folder that cannot be read as a dataset; the message names the path and the fix."""


@dataclass(frozen=True)
class ImageEntry:
    """One image file: where it is, the name it is stored and reported under, and its class index."""

    path: Path
    name: str
    label: int = UNLABELED
    label_set: tuple[int, ...] | None = None  # a multi-label image's labels (sources/multilabel.py); None: single


@dataclass(frozen=True)
class Dataset:
    """An ImageFolder-style dataset: class names from train/, entries per split in ImageFolder order."""

    root: Path
    classes: list[str]
    splits: dict[str, list[ImageEntry]]
    skipped: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # per split: files not read, why
    table_skipped: list[tuple[str, str]] = field(default_factory=list)  # a label table's rows skipped: (path, why)
    excluded: list[str] = field(default_factory=list)  # images left out by extract --exclude (sources/exclude.py)


def text_path(path: str | os.PathLike) -> str:
    """The path as valid UTF-8 text; non-UTF-8 bytes become \\xNN escapes (one defined policy for HDF5 and CSV)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def is_image_name(name: str) -> bool:
    """Whether torchvision's ImageFolder would read a file of this name (by its extension)."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


def skip_reason(name: str, labelled: bool) -> str | None:
    """Why a file of this name is not read (its kind first), or None when it is read; labelled: an ImageFolder-style
    class folder, which reads torchvision's extensions only."""
    suffix = os.path.splitext(name)[1].lower()
    if suffix in IMAGE_EXTENSIONS or (suffix in OTHER_IMAGE_EXTENSIONS and not labelled):
        return None
    if suffix in OTHER_IMAGE_EXTENSIONS:
        plugin = f"; Pillow also needs the {PLUGINS[suffix]} plugin for it" if suffix in (".heic", ".heif") else ""
        return (
            f"{NOT_IMAGEFOLDER}: {suffix} is not one of torchvision ImageFolder's extensions, so a labelled folder "
            f"leaves it out{plugin}; convert it to PNG or JPEG to use it (predict reads it)"
        )
    known = ", ".join(IMAGE_EXTENSIONS + OTHER_IMAGE_EXTENSIONS)
    return f"{NOT_AN_IMAGE}: {suffix or 'no'} extension (images: {known})"


def skip_kind(reason: str) -> str:
    """The kind of a skipped file's reason (one of SKIP_KINDS), for the counts by kind."""
    kind = reason.split(":", 1)[0]
    return kind if kind in SKIP_KINDS else UNREADABLE


def count_kinds(skipped: list[tuple[str, str]]) -> dict[str, int]:
    """Skipped files counted by kind, in SKIP_KINDS' order, kinds with none left out."""
    kinds = [skip_kind(reason) for _, reason in skipped]
    return {kind: kinds.count(kind) for kind in SKIP_KINDS if kind in kinds}


def _walk_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """Every file under folder, sorted as ImageFolder walks, and every folder that could not be listed.

    Symlinks are followed, but a directory loop is entered once. An unreadable folder is returned as an
    entry of its own, so reading it fails and it is reported like any unreadable image, never dropped.
    """
    walked: list[tuple[str, list[str]]] = []
    unreadable: list[Path] = []
    seen_dirs: set[tuple[int, int]] = set()
    for root, dirs, files in os.walk(
        folder, followlinks=True, onerror=lambda error: unreadable.append(Path(error.filename))
    ):
        stat = os.stat(root)
        key = (stat.st_dev, stat.st_ino)
        if key in seen_dirs:
            dirs[:] = []
            continue
        seen_dirs.add(key)
        walked.append((root, files))
    found = sorted((Path(root) / name for root, files in walked for name in files), key=_walk_order)
    return found, sorted(unreadable, key=_walk_order)


def _walk_order(path: Path) -> tuple[str, str]:
    return str(path.parent), path.name


def _walk_images(folder: Path, labelled: bool) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The files under folder to read (unreadable folders among them, to be reported), and the rest with why."""
    files, unreadable = _walk_files(folder)
    read, skipped = [], []
    for path in files:
        reason = skip_reason(path.name, labelled)
        if reason is None:
            read.append(path)
        else:
            skipped.append((path, reason))
    return sorted(read + unreadable, key=_walk_order), skipped


_DATA_FIX = "pass the dataset folder (train/, val/, one sub-folder per class) with --data"


def _require_folder(path: Path, what: str, fix: str) -> None:
    if not path.exists():
        raise DatasetError(f"{what} {text_path(path)} does not exist: {fix}")
    if not path.is_dir():
        raise DatasetError(f"{what} {text_path(path)} is a file, not a folder: {fix}")


def find_classes(split_dir: Path) -> list[str]:
    """Class names: the sub-folders of a split, sorted by name."""
    return sorted(entry.name for entry in os.scandir(split_dir) if entry.is_dir())


def scan_classes(folder: Path, classes: list[str], names_relative_to: Path | None) -> list[ImageEntry]:
    """Images under folder/<class>/ for each class present, labelled by the class's index in `classes`."""
    return scan_class_files(folder, classes, names_relative_to)[0]


def scan_class_files(
    folder: Path, classes: list[str], names_relative_to: Path | None
) -> tuple[list[ImageEntry], list[tuple[str, str]]]:
    """scan_classes' images, and every other file under the class folders as (name, reason): nothing is dropped."""
    entries, skipped = [], []
    for label, class_name in enumerate(classes):
        if not (folder / class_name).is_dir():
            continue
        paths, others = _walk_images(folder / class_name, labelled=True)
        for path in paths:
            name = path.relative_to(names_relative_to) if names_relative_to else path
            entries.append(ImageEntry(path, text_path(name), label))
        for path, reason in others:
            skipped.append((text_path(path.relative_to(names_relative_to) if names_relative_to else path), reason))
    return entries, skipped


def find_dataset(root: str | os.PathLike, split_names: tuple[str, ...] = SPLIT_NAMES) -> Dataset:
    """Scan root/train, root/val (and root/test when present); every split must hold train's classes."""
    root = Path(root)
    _require_folder(root, "data folder", _DATA_FIX)
    _require_folder(root / "train", "training folder", _DATA_FIX)
    classes = find_classes(root / "train")
    if len(classes) < 2:
        raise DatasetError(
            f"{text_path(root / 'train')} holds {len(classes)} class folder(s); a classifier needs at least 2 "
            "(one sub-folder of images per class)"
        )
    splits, skipped = {}, {}
    for split in split_names:
        split_dir = root / split
        if split != "train" and not split_dir.exists():
            continue
        _require_folder(split_dir, f"{split} folder", _DATA_FIX)
        split_classes = find_classes(split_dir)
        if split_classes != classes:
            raise DatasetError(
                f"{text_path(split_dir)} has classes {split_classes} but train has {classes}: "
                "every split needs the same class folders"
            )
        splits[split], skipped[split] = scan_class_files(split_dir, classes, names_relative_to=root)
        empty = [name for index, name in enumerate(classes) if not any(e.label == index for e in splits[split])]
        if empty:
            raise DatasetError(
                f"{text_path(split_dir)}: no images in class folder(s) {empty} "
                f"(image extensions: {', '.join(IMAGE_EXTENSIONS)})"
            )
    return Dataset(root, classes, splits, skipped)


def find_images(paths: list[str | os.PathLike]) -> list[ImageEntry]:
    """Unlabeled images from files and folders (searched recursively), sorted by name, each file once."""
    return scan_images(paths)[0]


def scan_images(paths: list[str | os.PathLike]) -> tuple[list[ImageEntry], list[tuple[str, str]]]:
    """find_images' images, and the other files found in the folders as (name, reason); a file named on its own is
    always read (its decode says what it is)."""
    by_name: dict[str, ImageEntry] = {}
    skipped: dict[str, str] = {}
    seen_files: set[str] = set()
    for given in paths:
        path = Path(given)
        if path.is_dir():
            files, others = _walk_images(path, labelled=False)
            skipped.update((text_path(other), reason) for other, reason in others)
        elif path.exists() or path.is_symlink():
            files = [path]
        else:
            raise DatasetError(f"{text_path(path)} does not exist: give image files or folders of images")
        for file in files:
            real = os.path.abspath(file)  # one file given twice, spelled two ways; a symlink stays its own row
            if real not in seen_files:
                seen_files.add(real)
                by_name[text_path(file)] = ImageEntry(file, text_path(file))
    return [by_name[name] for name in sorted(by_name)], sorted(skipped.items())


def find_labeled_images(folder: str | os.PathLike, classes: list[str]) -> list[ImageEntry]:
    """Images in folder/<class>/..., labelled by index in `classes`; a class folder outside `classes` is an error."""
    return scan_labeled_images(folder, classes)[0]


def scan_labeled_images(
    folder: str | os.PathLike, classes: list[str]
) -> tuple[list[ImageEntry], list[tuple[str, str]]]:
    """find_labeled_images' images, and every other file under its class folders as (path, reason)."""
    folder = Path(folder)
    _require_folder(folder, "folder", "give a folder with one sub-folder of images per class")
    found = find_classes(folder)
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise DatasetError(
            f"{text_path(folder)} has class folder(s) {unknown} that the head does not know (it knows {classes})"
        )
    if not found:
        raise DatasetError(f"{text_path(folder)} has no class sub-folders: give a folder with one sub-folder per class")
    return scan_class_files(folder, classes, names_relative_to=None)
