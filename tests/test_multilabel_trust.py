"""Multi-label trust (issue 24): per-label calibration recovers planted scales and folds into the head; the unknown
model flags rows unlike train; head.pt format 5 records both, old format 4 heads load, damaged records are refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_multilabel import planted

from headstart.features.provenance import PREPROCESSINGS
from headstart.heads.checkpoint import HeadCheckpoint, HeadFileError, head_digest, load_head, save_head
from headstart.heads.config import TrainConfig
from headstart.heads.linear import LinearHead
from headstart.heads.multilabel import calibration
from headstart.heads.multilabel.train import logits
from headstart.heads.multilabel.trust import fit_multilabel_trust
from headstart.heads.multilabel.unknown import FORMS, fit_unknown_multilabel
from headstart.heads.trust.config import TrustConfig


def calibrated_rows(rows: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logits z and 0/1 targets drawn with P(1) = sigmoid(a z + b) for planted a, b per label."""
    rng = np.random.default_rng(seed)
    planted_scale, planted_shift = np.array([0.5, 2.0, 1.0]), np.array([0.0, 0.0, -1.0])
    z = rng.standard_normal((rows, 3)) * 3
    targets = (rng.random((rows, 3)) < calibration.apply(z, planted_scale, planted_shift)).astype(np.float64)
    return z, targets, np.stack([planted_scale, planted_shift])


def test_temperatures_and_platt_recover_planted_scales():
    z, targets, planted_values = calibrated_rows()
    temperatures = calibration.fit_temperatures(z[:, :2], targets[:, :2])
    assert temperatures == pytest.approx(1 / planted_values[0, :2], rel=0.15)
    scale, shift = calibration.fit_platt(z, targets)
    assert scale == pytest.approx(planted_values[0], rel=0.15) and shift == pytest.approx(planted_values[1], abs=0.2)
    before = calibration.label_ece(calibration.apply(z, np.ones(3), np.zeros(3)), targets)
    after = calibration.label_ece(calibration.apply(z, scale, shift), targets)
    assert after < 0.03 < before
    constant = np.zeros((50, 1))
    assert calibration.fit_temperatures(np.ones((50, 1)), constant) == [1.0]  # nothing to fit: identity
    assert calibration.fit_platt(np.ones((50, 1)), constant) == ([1.0], [0.0])


def test_folding_the_calibration_into_the_head_gives_its_probabilities():
    head = LinearHead(4, 3, generator=torch.Generator().manual_seed(0))
    features = torch.randn(10, 4, generator=torch.Generator().manual_seed(1))
    scale, shift = np.array([0.5, 2.0, 1.5]), np.array([0.1, -0.2, 0.0])
    folded = calibration.fold(head, scale, shift)
    expected = calibration.apply(logits(head, features), scale, shift)
    assert torch.sigmoid(folded(features)).detach().numpy() == pytest.approx(expected, abs=1e-6)


def test_trust_calibrates_chooses_thresholds_on_calibrated_probabilities_and_flags_unknown_rows():
    features, targets = planted(200, seed=3)
    train = torch.from_numpy(features[:150]), torch.from_numpy(targets[:150].astype(np.float32))
    val = torch.from_numpy(features[150:]), torch.from_numpy(targets[150:].astype(np.float32))
    config = TrainConfig(epochs=10, lr=0.1)
    from headstart.heads.multilabel.train import train_multilabel

    head = train_multilabel(train, None, config).head
    trusted = fit_multilabel_trust(head, train, val, config, TrustConfig())
    record, metrics = trusted.calibration, trusted.metrics
    assert record["method"] == calibration.DEFAULT_METHOD == metrics["calibration"]["method"]
    assert all(value > 0 for value in record["scale"]) and trusted.held_out.shape == (150, 4)
    folded = torch.sigmoid(trusted.head(val[0])).detach().numpy()
    unfolded = calibration.apply(logits(head, val[0]), np.array(record["scale"]), np.array(record["shift"]))
    assert folded == pytest.approx(unfolded, abs=1e-5)
    assert metrics["unknown"]["form"] == "one-gaussian" and 0 <= metrics["unknown"]["val_flagged_rate"] <= 0.2
    far = torch.from_numpy(features[150:] + 40)
    assert bool(trusted.unknown.flag(far).all()) and not bool(trusted.unknown.flag(train[0]).all())
    off = fit_multilabel_trust(head, train, val, config, TrustConfig(calibrate=False))
    assert off.calibration is None and off.head is head and off.metrics["calibration"] is None
    few = fit_multilabel_trust(head, (train[0][:6], train[1][:6]), None, config, TrustConfig())
    assert few.unknown is None and few.calibration is None and "too few" in few.skipped


