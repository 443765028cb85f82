"""heads/trust/unknown.py, mahalanobis.py, knn.py: held-out classes flagged, val about --unknown-rate of the time."""

from __future__ import annotations

import io

import pytest
import torch

from headstart.heads.trust import METHODS, UnknownModel, fit_unknown, mahalanobis
from headstart.heads.trust.mahalanobis import ledoit_wolf
from headstart.heads.trust.unknown import held_out_scores

DIM = 64


def _clusters(seed: int, rows_per_class: int, means: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian clusters around means (one per class), unit noise."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(len(means)).repeat_interleave(rows_per_class)
    return means[labels] + torch.randn(len(labels), DIM, generator=generator), labels


@pytest.fixture(scope="module")
def models(data):
    """Each method fitted once at --unknown-rate 0.05."""
    return {method: fit_unknown(*data[0], method=method, rate=0.05) for method in METHODS}


@pytest.fixture(scope="module")
def data():
    """Four classes; the fourth is held out of training and is the 'unknown' one."""
    means = 1.5 * torch.randn(4, DIM, generator=torch.Generator().manual_seed(0))
    train = _clusters(1, 300, means[:3])
    val = _clusters(2, 600, means[:3])
    held_out = _clusters(3, 300, means[3:])[0]
    return train, val, held_out


@pytest.mark.parametrize("method", sorted(METHODS))
def test_held_out_class_is_flagged_far_more_than_val(data, models, method):
    _, val, held_out = data
    model = models[method]
    val_rate = float(model.flag(val[0]).float().mean())
    held_out_rate = float(model.flag(held_out).float().mean())
    assert held_out_rate >= 0.9, held_out_rate
    assert val_rate <= 0.1, val_rate
    assert float(model.score(held_out).min()) > float(model.score(val[0]).median())


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("rate", [0.05, 0.2])
def test_threshold_flags_about_rate_of_in_distribution_images(data, method, rate):
    train, val, _ = data
    flagged = float(fit_unknown(*train, method=method, rate=rate).flag(val[0]).float().mean())
    # Sampling alone moves the rate: the threshold is a quantile of 900 out-of-fold scores and the rate is
    # measured on 1800 val rows. Over 8 data seeds, Mahalanobis averaged 0.051 and 0.202 (kNN 0.041 and 0.176:
    # its fold models hold 4/5 of the rows, so its held-out distances are larger and its threshold high).
    standard_error = (rate * (1 - rate) * (1 / 900 + 1 / 1800)) ** 0.5
    assert abs(flagged - rate) <= 2.5 * standard_error, (rate, flagged)


def test_threshold_comes_from_held_out_scores_not_in_sample_ones(data, models):
    train, val, _ = data
    model = models["knn"]
    in_sample = model.score(train[0])
    # A kNN row is its own nearest neighbour: in-sample scores are 0 and a threshold set on them flags almost all.
    assert float(in_sample.abs().max()) < 1e-5
    assert float((model.score(val[0]) > float(in_sample.quantile(0.95))).float().mean()) > 0.9
    assert model.threshold == pytest.approx(
        float(held_out_scores(*train, method="knn").double().quantile(0.95)), rel=1e-6
    )


def test_ledoit_wolf_matches_scikit_learn():
    rows = torch.randn(80, 30, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    rows = rows * torch.linspace(0.2, 3.0, 30, dtype=torch.float64)
    rows -= rows.mean(0)
    shrunk, shrinkage = ledoit_wolf(rows)
    # From sklearn.covariance.ledoit_wolf(rows, assume_centered=True) (importing it here costs seconds of scipy).
    assert shrinkage == pytest.approx(0.3781891672565344, rel=1e-9)
    assert [float(shrunk[0, 0]), float(shrunk[3, 7]), float(shrunk[29, 29])] == pytest.approx(
        [1.253124976076902, -0.0013321764156540752, 6.248444359424894], rel=1e-9
    )


@pytest.mark.parametrize("method", sorted(METHODS))
def test_model_round_trips_through_a_weights_only_file(data, models, method):
    val = data[1]
    model = models[method]
    buffer = io.BytesIO()
    torch.save(model.to_dict(), buffer)
    buffer.seek(0)
    loaded = UnknownModel.from_dict(torch.load(buffer, weights_only=True))
    assert (loaded.method, loaded.threshold, loaded.rate, loaded.folds) == (method, model.threshold, 0.05, 5)
    assert torch.equal(loaded.score(val[0]), model.score(val[0]))


@pytest.mark.parametrize(
    "record, fragment", [({"method": "magic"}, "method"), ({"method": "knn", "state": {"bank": [1.0]}}, "state")]
)
def test_damaged_record_is_a_clear_error(record, fragment):
    with pytest.raises(ValueError, match=fragment):
        UnknownModel.from_dict(record)


@pytest.mark.parametrize("rate", [0.0, 1.0, -0.1])
def test_rate_outside_zero_one_is_refused(data, rate):
    with pytest.raises(ValueError, match="unknown-rate"):
        fit_unknown(*data[0], rate=rate)


def test_the_cli_lists_every_method():
    from headstart.heads.trust.config import UNKNOWN_METHODS

    assert sorted(UNKNOWN_METHODS) == sorted(METHODS)


@pytest.mark.parametrize(
    "flagged, images, warned", [(4, 20, True), (3, 20, False), (10, 19, False), (16, 100, True), (15, 100, False)]
)
def test_drift_warning_above_three_times_the_rate_with_20_images(flagged, images, warned):
    from headstart.heads.trust.unknown import drift_warning

    message = drift_warning(flagged, images, 0.05)
    assert (message is not None) == warned
    if warned:
        assert f"{flagged} of {images}" in message and "5.0% expected" in message


def test_distances_computed_a_block_of_rows_at_a_time_are_the_same_bits(data, monkeypatch):
    """class_distances bounds its rows x classes x width float64 temporaries by blocks of rows; the result is the
    whole-matrix one bit for bit (each row's distances are computed alike), empty input included."""
    (features, labels), (val, _), _ = data
    state = mahalanobis.fit(features, labels)
    whole = mahalanobis.class_distances(state, val)  # 1,800 rows x 3 classes x 64 x 8 bytes: one block of 64 MiB
    monkeypatch.setattr(mahalanobis, "BLOCK_BYTES", 7 * 3 * DIM * 8)  # 7 rows a block: the last one partial
    assert torch.equal(mahalanobis.class_distances(state, val), whole)
    assert mahalanobis.class_distances(state, val[:0]).shape == (0, 3)


def test_the_fit_centred_a_block_of_rows_at_a_time_is_the_same_bits(data, monkeypatch):
    """fit centres one float64 copy of the rows in place and sums |x|^4 by blocks: the same means and precision as
    the whole-matrix fit, and the caller's rows (float64 ones included) untouched."""
    features, labels = data[0]
    whole = mahalanobis.fit(features, labels)
    monkeypatch.setattr(mahalanobis, "BLOCK_BYTES", 7 * DIM * 8)  # 7 rows a block
    rows = features.double()
    kept = rows.clone()
    blocked = mahalanobis.fit(rows, labels)
    assert all(torch.equal(blocked[name], whole[name]) for name in ("means", "precision"))
    assert torch.equal(rows, kept)


@pytest.mark.parametrize("spread", [1.0, 1e-3])  # well conditioned; a precision far from it (every row rechecked)
def test_whitened_scores_are_class_distances_float32_bits(spread):
    """score() takes the distances from one whitening product a row and recomputes, by class_distances, the rows
    its rounding bound cannot settle: the float32 scores are class_distances' minimum, bit for bit, a class
    without rows (a NaN mean) included."""
    generator = torch.Generator().manual_seed(6)
    means = 3 * torch.randn(4, DIM, generator=generator)
    labels = torch.arange(3).repeat_interleave(200)
    rows = means[labels] + torch.randn(len(labels), DIM, generator=generator) * spread * torch.rand(
        DIM, generator=generator
    )
    state = mahalanobis.fit(rows, labels)
    state["means"] = torch.cat([state["means"], torch.full((1, DIM), float("nan"))])  # a class with no rows
    probe = torch.cat([rows, means[3:] + torch.randn(100, DIM, generator=generator)])
    expected = mahalanobis.class_distances(state, probe).min(1).values.float()
    assert torch.equal(mahalanobis.score(state, probe), expected)
    distances, margin = mahalanobis.whitened_scores(state, probe)
    settled = (distances - margin).float() == (distances + margin).float()
    assert torch.equal(distances.float()[settled], expected[settled])
    if spread == 1.0:  # the whitening settles most rows of a well-conditioned precision
        assert settled.double().mean() > 0.9
