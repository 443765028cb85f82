"""heads.info: what a cache holds, as a JSON-ready dict; missing files are None, damaged ones raise."""

from __future__ import annotations

import json

import pytest
from conftest import separable, write_features

from headstart.features.store import FORMAT_VERSION, StoreError
from headstart.heads.config import TrainConfig
from headstart.heads.fit import fit_head
from headstart.heads.info import describe_cache


def test_an_empty_cache_holds_nothing(tmp_path):
    assert describe_cache(tmp_path) == {"cache": str(tmp_path), "features": None, "head": None, "backbones": {}}


def test_features_and_head_are_described(tmp_path):
    features, labels = separable(10)
    write_features(
        tmp_path,
        {"train": (features, labels), "val": (features[:3], labels[:3])},
        skipped={"val": [("val/ants/x.jpg", "empty file (0 bytes)")]},
    )
    fit_head(tmp_path, TrainConfig(epochs=2))
    described = json.loads(json.dumps(describe_cache(tmp_path)))  # JSON-ready: survives a round trip unchanged
    assert described == describe_cache(tmp_path)
    assert described["features"]["splits"] == {
        "train": {"rows": 10, "per_class": {"ants": 5, "bees": 5}, "skipped": 0, "skipped_by_kind": {}},
        "val": {"rows": 3, "per_class": {"ants": 2, "bees": 1}, "skipped": 1, "skipped_by_kind": {"unreadable": 1}},
    }
    assert described["features"]["weights"] == {"kind": "none", "name": "random init, seed 0", "sha256": ""}
    assert described["features"]["preprocessing"]["name"] == "imagenet"
    assert (described["features"]["created"], described["features"]["format_version"]) == (
        "2026-01-02T03:04:05+00:00",
        FORMAT_VERSION,
    )
    head = described["head"]
    assert head["classes"] == ["ants", "bees"] and head["preprocessing"] == "imagenet"
    assert head["train_config"]["epochs"] == 2
    assert set(head["metrics"]) == {
        "epoch",
        "train_loss",
        "train_acc",
        "val_loss",
        "val_acc",
        "best_epoch",
        "calibration",
        "unknown",
    }


def test_a_damaged_features_file_raises(tmp_path):
    (tmp_path / "features.h5").write_bytes(b"not hdf5")
    with pytest.raises(StoreError, match="re-run `extract`"):
        describe_cache(tmp_path)
