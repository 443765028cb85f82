"""features/chunks.py, heads/streaming.py, heads/trust/streamed.py: below the in-memory limit train-head is today's
path bit for bit; above it (the limit lowered here) the default recipe streams and agrees within stated tolerances,
and the steps that must hold every row refuse with the alternative."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import separable, write_features

from headstart.cli import cli
from headstart.features import chunks
from headstart.features.chunks import TooLargeError, iter_chunks, reading_plan
from headstart.features.store import FeatureStore
from headstart.heads.checkpoint import load_head
from headstart.heads.config import TrainConfig
from headstart.heads.fit import fit_head
from headstart.heads.train import train_sgd
from headstart.heads.trust import mahalanobis
from headstart.heads.trust.config import TrustConfig
from headstart.heads.trust.streamed import fit_mahalanobis, sample_rows

RECIPE = TrainConfig(epochs=4, lr=0.01)


class _NoPlots:
    """The plots are not what these tests check: drawing them would double their time."""

    def start(self, kind: str, data: dict):
        return lambda: b""


def _noisy(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two overlapping classes (shift 1 on every dimension), sorted by class as extract writes class folders."""
    features, labels = separable(rows, seed)
    order = np.argsort(labels, kind="stable")
    features = features - 3 * labels[:, None]  # separable() shifts by 4: leave 1
    return features[order], labels[order]


@pytest.fixture
def cache(tmp_path):
    write_features(tmp_path / "cache", {"train": _noisy(600, 0), "val": _noisy(200, 1), "test": _noisy(100, 2)})
    return tmp_path / "cache"


@pytest.fixture
def low_limit(monkeypatch):
    """A 32 kB in-memory limit: the 900 rows of 16-d features (57.6 kB) stream, in windows of 128 rows."""
    monkeypatch.setattr(chunks, "IN_MEMORY_BYTES", 32 << 10)
    monkeypatch.setattr(chunks, "SHUFFLE_BLOCK_ROWS", 16)
    monkeypatch.setattr(chunks, "CHUNK_BYTES", 100 * 64)


def test_below_the_limit_the_head_is_the_in_memory_recipe_bit_for_bit(cache):
    summary = fit_head(cache, RECIPE, plots=_NoPlots())
    assert summary.reading.startswith("read into memory (900 labelled rows")
    with FeatureStore(cache / "features.h5") as store:
        train = store.read("train")
    direct = train_sgd((torch.from_numpy(train.features), torch.from_numpy(train.labels)), None, 2, RECIPE).head
    saved = load_head(summary.head_path)
    assert torch.equal(saved.calibration["uncalibrated"]["weight"], direct.weight)
    assert torch.equal(saved.calibration["uncalibrated"]["bias"], direct.bias)
    assert "reading" not in summary.metrics  # metrics.json as before


def test_above_the_limit_the_default_recipe_streams_and_agrees(cache, tmp_path, low_limit, monkeypatch):
    streamed = fit_head(cache, RECIPE, plots=_NoPlots())
    monkeypatch.setattr(chunks, "IN_MEMORY_BYTES", 1 << 30)
    reference = fit_head(_copy(cache, tmp_path / "memory"), RECIPE, plots=_NoPlots())
    assert reference.reading.startswith("read into memory")
    assert streamed.reading.startswith("streamed in chunks (900 labelled rows")
    assert streamed.metrics["reading"] == streamed.reading
    assert streamed.counts == reference.counts == {"train": 600, "val": 200, "test": 100}
    # Stated tolerances (docs/scale.md): val accuracy within 0.03, the weights' direction within cosine 0.99.
    assert abs(streamed.metrics["val_acc"] - reference.metrics["val_acc"]) <= 0.03
    assert streamed.metrics["val_acc"] > 0.85  # the classes overlap: about 0.92 is the best a line does
    ours, theirs = (load_head(s.head_path).calibration["uncalibrated"]["weight"] for s in (streamed, reference))
    cosine = torch.nn.functional.cosine_similarity((ours[1] - ours[0])[None], (theirs[1] - theirs[0])[None])
    assert float(cosine) > 0.99
    # The trust fit: the same Mahalanobis model (every row), a threshold and temperature from a 512-row sample.
    mine, other = load_head(streamed.head_path).unknown, load_head(reference.head_path).unknown
    assert torch.allclose(mine.state["means"], other.state["means"], atol=1e-5)
    assert torch.allclose(mine.state["precision"], other.state["precision"], rtol=1e-4, atol=1e-5)
    assert abs(mine.threshold / other.threshold - 1) < 0.15
    temperatures = (s.metrics["calibration"]["temperature"] for s in (streamed, reference))
    assert abs(np.log(next(temperatures) / next(temperatures))) < 0.25
    assert abs(streamed.metrics["test_report"]["accuracy"] - reference.metrics["test_report"]["accuracy"]) <= 0.03


def _copy(cache, to):
    to.mkdir()
    (to / "features.h5").write_bytes((cache / "features.h5").read_bytes())
    return to


