"""heads/sweep/step.py: the winner is chosen from the train rows alone, refit, scored on val once, saved as train-head saves."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from cli_helpers import assert_ok, run
from conftest import make_dataset
from features.store import FeatureStore
from heads.checkpoint import load_head
from heads.config import SweepConfig
from heads.sweep import SWEEP_FILE, sweep_heads

GRID = """
[sgd]
lr = [0.001, 0.01]
momentum = [0.0, 0.9]
epochs = [2, 4]
batch_size = 4
class_weight = ["none", "balanced"]
[logreg]
c = 0.1
"""


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("sweep")
    data = make_dataset(work / "data", per_class={"train": 9, "val": 3})
    assert_ok(run("extract", "--data", data, "--cache", work / "cache", "--weights", "none", "--quiet"))
    (work / "grid.toml").write_text(GRID)
    return work / "cache"


def _sweep(source: Path, grid: Path, folder: Path, on_progress=None):
    shutil.copytree(source, folder)
    return folder, sweep_heads(folder, SweepConfig(folds=3, grid=str(grid), seed=1), on_progress)


def test_the_winner_is_refit_and_saved_as_train_head_saves_with_the_sweep_recorded(cache, tmp_path):
    folder, summary = _sweep(cache, cache.parent / "grid.toml", tmp_path / "clean")
    winner = summary.cross_validation.winner
    head = load_head(folder / "head.pt")
    metrics = json.loads((folder / "metrics.json").read_text())
    assert head.train_config == winner.setting.to_dict() == metrics["train_config"] == metrics["sweep"]["chosen"]
    assert head.metrics["sweep"] == metrics["sweep"]
    assert metrics["sweep"]["cv_acc_mean"] == winner.acc_mean and metrics["sweep"]["settings"] == 17
    assert metrics["sweep"]["heads"] == 17 * 3 and metrics["counts"] == {"train": 18, "val": 6}
    assert "val_acc" in metrics and (folder / "curves.png").stat().st_size > 0
    assert (folder / SWEEP_FILE).read_text().count("\n") == 2 + 17


def test_val_is_not_read_before_the_refit(cache, tmp_path, monkeypatch):
    """Val's features poisoned (NaN): the same choice and sweep.csv, and val is read only after the choice is made."""
    poisoned = tmp_path / "poisoned-source"
    shutil.copytree(cache, poisoned)
    with h5py.File(poisoned / "features.h5", "r+") as raw:
        raw["val/features"][...] = np.nan
    events = []
    read = FeatureStore.read
    monkeypatch.setattr(FeatureStore, "read", lambda store, split, *a: events.append(split) or read(store, split, *a))
    folder, summary = _sweep(poisoned, cache.parent / "grid.toml", tmp_path / "poisoned",
                             lambda done, total: done == total and events.append("chosen"))
    clean_folder, clean = _sweep(cache, cache.parent / "grid.toml", tmp_path / "clean")
    assert (folder / SWEEP_FILE).read_text() == (clean_folder / SWEEP_FILE).read_text()
    assert summary.cross_validation.winner == clean.cross_validation.winner
    assert events[:3] == ["train", "chosen", "val"]
    assert np.isnan(summary.fit.metrics["val_loss"]) and not np.isnan(clean.fit.metrics["val_loss"])
