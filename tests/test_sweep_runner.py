"""heads/sweep/runner.py and table.py: honest k-fold scores, the winner is the best reported mean, sweep.csv says so."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from headstart.heads.config import TrainConfig
from headstart.heads.kfold import stratified_folds
from headstart.heads.logreg import train_logreg
from headstart.heads.sweep.runner import CrossValidation, SettingScores, cross_validate
from headstart.heads.sweep.table import write_sweep_csv
from headstart.heads.train import train_sgd


def _data(rows: int = 80, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    labels = (torch.arange(rows) % 5 < 2).long()  # 2 : 3, so stratification shows
    features = torch.randn(rows, 512, generator=generator).relu_()
    features[:, :8] += 0.7 * labels.unsqueeze(1)
    return features, labels


SETTINGS = [
    TrainConfig(),
    TrainConfig(lr=0.01, class_weight="balanced"),
    TrainConfig(lr=0.003, epochs=3, batch_size=16),
    TrainConfig(lr=1e37),
    TrainConfig(head="logreg", c=0.1),
]


@pytest.fixture(scope="module")
def swept() -> CrossValidation:
    features, labels = _data()
    return cross_validate(features, labels, 2, SETTINGS, folds=4, seed=2)


def test_folds_are_stratified_and_disjoint_and_each_score_is_a_head_that_never_saw_its_fold(swept):
    features, labels = _data()
    splits = stratified_folds(labels.numpy(), 4, seed=2)
    assert sorted(np.concatenate(splits).tolist()) == list(range(len(labels)))  # disjoint, every row once
    for split in splits:
        assert np.bincount(labels.numpy()[split]).tolist() == [12, 8]  # each fold keeps the 3 : 2 shares
    for scores in swept.scores:
        setting = scores.setting
        for fold, split in enumerate(splits):
            keep = np.setdiff1d(np.arange(len(labels)), split)
            train = (features[keep], labels[keep])
            fit = train_logreg if setting.head == "logreg" else train_sgd
            head = fit(train, None, 2, setting).head
            with torch.no_grad():
                logits = head(features[split])
            if not torch.isfinite(logits).all():  # the diverging setting: wrong everywhere it is not finite
                assert scores.fold_loss[fold] == math.inf
                continue
            assert scores.fold_acc[fold] == pytest.approx((logits.argmax(1) == labels[split]).double().mean().item())
            loss = torch.nn.functional.cross_entropy(logits.double(), labels[split]).item()
            assert scores.fold_loss[fold] == pytest.approx(loss, rel=1e-4)


def test_same_seed_same_scores_and_progress_counts_every_head(swept):
    features, labels = _data()
    seen = []
    again = cross_validate(features, labels, 2, SETTINGS, folds=4, seed=2, on_progress=lambda *a: seen.append(a))
    assert [s.fold_acc for s in again.scores] == [s.fold_acc for s in swept.scores]
    assert seen[-1] == (len(SETTINGS) * 4, len(SETTINGS) * 4) == (again.heads, again.heads)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


def _scores(setting: TrainConfig, acc: tuple, loss: tuple) -> SettingScores:
    return SettingScores(setting, acc, loss)


def test_winner_is_best_mean_accuracy_then_lower_log_loss_then_simpler():
    tutorial, longer, balanced = TrainConfig(), TrainConfig(epochs=20), TrainConfig(class_weight="balanced")
    result = CrossValidation(
        [
            _scores(balanced, (0.9, 0.8), (0.3, 0.3)),
            _scores(longer, (0.8, 0.9), (0.3, 0.3)),  # the same mean, summed in another order
            _scores(tutorial, (0.85, 0.85), (0.3, 0.3)),
            _scores(TrainConfig(lr=0.01), (0.85, 0.85), (0.2, 0.2)),  # same accuracy, lower loss: wins
            _scores(TrainConfig(lr=0.1), (0.5, 0.5), (math.inf, 0.1)),
        ],
        folds=2,
        seed=0,
        seconds=1.0,
        head_seconds={"sgd": 1.0},
    )
    ranked = [scores.setting for scores in result.ranked()]
    assert ranked == [TrainConfig(lr=0.01), tutorial, longer, balanced, TrainConfig(lr=0.1)]
    assert result.winner.setting == TrainConfig(lr=0.01)


def test_sweep_csv_lists_every_setting_best_first_under_its_header(swept, tmp_path: Path):
    path = tmp_path / "sweep.csv"
    write_sweep_csv(path, swept)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("rank,head,")  # the header first: no comment line for readers to trip on
    rows = list(csv.DictReader(lines))
    assert len(rows) == len(SETTINGS) and [row["rank"] for row in rows] == [str(k) for k in range(1, 6)]
    means = [float(row["acc_mean"]) for row in rows]
    assert means[0] == max(means) and means == sorted(means, reverse=True)  # the chosen one is the argmax
    best = swept.winner
    assert float(rows[0]["acc_mean"]) == pytest.approx(best.acc_mean, abs=1e-6)
    assert float(rows[0]["acc_fold3"]) == pytest.approx(best.fold_acc[2], abs=1e-6)
    logreg = next(row for row in rows if row["head"] == "logreg")
    assert logreg["c"] == "0.1" and logreg["lr"] == "" and logreg["class_weight"] == "none"
    diverged = next(row for row in rows if row["lr"] == "1e+37")
    assert diverged["loss_mean"] == "inf" and diverged["rank"] == "5"
