"""heads/sweep/multilabel.py and the sweep command on multi-label features: settings chosen by cross-validated mAP over
folds stratified by each row's lowest label, sweep.csv with map_ columns, the winner refit as a multi-label head."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from cli_helpers import assert_error, assert_ok, read_csv, run
from test_multilabel import planted, write_multilabel

from headstart.features.files.cachedir import HEAD_FILE, SWEEP_FILE
from headstart.heads.checkpoint import load_head
from headstart.heads.config import TrainConfig
from headstart.heads.kfold import stratified_folds
from headstart.heads.multilabel.metrics import average_precision
from headstart.heads.multilabel.train import train_multilabel
from headstart.heads.sweep.multilabel import cross_validate_multilabel, lowest_labels

GRID = """
[sgd]
lr = [0.0001, 0.05]
epochs = [1, 15]
[logreg]
c = [1.0]
"""


def test_each_fold_score_is_the_map_of_a_head_that_never_saw_its_fold():
    features, targets = (torch.from_numpy(array.astype(np.float32)) for array in planted(60, seed=4))
    settings = [TrainConfig(lr=0.0001, epochs=1), TrainConfig(lr=0.05, epochs=15)]
    swept = cross_validate_multilabel(features, targets, settings, folds=3, seed=1)
    splits = stratified_folds(lowest_labels(targets), 3, 1)
    assert sorted(np.concatenate(splits).tolist()) == list(range(60))
    for scores in swept.scores:
        for fold, held in enumerate(splits):
            keep = np.setdiff1d(np.arange(60), held)
            head = train_multilabel((features[keep], targets[keep]), None, scores.setting).head
            with torch.no_grad():
                probabilities = torch.sigmoid(head(features[held])).numpy()
            truth = targets[held].numpy()
            aps = [average_precision(truth[:, k], probabilities[:, k]) for k in range(truth.shape[1])]
            assert scores.fold_acc[fold] == pytest.approx(np.mean([ap for ap in aps if ap is not None]))
    assert swept.metric == "map" and swept.winner.setting == settings[1]  # the converged head ranks better
    assert swept.winner.acc_mean > 0.9 > swept.ranked()[1].acc_mean


def test_the_sweep_command_chooses_by_map_and_refits_a_multi_label_head(tmp_path):
    features, targets = planted(90, seed=2, labels=3)
    cache = tmp_path / "cache"
    write_multilabel(cache, {"train": (features[:70], targets[:70]), "val": (features[70:], targets[70:])})
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID)
    result = run("sweep", "--cache", cache, "--grid", grid, "--folds", "3")
    assert_ok(result)
    printed = " ".join(result.output.split())
    assert "cv mAP" in printed and "1 logreg setting(s) of the grid left out" in printed and "micro F1" in printed
    table = read_csv(cache / SWEEP_FILE)
    assert len(table) == 4 and {"map_mean", "map_fold3", "loss_mean"} <= set(table[0])
    assert "acc_mean" not in table[0]
    assert [float(row["map_mean"]) for row in table] == sorted((float(row["map_mean"]) for row in table), reverse=True)
    assert (table[0]["lr"], table[0]["epochs"]) == ("0.05", "15")
    head = load_head(cache / HEAD_FILE)
    assert head.multilabel is not None and len(head.thresholds) == 3
    assert head.train_config["lr"] == 0.05 and head.train_config["epochs"] == 15
    metrics = json.loads((cache / "metrics.json").read_text())
    assert metrics["sweep"]["cv_map_mean"] == pytest.approx(float(table[0]["map_mean"]), abs=1e-6)
    assert metrics["sweep"]["logreg_left_out"] == 1 and metrics["val_report"]["rows"] == 20
    assert metrics["val_report"]["mAP"] > 0.9


def test_too_many_folds_or_no_sgd_setting_is_one_line(tmp_path):
    features, targets = planted(8, labels=3)
    cache = tmp_path / "cache"
    write_multilabel(cache, {"train": (features, targets)})
    assert_error(run("sweep", "--cache", cache, "--folds", "9"), "--folds 9 is more than the 8 train rows")
    grid = tmp_path / "grid.toml"
    grid.write_text("[logreg]\nc = [1.0]\n")
    assert_error(run("sweep", "--cache", cache, "--grid", grid, "--folds", "2"), "the grid has no [sgd] settings")
    assert not (cache / HEAD_FILE).exists()