@pytest.mark.parametrize("form", FORMS)
def test_every_unknown_form_flags_far_rows_at_about_its_rate(form):
    features, targets = planted(700, seed=4)
    train = torch.from_numpy(features[:300]), torch.from_numpy(targets[:300].astype(np.float32))
    model = fit_unknown_multilabel(*train, form, 0.1, 5, 0)
    assert 0.0 <= float(model.flag(torch.from_numpy(features[300:])).double().mean()) <= 0.3
    if form != "knn":  # a cosine distance does not see a row's length
        assert bool(model.flag(torch.from_numpy(features * 0 + 50)).all())


def _saved(tmp_path, calibrated: bool = True) -> tuple[HeadCheckpoint, dict]:
    features, targets = planted(120, seed=5)
    train = torch.from_numpy(features), torch.from_numpy(targets.astype(np.float32))
    head = LinearHead(12, 4, generator=torch.Generator().manual_seed(0))
    trusted = fit_multilabel_trust(head, train, None, TrainConfig(epochs=2, lr=0.1), TrustConfig(calibrate=calibrated))
    record = {"task": "multi-label", "thresholds": [0.5] * 4, "threshold_rule": "fixed"}
    checkpoint = HeadCheckpoint(
        *(trusted.head, list("abcd"), "resnet18", {"kind": "none", "name": "random init, seed 0", "sha256": ""}),
        *(PREPROCESSINGS["imagenet"].describe(), "fp32", {}, {}, trusted.unknown, trusted.calibration, record),
    )
    return checkpoint, record


def test_head_file_format_5_round_trips_and_format_4_heads_still_load(tmp_path, monkeypatch):
    monkeypatch.setattr("headstart.heads.checkpoint._shape_problem", lambda data: None)  # 12-d test features
    checkpoint, _ = _saved(tmp_path)
    save_head(tmp_path / "head.pt", checkpoint)
    loaded = load_head(tmp_path / "head.pt")
    assert loaded.calibration["method"] == "temperature" and loaded.unknown.method == "mahalanobis"
    assert loaded.unknown.state["means"].shape == (1, 12)  # one Gaussian
    data = torch.load(tmp_path / "head.pt", weights_only=True)
    assert data["format_version"] == 5
    old = {key: value for key, value in data.items() if key not in ("calibration", "unknown")}
    old |= {"format_version": 4, "calibration": None, "unknown": None}
    old["digest"] = head_digest(old["state_dict"], old["classes"], None, old["multilabel"])
    torch.save(old, tmp_path / "old.pt")
    former = load_head(tmp_path / "old.pt")
    assert former.calibration is None and former.unknown is None and former.thresholds == [0.5] * 4
    assert former.no_unknown_reason.startswith("a format 4 multi-label head file, saved before multi-label heads")
    for damage in ({"scale": [0.0, 1.0, 1.0, 1.0]}, {"shift": [1.0]}, {"method": "isotonic"}):
        data["calibration"] = {**data["calibration"], **damage}
        torch.save(data, tmp_path / "bad.pt")
        with pytest.raises(HeadFileError, match="damaged .*calibration"):
            load_head(tmp_path / "bad.pt")
        data = torch.load(tmp_path / "head.pt", weights_only=True)
