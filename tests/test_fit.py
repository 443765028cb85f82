"""heads.fit: the train-head step reads the cached features, trains, and writes head.pt, metrics.json and
curves.png together, recording what the features came from."""

from __future__ import annotations

import json

import h5py
import pytest
import torch
from conftest import separable, write_features

from headstart.features.store import StoreError
from headstart.heads.checkpoint import load_head
from headstart.heads.config import TrainConfig
from headstart.heads.fit import fit_head


@pytest.fixture
def cache(tmp_path):
    write_features(tmp_path / "cache", {"train": separable(40), "val": separable(20, seed=1)})
    return tmp_path / "cache"


def test_fit_writes_the_head_its_metrics_and_curves(cache):
    epochs = []
    summary = fit_head(cache, TrainConfig(epochs=30, lr=0.05), on_epoch=lambda epoch, metrics: epochs.append(epoch))
    assert epochs == list(range(1, 31))
    assert summary.counts == {"train": 40, "val": 20}
    assert summary.metrics["val_acc"] == 1.0  # separable by construction
    assert summary.metrics["best_epoch"]["val_acc"] == 1.0
    assert summary.metrics["val_report"]["confusion"] == [[10, 0], [0, 10]]
    checkpoint = load_head(summary.head_path)
    assert checkpoint.classes == ["ants", "bees"]
    assert checkpoint.weights == {"kind": "none", "name": "random init, seed 0", "sha256": ""}
    assert checkpoint.preprocessing["name"] == "imagenet"
    assert checkpoint.train_config == TrainConfig(epochs=30, lr=0.05).to_dict()
    # The head saved is the trained one with the temperature folded in (heads/trust); the trained one is recorded.
    assert torch.equal(checkpoint.calibration["uncalibrated"]["weight"], summary.result.head.weight)
    assert torch.allclose(checkpoint.head.weight, summary.result.head.weight / checkpoint.calibration["temperature"])
    written = json.loads(summary.metrics_path.read_text())
    assert written["counts"] == {"train": 40, "val": 20} and len(written["history"]) == 30
    assert summary.curves_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_logreg_is_one_epoch_in_the_same_files(cache):
    summary = fit_head(cache, TrainConfig(head="logreg"))
    assert [entry["epoch"] for entry in summary.metrics["history"]] == [1]
    assert summary.metrics["val_acc"] == 1.0
    assert load_head(summary.head_path).train_config["head"] == "logreg"


def test_without_val_there_are_no_val_scores(tmp_path):
    write_features(tmp_path, {"train": separable(10)})
    summary = fit_head(tmp_path, TrainConfig(epochs=2))
    assert summary.counts == {"train": 10, "val": 0}
    assert "val_acc" not in summary.metrics and summary.metrics["val_report"] is None


def test_a_non_finite_val_feature_is_blamed_on_the_file_not_on_the_learning_rate(cache):
    with h5py.File(cache / "features.h5", "r+") as raw:
        raw["val/features"][0, 0] = float("inf")
    with pytest.raises(StoreError, match="split 'val': features hold 1 non-finite values.*re-run `extract`") as caught:
        fit_head(cache, TrainConfig(epochs=2))
    assert "--lr" not in str(caught.value) and str(cache / "features.h5") in str(caught.value)
    assert not (cache / "head.pt").exists()


@pytest.mark.parametrize("value", [0.0, 3.0])
def test_training_rows_all_alike_are_one_line_not_a_cholesky_traceback(cache, value):
    with h5py.File(cache / "features.h5", "r+") as raw:
        raw["train/features"][...] = value
    with pytest.raises(StoreError, match="every training row has the same features.*re-run `extract`"):
        fit_head(cache, TrainConfig(epochs=1))
    assert not (cache / "head.pt").exists()


def test_a_missing_cache_is_a_store_error_and_creates_nothing(tmp_path):
    with pytest.raises(StoreError, match="does not exist: run `extract` first"):
        fit_head(tmp_path / "nowhere")
    assert not (tmp_path / "nowhere").exists()


def test_no_training_rows_is_a_store_error(tmp_path):
    features, labels = separable(4)
    write_features(tmp_path, {"train": (features[:0], labels[:0]), "val": (features, labels)})
    with pytest.raises(StoreError, match="has no training rows"):
        fit_head(tmp_path)
