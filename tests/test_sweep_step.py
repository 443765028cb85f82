"""heads/sweep/step.py: the winner is chosen from train rows alone, refit, scored on val once, saved like train-head."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import pytest
from cli_helpers import assert_error, assert_ok, run
from conftest import make_dataset

from headstart.features.files.cachedir import HEAD_FILE, PREVIOUS_HEAD_FILE, SWEEP_FILE, owned_by_cache
from headstart.features.store import FeatureStore
from headstart.heads.checkpoint import load_head
from headstart.heads.config import SweepConfig
from headstart.heads.sweep import sweep_heads

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
    assert (folder / SWEEP_FILE).read_text().count("\n") == 1 + 17  # the header, then one row per setting


def test_the_cache_is_locked_as_sweep_not_train_head(cache, tmp_path, monkeypatch):
    import headstart.heads.fit as fit_module

    labels = []
    real = fit_module.cache_lock
    monkeypatch.setattr(
        fit_module, "cache_lock", lambda folder, command: labels.append(command) or real(folder, command)
    )
    _sweep(cache, cache.parent / "grid.toml", tmp_path / "locked")
    assert labels == ["sweep"]


def test_val_is_not_read_before_the_refit(cache, tmp_path, monkeypatch):
    """Val's features poisoned (negated): the same choice and sweep.csv, and val is read only after the choice is made.

    (Negated, not NaN: a head whose losses are not finite is refused, val's included.)"""
    poisoned = tmp_path / "poisoned-source"
    shutil.copytree(cache, poisoned)
    with h5py.File(poisoned / "features.h5", "r+") as raw:
        raw["val/features"][...] = -raw["val/features"][...]
    events = []
    read = FeatureStore.read
    monkeypatch.setattr(FeatureStore, "read", lambda store, split, *a: events.append(split) or read(store, split, *a))
    folder, summary = _sweep(
        poisoned,
        cache.parent / "grid.toml",
        tmp_path / "poisoned",
        lambda done, total: done == total and events.append("chosen"),
    )
    clean_folder, clean = _sweep(cache, cache.parent / "grid.toml", tmp_path / "clean")
    assert (folder / SWEEP_FILE).read_text() == (clean_folder / SWEEP_FILE).read_text()
    assert summary.cross_validation.winner == clean.cross_validation.winner
    assert events[:3] == ["train", "chosen", "val"]
    assert summary.fit.metrics["val_loss"] != clean.fit.metrics["val_loss"]


def test_sweep_command_reports_the_ranking_and_the_one_val_score(cache, tmp_path):
    folder = tmp_path / "cli"
    shutil.copytree(cache, folder)
    result = run("sweep", "--cache", folder, "--folds", 3, "--grid", cache.parent / "grid.toml", "--seed", 1)
    assert_ok(result)
    assert "top 10 of 17 settings, 3-fold cross-validation" in result.output
    assert "51 heads (17 settings x 3 folds)" in result.output
    metrics = json.loads((folder / "metrics.json").read_text())
    chosen = metrics["sweep"]["chosen"]
    assert f"chosen: {chosen['head']} " in result.output
    assert f"val (6 rows, read once, after the choice): acc {metrics['val_acc']:.4f}" in result.output
    rows = (folder / SWEEP_FILE).read_text().splitlines()[1:]
    assert rows[0].startswith(f"1,{chosen['head']},")


@pytest.mark.parametrize(
    "name, text, fragment",
    [
        ("grid.toml", "[sgd]\nmomentum = [0.9, 2]", "sgd.momentum = 2 is not a number from 0 to 1"),
        ("grid.json", '{"sgd": {"lr": [0.1, "x"]}}', "sgd.lr = 'x' is not a number > 0"),
        ("grid.toml", "[sgd\n", "is not valid TOML"),
    ],
)
def test_a_bad_grid_file_is_a_one_line_error_and_exit_1(cache, tmp_path, name, text, fragment):
    grid = tmp_path / name
    grid.write_text(text)
    before = sorted(path.name for path in cache.iterdir())
    assert_error(run("sweep", "--cache", cache, "--grid", grid), str(grid), fragment)
    assert sorted(path.name for path in cache.iterdir()) == before  # nothing written


def test_train_head_takes_class_weight_weight_decay_and_logreg_c(cache, tmp_path):
    folder = tmp_path / "train"
    shutil.copytree(cache, folder)
    assert_ok(run("train-head", "--cache", folder, "--class-weight", "balanced", "--weight-decay", 0.01, "--quiet"))
    config = json.loads((folder / "metrics.json").read_text())["train_config"]
    assert (config["class_weight"], config["weight_decay"]) == ("balanced", 0.01)
    assert_ok(run("train-head", "--cache", folder, "--head", "logreg", "--logreg-c", 0.1, "--quiet"))
    assert load_head(folder / "head.pt").train_config["c"] == 0.1
    assert_error(run("train-head", "--cache", folder, "--class-weight", "auto"), "auto", code=2)


def test_folds_above_the_smallest_class_and_seeds_out_of_range_are_one_line(cache, tmp_path):
    grid = cache.parent / "grid.toml"
    before = sorted(path.name for path in cache.iterdir())
    assert_error(run("sweep", "--cache", cache, "--grid", grid, "--folds", 10), "--folds 10 is more than the 9 train")
    for seed in (-1, 2**32):  # train-head's range: what numpy, scikit-learn and torch take
        result = run("sweep", "--cache", cache, "--grid", grid, "--seed", seed)
        assert result.exit_code == 2 and "Invalid value for '--seed'" in result.output
    with pytest.raises(ValueError, match="--seed -1 is out of range"):
        sweep_heads(cache, SweepConfig(grid=str(grid), seed=-1))
    assert sorted(path.name for path in cache.iterdir()) == before  # nothing written


def test_sweep_keeps_the_head_it_replaces_and_says_so(cache, tmp_path):
    grid = tmp_path / "one.toml"
    grid.write_text("[sgd]\nepochs = [1, 2]\nbatch_size = 4")
    folder, first = _sweep(cache, grid, tmp_path / "previous")
    assert first.previous_head is None and not (folder / PREVIOUS_HEAD_FILE).exists()  # no head before it
    kept = (folder / HEAD_FILE).read_bytes()
    result = run("sweep", "--cache", folder, "--folds", 2, "--grid", grid, "--seed", 3)
    assert_ok(result)
    said = "".join(result.output.split())  # rich wraps long paths anywhere
    assert f"theheadthissweepreplacediskeptas{folder / PREVIOUS_HEAD_FILE}" in said
    assert (folder / PREVIOUS_HEAD_FILE).read_bytes() == kept != (folder / HEAD_FILE).read_bytes()
    assert load_head(folder / PREVIOUS_HEAD_FILE).metrics["sweep"]["seed"] == 1
    assert owned_by_cache(folder / PREVIOUS_HEAD_FILE, folder) == PREVIOUS_HEAD_FILE
