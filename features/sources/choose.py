"""The one place a data folder's shape is decided: train/ val/ test/ folders as they are, or class folders split for
you by content (features/sources/rule.py)."""

from __future__ import annotations

from pathlib import Path

from headstart.features.config import ExtractConfig
from headstart.features.folder import (
    SPLIT_NAMES,
    Dataset,
    DatasetError,
    find_classes,
    find_dataset,
    scan_class_files,
    text_path,
)
from headstart.features.sources.rule import DEFAULT_VAL_FRACTION, SplitRule

UNSPLIT = "unsplit"  # the plan's name for entries whose split is drawn once their content hash is known


def split_rule(config: ExtractConfig) -> SplitRule | None:
    """The rule that splits config.data, or None when the folder holds its own train/ (its split is the folders')."""
    if (Path(config.data) / "train").is_dir():
        if config.val_fraction is not None or config.test_fraction is not None:
            raise DatasetError(
                f"{text_path(config.data)} has a train/ folder, so its split is the folders' own: drop "
                "--val-fraction/--test-fraction, or point --data at a folder of class folders without train/"
            )
        return None
    return SplitRule(
        val_fraction=DEFAULT_VAL_FRACTION if config.val_fraction is None else config.val_fraction,
        test_fraction=config.test_fraction or 0.0,
        seed=config.split_seed,
    )


def find_source(config: ExtractConfig, rule: SplitRule | None) -> Dataset:
    """The dataset of config.data: split folders (rule None), or every class folder's images under UNSPLIT."""
    root = Path(config.data)
    if rule is None or not root.is_dir() or (root / "train").exists():  # train/ not a folder: find_dataset says so
        return find_dataset(root)
    present = [name for name in SPLIT_NAMES[1:] if (root / name).is_dir()]
    if present:
        raise DatasetError(
            f"{text_path(root)} has {'/, '.join(present)}/ but no train/: add train/, or keep only class folders "
            "(one sub-folder of images per class) to have them split by --val-fraction"
        )
    classes = find_classes(root)
    if len(classes) < 2:
        raise DatasetError(
            f"{text_path(root)} holds {len(classes)} class folder(s) and no train/: a classifier needs at least 2 "
            "(one sub-folder of images per class), or train/ and val/ folders"
        )
    entries, skipped = scan_class_files(root, classes, names_relative_to=root)
    empty = [name for index, name in enumerate(classes) if not any(entry.label == index for entry in entries)]
    if empty:
        raise DatasetError(f"{text_path(root)}: no images in class folder(s) {empty}: add images or remove them")
    return Dataset(root, classes, {UNSPLIT: entries}, {UNSPLIT: skipped})
