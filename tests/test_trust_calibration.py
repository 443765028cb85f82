"""heads/trust/calibration.py: ECE as defined, the temperature fitted and folded in, labels unchanged."""

from __future__ import annotations

import pytest
import torch

from headstart.heads.config import TrainConfig
from headstart.heads.linear import LinearHead
from headstart.heads.train import train_sgd
from headstart.heads.trust import calibrate, expected_calibration_error, fold_temperature, reliability
from headstart.heads.trust.calibration import fit_temperature


def test_ece_by_hand():
    probabilities = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.92, 0.08]])
    labels = torch.tensor([0, 1, 1, 1])
    # Bins of width 1/15: 0.9 and 0.92 share (0.8667, 0.9333] (mean confidence 0.91, accuracy 0.5);
    # 0.6 (wrong) and 0.7 (right) are alone. ECE = (2 * 0.41 + 0.6 + 0.3) / 4.
    assert expected_calibration_error(probabilities, labels) == pytest.approx((2 * 0.41 + 0.6 + 0.3) / 4)
    bins = reliability(probabilities, labels)
    assert sum(bins.counts) == 4 and bins.counts[13] == 2
    assert bins.accuracy[13] == pytest.approx(0.5) and bins.confidence[13] == pytest.approx(0.91)


def test_fitted_temperature_recovers_a_known_one():
    generator = torch.Generator().manual_seed(0)
    true_logits = 1.5 * torch.randn(4000, 3, generator=generator)
    labels = torch.multinomial(torch.softmax(true_logits, 1), 1, generator=generator).squeeze(1)
    # Logits 3x too large: the calibrated temperature is 3.
    assert fit_temperature(3 * true_logits, labels) == pytest.approx(3.0, rel=0.08)
    assert fit_temperature(true_logits / 2, labels) == pytest.approx(0.5, rel=0.08)


@pytest.mark.parametrize("temperature", [0.25, 1.0, 7.0])
def test_folded_temperature_divides_logits_and_keeps_labels(temperature):
    head = LinearHead(16, 4, generator=torch.Generator().manual_seed(1))
    features = torch.randn(200, 16, generator=torch.Generator().manual_seed(2))
    folded = fold_temperature(head, temperature)
    with torch.inference_mode():
        assert torch.allclose(folded(features), head(features) / temperature, atol=1e-5)
        assert torch.equal(folded(features).argmax(1), head(features).argmax(1))
    assert type(folded) is LinearHead and folded.head_args == head.head_args


def _weak_signal(seed: int, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (rows,), generator=generator)
    features = torch.randn(rows, 128, generator=generator)
    features[:, 0] += 1.5 * labels.float()
    return features, labels


def test_temperature_lowers_ece_of_an_overconfident_head():
    train, val = _weak_signal(1, 200), _weak_signal(2, 600)
    # 128 noise dimensions, 200 rows, a high rate: the head memorises train and is overconfident.
    config = TrainConfig(epochs=10, lr=0.1, batch_size=100)

    def trainer(x, y, fold=None):
        return train_sgd((x, y), None, 2, config, rows=fold).head

    calibration = calibrate(trainer(*train), train, trainer, val, seed=config.seed)
    assert calibration.temperature > 1.5
    assert calibration.val_ece_before > 0.15
    assert calibration.val_ece_after <= calibration.val_ece_before - 0.1
    with torch.inference_mode():
        assert torch.equal(calibration.head(val[0]).argmax(1), calibration.uncalibrated(val[0]).argmax(1))
    record = calibration.to_dict()
    assert record["temperature"] == calibration.temperature and record["folds"] == 5
    assert torch.equal(record["uncalibrated"]["weight"], calibration.uncalibrated.weight)
