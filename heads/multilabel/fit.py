"""The multi-label part of train-head: a features file's label sets -> head, thresholds, metrics (heads/fit.py saves
them as it saves a single-label head's)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

import numpy as np
import torch

from headstart.features.store import FeatureStore, StoreError
from headstart.heads.config import TrainConfig
from headstart.heads.multilabel.metrics import multilabel_summary
from headstart.heads.multilabel.recipe import multilabel_config
from headstart.heads.multilabel.train import Rows, choose_thresholds, probabilities, train_multilabel
from headstart.heads.multilabel.trust import MultiLabelTrust, fit_multilabel_trust
from headstart.heads.train import TrainResult
from headstart.heads.trust.config import TrustConfig


@dataclass
class MultiLabelFit:
    """A trained multi-label head, what its checkpoint records about the task, and its metrics."""

    result: TrainResult
    record: dict  # HeadCheckpoint.multilabel: {"task", "thresholds", "threshold_rule"}
    metrics: dict
    counts: dict[str, int]
    untrained: list[str]  # labels without a positive train row
    config: TrainConfig  # what the head trained by: the given one with the multi-label recipe's epochs and lr
    trust: MultiLabelTrust  # the head to save (calibrated), its calibration and unknown-image model


def _rows(store: FeatureStore, split: str) -> Rows | None:
    if split not in store.splits or not store.count(split):
        return None
    rows = store.read(split)
    assert rows.label_sets is not None  # the store reads label sets of every multi-label file
    return torch.from_numpy(rows.features), torch.from_numpy(rows.label_sets.astype(np.float32))


def _report(head: torch.nn.Module, rows: Rows | None, thresholds: np.ndarray, classes: list[str]) -> dict | None:
    if rows is None:
        return None
    return multilabel_summary(rows[1].numpy(), probabilities(head, rows[0]), thresholds, classes)


def best_map_epoch(history: list[dict]) -> dict | None:
    """The epoch with the highest val mAP (then lowest val loss); chosen on val, so optimistic."""
    scored = [entry for entry in history if "val_map" in entry]
    return max(scored, key=lambda entry: (entry["val_map"], -entry["val_loss"])) if scored else None


def fit_multilabel(
    store: FeatureStore,
    config: TrainConfig,
    on_epoch: Callable[[int, dict], None] | None = None,
    unset: Collection[str] = (),
    trust: TrustConfig = TrustConfig(),
) -> MultiLabelFit:
    """Train on the train split's label sets; calibrate each label, choose its threshold on the calibrated
    out-of-fold probabilities and fit the unknown-image model on train; score val and test once. The options named
    in `unset` (left at their defaults by the user) follow the multi-label recipe."""
    config, recipe = multilabel_config(config, unset)
    classes = list(store.header.classes)
    train, val, test = (_rows(store, split) for split in ("train", "val", "test"))
    if train is None:
        raise StoreError(f"{store.path} has no training rows: check the dataset and re-run `extract`")
    result = train_multilabel(train, val, config, on_epoch)
    trusted = fit_multilabel_trust(result.head, train, val, config, trust)
    thresholds, rule = choose_thresholds(train, config, trusted.held_out, trusted.calibration is not None)
    record = {"task": "multi-label", "thresholds": [float(value) for value in thresholds], "threshold_rule": rule}
    metrics = {
        **result.final,
        "history": result.history,
        "best_epoch": best_map_epoch(result.history),
        **record,
        "recipe": recipe,
        "val_report": _report(trusted.head, val, thresholds, classes),
        "test_report": _report(trusted.head, test, thresholds, classes),
        **trusted.metrics,
    }
    counts = {name: len(rows[1]) for name, rows in (("train", train), ("val", val), ("test", test)) if rows is not None}
    untrained = [name for label, name in enumerate(classes) if not bool(train[1][:, label].any())]
    return MultiLabelFit(result, record, metrics, counts, untrained, config, trusted)