@pytest.mark.parametrize(
    "config, trust, choose, alternative",
    [
        (TrainConfig(head="logreg"), TrustConfig(), None, "use --head sgd"),
        (RECIPE, TrustConfig(unknown_method="knn"), None, "use --unknown-method mahalanobis"),
    ],
)
def test_what_holds_every_row_refuses_above_the_limit(cache, low_limit, config, trust, choose, alternative):
    with pytest.raises(TooLargeError, match="holds every row in memory.*900 labelled rows") as raised:
        fit_head(cache, config, trust=trust, choose=choose, plots=_NoPlots())
    assert alternative in str(raised.value)
    assert not (cache / "head.pt").exists()


def test_above_the_limit_the_sweep_cross_validates_a_sample_and_trains_the_winner_streamed(cache, low_limit, tmp_path):
    """The grid's SGD settings are cross-validated on a stratified sample of the train rows as large as the limit
    (logreg, which holds every row, left out and counted); the winner trains on every row, streamed."""
    import csv
    import json

    from headstart.heads.config import SweepConfig
    from headstart.heads.sweep.step import sweep_heads

    grid = tmp_path / "grid.toml"
    grid.write_text("[sgd]\nlr = [0.001, 0.05]\nepochs = [2]\n[logreg]\nc = [1.0]\n")
    summary = sweep_heads(cache, SweepConfig(grid=str(grid), folds=3))
    metrics = json.loads((cache / "metrics.json").read_text())
    assert metrics["reading"].startswith("streamed in chunks (900 labelled rows")
    sweep = metrics["sweep"]
    limit_rows = chunks.IN_MEMORY_BYTES // (16 * 4)  # 512 of the 600 train rows
    assert sweep["train_rows"] == 600 and limit_rows <= sweep["sampled_train_rows"] <= limit_rows + 2
    assert sweep["logreg_left_out"] == 1
    with open(cache / "sweep.csv", newline="") as table:
        tried = list(csv.DictReader(table))
    assert len(tried) == 2 and len(summary.cross_validation.ranked()) == 2
    winner = summary.cross_validation.winner.setting
    assert winner.head == "sgd" and winner.lr in (0.001, 0.05)
    assert load_head(cache / "head.pt").train_config["lr"] == winner.lr
    assert metrics["val_report"]["accuracy"] > 0.7  # two overlapping classes: the streamed winner learnt them


def test_the_cli_says_which_path_and_refuses_in_one_line(cache, low_limit):
    runner = CliRunner()
    trained = runner.invoke(cli, ["train-head", "--cache", str(cache), "--epochs", "1"])
    assert trained.exit_code == 0, trained.output
    assert "features streamed in chunks (900 labelled rows" in trained.output
    refused = runner.invoke(cli, ["train-head", "--cache", str(cache), "--head", "logreg"])
    assert refused.exit_code == 1
    assert "--head logreg holds every row in memory" in refused.output and "Traceback" not in refused.output


def test_the_streamed_mahalanobis_fit_equals_the_in_memory_one(cache, low_limit):
    with FeatureStore(cache / "features.h5") as store:
        plan = reading_plan(store)
        assert plan.streamed and plan.chunk_rows == 100
        assert [start for start, _, _ in iter_chunks(store, "train", plan.chunk_rows)] == [0, 100, 200, 300, 400, 500]
        streamed = fit_mahalanobis(store, plan, 2)
        train = store.read("train")
    expected = mahalanobis.fit(torch.from_numpy(train.features), torch.from_numpy(train.labels))
    assert torch.allclose(streamed["means"], expected["means"], rtol=0, atol=1e-6)
    assert torch.allclose(streamed["precision"], expected["precision"], rtol=1e-5, atol=1e-6)


def test_the_trust_sample_keeps_each_class_share_and_two_rows():
    labels = np.array([0] * 900 + [1] * 100 + [2] * 3)
    rows = sample_rows(labels, 100, seed=0)
    assert np.all(np.diff(rows) > 0)
    assert np.bincount(labels[rows]).tolist() == [90, 10, 2]


def test_the_threshold_comes_from_its_own_smaller_sample_and_the_temperature_from_the_limits(
    cache, low_limit, monkeypatch
):
    from headstart.heads.linear import LinearHead
    from headstart.heads.trust import streamed

    monkeypatch.setattr(streamed, "THRESHOLD_ROWS", 200)
    config, head = TrustConfig(), LinearHead(16, 2)
    with FeatureStore(cache / "features.h5") as store:
        plan = reading_plan(store)
        labels = store.read("train").labels
        trust = streamed.fit_trust_streamed(head, store, plan, RECIPE, config)
        small = streamed.read_sample(store, plan, sample_rows(labels, 200, RECIPE.seed))
        large = streamed.read_sample(store, plan, sample_rows(labels, plan.limit_rows, RECIPE.seed))
    assert len(small[1]) == 200 and len(large[1]) == 512
    assert trust.unknown.threshold == streamed.sample_threshold(small, config, RECIPE.seed)[0]
    assert trust.unknown.threshold != streamed.sample_threshold(large, config, RECIPE.seed)[0]
    assert trust.calibration.temperature == streamed.sample_temperature(large, 2, RECIPE, config)
