"""heads/trust/fit.py and plot.py: what train-head stores and reports about unknown images and calibration."""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from headstart.heads.config import TrainConfig
from headstart.heads.plots import render
from headstart.heads.train import train_sgd
from headstart.heads.trust import TrustConfig, UnknownModel, fit_trust, reliability_png

CONFIG = TrainConfig(epochs=10, lr=0.1, batch_size=100)


def _clusters(seed: int, rows_per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Three overlapping classes in 32 dimensions."""
    means = torch.randn(3, 32, generator=torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(3).repeat_interleave(rows_per_class)
    return means[labels] + torch.randn(len(labels), 32, generator=generator), labels


def _trainer(x, y):
    return train_sgd((x, y), None, 3, CONFIG).head


@pytest.fixture(scope="module")
def fitted():
    train, val = _clusters(1, 60), _clusters(2, 100)
    head = _trainer(*train)
    return head, train, val, fit_trust(head, train, val, CONFIG, TrustConfig(unknown_rate=0.1))


def test_metrics_record_temperature_ece_and_flag_rate(fitted):
    head, _, val, trust = fitted
    metrics = trust.metrics()
    assert set(metrics["calibration"]) == {"temperature", "val_ece_before", "val_ece_after"}
    assert metrics["calibration"]["val_ece_after"] < metrics["calibration"]["val_ece_before"]
    assert metrics["unknown"]["method"] == "mahalanobis" and metrics["unknown"]["rate"] == 0.1
    assert metrics["unknown"]["val_flagged_rate"] == pytest.approx(
        float((trust.unknown.score(val[0]) > metrics["unknown"]["threshold"]).double().mean())
    )
    assert 0.02 <= metrics["unknown"]["val_flagged_rate"] <= 0.2
    with torch.inference_mode():
        assert torch.equal(trust.head(val[0]).argmax(1), head(val[0]).argmax(1))
        assert torch.allclose(trust.head(val[0]), head(val[0]) / metrics["calibration"]["temperature"], atol=1e-5)


def test_records_load_with_weights_only(fitted):
    head, _, val, trust = fitted
    buffer = io.BytesIO()
    records = trust.records()
    torch.save({"unknown": records["unknown"].to_dict(), "calibration": records["calibration"]}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    assert torch.equal(loaded["calibration"]["uncalibrated"]["weight"], head.weight)
    assert UnknownModel.from_dict(loaded["unknown"]).threshold == trust.unknown.threshold


def test_no_calibrate_keeps_the_head_and_still_fits_the_unknown_model(fitted):
    head, train, val, _ = fitted
    trust = fit_trust(head, train, val, CONFIG, TrustConfig(calibrate=False))
    assert trust.head is head and trust.calibration is None and trust.metrics()["calibration"] is None
    assert trust.unknown is not None and trust.val_reliability is not None


def test_a_class_with_one_row_skips_with_a_reason(fitted):
    head, train, val, _ = fitted
    keep = torch.cat([torch.arange(120), torch.tensor([120])])  # the third class keeps one row
    trust = fit_trust(head, (train[0][keep], train[1][keep]), val, CONFIG)
    assert trust.unknown is None and trust.calibration is None and "fewer than 2" in trust.skipped
    assert trust.records() == {"calibration": None, "unknown": None}


def test_reliability_diagram_is_a_png(fitted):
    for png in (render("calibration", fitted[3].reliability_plot()), reliability_png(None, None, None)):
        with Image.open(io.BytesIO(png)) as image:
            assert image.format == "PNG" and image.size == (550, 500)


def test_fold_heads_take_as_many_sgd_steps_as_the_saved_head(monkeypatch):
    import headstart.heads.train as train_module
    from headstart.heads.trust.fit import fold_trainer

    steps = []
    monkeypatch.setattr(
        train_module,
        "train_one_epoch",
        lambda head, loader, optimizer, weight=None: (steps.append(len(loader)), train_module.Scores(0.0, 0.0))[1],
    )
    config = TrainConfig(batch_size=32)
    train = _clusters(3, 81)  # 243 rows: 8 batches of at most 32
    fold_trainer(config, 3, len(train[1]))(train[0][:194], train[1][:194])  # a fold of 4/5
    assert steps == [8] * config.epochs


def test_fold_heads_train_in_place_bit_for_bit_as_on_copies():
    """held_out_logits trains each fold's head on its rows in place (no copy of 4/5 of them): the logits are those
    of heads trained on copies, as kfold.out_of_fold gives them, bit for bit; and the same fold's head is the same
    whether it gets the rows or a copy."""
    from headstart.heads.kfold import out_of_fold, stratified_folds
    from headstart.heads.trust.calibration import held_out_logits
    from headstart.heads.trust.fit import fold_trainer

    features, labels = _clusters(3, 81)
    trainer = fold_trainer(TrainConfig(batch_size=32, epochs=3), 3, len(labels))
    in_place = held_out_logits(features, labels, trainer, folds=5, seed=4)

    def on_copies(x: torch.Tensor, y: torch.Tensor, held: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return trainer(x, y)(held)

    copies = out_of_fold(features, labels, stratified_folds(labels.numpy(), 5, 4), on_copies)
    assert in_place.shape == (len(labels), 3)
    assert torch.equal(in_place, copies)
    rows = torch.arange(10, len(labels), 2)
    head_in_place, head_on_copy = trainer(features, labels, rows), trainer(features[rows], labels[rows])
    assert torch.equal(head_in_place.weight, head_on_copy.weight) and torch.equal(head_in_place.bias, head_on_copy.bias)
