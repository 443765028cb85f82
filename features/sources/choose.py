"""The one place a source's shape is decided: train/ val/ test/ folders as they are, class folders split for you by
content (features/sources/rule.py), or a label table (features/sources/labels.py); plus the unlabeled pools."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from headstart.features.config import ExtractConfig
from headstart.features.folder import (
    POOL,
    SPLIT_NAMES,
    Dataset,
    DatasetError,
    find_classes,
    find_dataset,
    scan_class_files,
    text_path,
)
from headstart.features.sources.rule import DEFAULT_VAL_FRACTION, UNSPLIT, SplitRule

__all__ = ["UNSPLIT", "find_source", "split_rule"]


def split_rule(config: ExtractConfig) -> SplitRule | None:
    """The rule that splits config.data, or None when the folder holds its own train/ (its split is the folders').
    A label table gets the rule too; find_source drops it when every row names its split."""
    if config.labels is None and (Path(config.data) / "train").is_dir():
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


def find_source(config: ExtractConfig, rule: SplitRule | None) -> tuple[Dataset, SplitRule | None]:
    """The dataset config names (entries to split by content under UNSPLIT) with its pools' images under POOL, and
    the rule that splits it (None: nothing to split)."""
    if config.pool:  # checked before any scan, so a wrong --pool is said first
        from headstart.features.sources.pool import pool_folders

        pool_folders(Path(config.data), config.pool)
    if config.labels is not None:
        dataset = _table_source(config)
        if UNSPLIT not in dataset.splits:
            rule = None
    else:
        dataset = _folder_source(config, rule)
    if config.pool:
        from headstart.features.sources.pool import pool_entries

        labelled = {entry.name for entries in dataset.splits.values() for entry in entries}
        pool = pool_entries(dataset.root, config.pool, labelled)
        dataset = dataclasses.replace(dataset, splits={**dataset.splits, POOL: pool})
    if config.exclude is not None:
        from headstart.features.sources.exclude import exclude_entries

        dataset = exclude_entries(dataset, config.exclude)
    return dataset, rule


def _table_source(config: ExtractConfig) -> Dataset:
    from headstart.features.sources.labels import table_dataset
    from headstart.features.sources.tables import TableColumns, TableError

    table = Path(config.labels or "")
    columns = TableColumns(
        path=config.path_column, label=config.label_column, split=config.split_column, multi_label=config.multi_label
    )
    dataset = table_dataset(table, Path(config.data), columns, strict=config.strict, multi_label=config.multi_label)
    if UNSPLIT not in dataset.splits and (config.val_fraction is not None or config.test_fraction is not None):
        raise TableError(
            f"{text_path(table)} names every row's split: drop --val-fraction/--test-fraction, or leave "
            "split cells empty to have those rows split by content"
        )
    return dataset


def _folder_source(config: ExtractConfig, rule: SplitRule | None) -> Dataset:
    """Split folders (rule None), or every class folder's images under UNSPLIT; pool folders are no classes."""
    root = Path(config.data)
    if rule is None or not root.is_dir() or (root / "train").exists():  # train/ not a folder: find_dataset says so
        return find_dataset(root)
    present = [name for name in SPLIT_NAMES[1:] if (root / name).is_dir()]
    if present:
        raise DatasetError(
            f"{text_path(root)} has {'/, '.join(present)}/ but no train/: add train/, or keep only class folders "
            "(one sub-folder of images per class) to have them split by --val-fraction"
        )
    pools = {Path(pool).resolve() for pool in config.pool}
    classes = [name for name in find_classes(root) if (root / name).resolve() not in pools]
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
