"""What a cache folder holds: the features file's splits and provenance, and the head's metrics."""

from __future__ import annotations

from pathlib import Path

from headstart.features import FeatureStore
from headstart.features.chunks import count_label_sets, count_labels
from headstart.features.files.cachedir import HEAD_FILE, features_files, present_features
from headstart.features.folder import POOL, count_kinds
from headstart.heads.checkpoint import load_head


def describe_cache(cache: str | Path, backbone: str | None = None) -> dict:
    """A plain dict (JSON-ready) of the cache's contents; a missing file is reported as None, a damaged one raises.
    "features" describes the only (or the default backbone's) features file, "backbones" every backbone's by name;
    with `backbone`, that backbone's alone (its file must exist)."""
    cache = Path(cache)
    info: dict = {"cache": str(cache), "features": None, "head": None, "backbones": {}}
    found = {backbone: present_features(cache, backbone)} if backbone is not None else features_files(cache)
    for name, path in found.items():
        info["backbones"][name] = _describe_features(path)
    if info["backbones"]:
        info["features"] = next(iter(info["backbones"].values()))
    _describe_head(cache, info)
    return info


def _describe_features(path: Path) -> dict:
    """A features file's provenance, per-split counts and the unlabeled pool's rows (None: no pool)."""
    with FeatureStore(path) as store:
        header = store.header.to_dict()
        classes = header["classes"]
        splits = {}
        multi = store.header.multi_label
        for split in store.labelled_splits:  # labels counted a chunk at a time: memory does not grow with the rows
            if multi:
                counts, empty = count_label_sets(store, split, len(classes))
            else:
                counts = count_labels(store, split, len(classes))
            splits[split] = {
                "rows": store.count(split),
                "per_class": dict(zip(classes, map(int, counts))),
                "skipped": len(store.skipped(split)),
                "skipped_by_kind": count_kinds(store.skipped(split)),
            }
            if multi:  # per_class: the rows carrying each label (a row counts once under each of its labels)
                splits[split]["no_label"] = empty
        pool = {"rows": store.count(POOL), "skipped": len(store.skipped(POOL))} if POOL in store.splits else None
    described = {"file": path.name} | {key: header.get(key) for key in _FEATURE_KEYS}
    if multi:  # a single-label file's description is unchanged: no task key
        described["task"] = header["task"]
    return described | {"splits": splits, "pool": pool}


_FEATURE_KEYS = (
    "created",
    "producer",
    "classes",
    "backbone",
    "weights",
    "preprocessing",
    "precision",
    "data_root",
    "torch_version",
    "torchvision_version",
    "forward",
    "split",
    "format_version",
)


def _describe_head(cache: Path, info: dict) -> None:
    if (cache / HEAD_FILE).exists():
        checkpoint = load_head(cache / HEAD_FILE)
        metrics = {
            key: value
            for key, value in checkpoint.metrics.items()
            if key
            in ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "best_epoch", "calibration", "unknown")
        }
        info["head"] = {
            "classes": checkpoint.classes,
            "backbone": checkpoint.backbone,
            "weights": checkpoint.weights,
            "preprocessing": checkpoint.preprocessing["name"],
            "train_config": checkpoint.train_config,
            "metrics": metrics,
        }
        if checkpoint.multilabel is not None:  # only a multi-label head's entry has these: single-label's is unchanged
            info["head"]["task"] = "multi-label"
            info["head"]["no_unknown"] = checkpoint.no_unknown_reason if checkpoint.unknown is None else None
