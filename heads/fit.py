"""The train-head step: cached features -> trained head -> head.pt and metrics.json."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from features import FEATURES_FILE, FeatureStore, StoreError, cache_lock
from features.atomic import atomic_write

from .checkpoint import HEAD_FILE, HeadCheckpoint, save_head
from .train import TrainConfig, TrainResult, train_head

METRICS_FILE = "metrics.json"


@dataclass
class FitSummary:
    head_path: Path
    metrics_path: Path
    classes: list[str]
    counts: dict[str, int]
    header: dict
    result: TrainResult
    metrics: dict
    seconds: float


def _tensors(store: FeatureStore, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    rows = store.read(split)
    return torch.from_numpy(rows.features), torch.from_numpy(rows.labels)


def fit_head(cache: str | Path, config: TrainConfig = TrainConfig(),
             on_epoch: Callable[[int, dict], None] | None = None) -> FitSummary:
    """Train on the cached train split, score on val each epoch, save the head and its metrics."""
    started = time.perf_counter()
    cache = Path(cache)
    with cache_lock(cache, "train-head"):
        with FeatureStore(cache / FEATURES_FILE) as store:
            header = store.header
            train = _tensors(store, "train")
            val = _tensors(store, "val") if "val" in store.splits and store.count("val") else None
        if not len(train[1]):
            raise StoreError(f"{store.path} has no training rows: check the dataset and re-run `extract`")
        classes = list(header["classes"])
        result = train_head(train, val, len(classes), config, on_epoch)
        metrics = {**result.final, "history": result.history}
        counts = {"train": len(train[1]), "val": len(val[1]) if val is not None else 0}
        checkpoint = HeadCheckpoint(result.head, classes, header["backbone"], header["weights"],
                                    header["preprocessing"], header["precision"], config.to_dict(), metrics)
        head_path, metrics_path = cache / HEAD_FILE, cache / METRICS_FILE
        save_head(head_path, checkpoint, features_file=str(store.path))
        with atomic_write(metrics_path, "w", encoding="utf-8") as out:
            json.dump({**metrics, "classes": classes, "counts": counts, "train_config": config.to_dict()}, out,
                      indent=2)
    return FitSummary(head_path, metrics_path, classes, counts, header, result, metrics,
                      time.perf_counter() - started)
