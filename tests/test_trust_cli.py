"""Unknown images and calibration end to end: extract generated kinds, train-head, predict a folder of an unseen kind."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from bench.trust import generate_classes, generate_kind
from cli_helpers import assert_ok, read_csv, run
from heads.checkpoint import load_head

SEEN = ("red_fields", "green_stripes", "gray_rings")
UNSEEN = "yellow_dots"


@dataclass
class Trained:
    cache: Path
    data: Path
    unseen: Path
    train_output: str


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Trained:
    """Three generated kinds trained on (random-weights backbone); a fourth kind, never seen, as the unknowns."""
    work = tmp_path_factory.mktemp("trust")
    data = generate_classes(work / "data", SEEN, {"train": 16, "val": 8})
    unseen = generate_kind(work / "unseen", UNSEEN, 20, seed=5)
    cache = work / "cache"
    assert_ok(run("extract", "--data", data, "--cache", cache, "--weights", "none"))
    train = run("train-head", "--cache", cache, "--unknown-rate", "0.1")
    assert_ok(train)
    return Trained(cache, data, unseen, train.output)


def _predict(trained: Trained, tmp_path: Path, *paths, options=()) -> tuple[list[dict], str]:
    out = tmp_path / "predictions.csv"
    result = run("predict", *paths, "--out", out, "--cache", trained.cache, *options)
    assert_ok(result)
    return read_csv(out), result.output


def test_unseen_kind_is_flagged_far_more_than_val(trained, tmp_path):
    rows, _ = _predict(trained, tmp_path, trained.data / "val", trained.unseen)
    assert list(rows[0])[:5] == ["path", "label", "confidence", "ood_score", "unknown"]
    unseen = [row for row in rows if UNSEEN in row["path"]]
    val = [row for row in rows if UNSEEN not in row["path"]]
    assert len(unseen) == 20 and len(val) == 24
    unseen_rate = sum(row["unknown"] == "true" for row in unseen) / len(unseen)
    val_rate = sum(row["unknown"] == "true" for row in val) / len(val)
    assert unseen_rate >= 0.8 and val_rate <= 0.25, (unseen_rate, val_rate)
    assert min(float(row["ood_score"]) for row in unseen) > sorted(float(row["ood_score"]) for row in val)[12]


def test_a_folder_of_unseen_images_warns_of_drift_in_one_line(trained, tmp_path):
    rows, output = _predict(trained, tmp_path, trained.unseen)
    flagged = sum(row["unknown"] == "true" for row in rows)
    # One warning (rich wraps it at the test terminal's 80 columns), with the numbers.
    words = " ".join(output.split())
    assert words.count("drift") == 1, output
    assert f"drift: {flagged} of 20 images ({flagged / 20:.1%}) flagged as unknown, against 10.0% expected" in words
    _, val_output = _predict(trained, tmp_path, trained.data / "val")
    assert "drift" not in val_output


def test_reject_unknown_writes_the_label_unknown_and_keeps_probabilities(trained, tmp_path):
    plain, _ = _predict(trained, tmp_path, trained.unseen)
    rejected, _ = _predict(trained, tmp_path, trained.unseen, options=["--reject-unknown"])
    for before, after in zip(plain, rejected):
        assert after["label"] == ("unknown" if before["unknown"] == "true" else before["label"])
        assert after["confidence"] == before["confidence"] and after["ood_score"] == before["ood_score"]


def test_jsonl_carries_ood_score_and_unknown(trained, tmp_path):
    out = tmp_path / "predictions.jsonl"
    assert_ok(run("predict", trained.unseen, "--out", out, "--cache", trained.cache, "--format", "jsonl"))
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(isinstance(r["ood_score"], float) and isinstance(r["unknown"], bool) for r in records)


def test_metrics_info_and_plot_report_calibration_and_unknown_model(trained):
    metrics = json.loads((trained.cache / "metrics.json").read_text())
    calibration, unknown = metrics["calibration"], metrics["unknown"]
    assert calibration["temperature"] > 0 and 0 <= calibration["val_ece_after"] <= 1
    assert unknown["method"] == "mahalanobis" and 0 <= unknown["val_flagged_rate"] <= 0.25
    assert (trained.cache / "calibration.png").stat().st_size > 0
    checkpoint = load_head(trained.cache / "head.pt")
    assert checkpoint.unknown.threshold == pytest.approx(unknown["threshold"])
    assert checkpoint.calibration["temperature"] == calibration["temperature"]
    assert "temperature" in trained.train_output and "ECE" in trained.train_output
    info = run("info", "--cache", trained.cache)
    assert_ok(info)
    assert "temperature" in info.output and "unknown" in info.output


def test_calibrated_head_gives_the_uncalibrated_labels(trained, tmp_path):
    plain = tmp_path / "plain"
    shutil.copytree(trained.cache, plain)
    assert_ok(run("train-head", "--cache", plain, "--no-calibrate"))
    assert json.loads((plain / "metrics.json").read_text())["calibration"] is None
    calibrated, _ = _predict(trained, tmp_path, trained.data / "val", trained.unseen)
    uncalibrated, _ = _predict(Trained(plain, trained.data, trained.unseen, ""), tmp_path, trained.data / "val",
                               trained.unseen)
    assert [row["label"] for row in calibrated] == [row["label"] for row in uncalibrated]
    assert [row["confidence"] for row in calibrated] != [row["confidence"] for row in uncalibrated]


def test_evaluate_reports_how_many_were_flagged(trained):
    result = run("evaluate", trained.data / "val", "--cache", trained.cache)
    assert_ok(result)
    assert "flagged as unknown" in result.output


def test_format_1_head_loads_and_predict_says_it_has_no_unknown_model(trained, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(trained.cache, old)
    data = torch.load(old / "head.pt", weights_only=True)
    for key in ("unknown", "calibration"):
        del data[key]
    data["format_version"] = 1
    torch.save(data, old / "head.pt")
    assert load_head(old / "head.pt").unknown is None
    rows, output = _predict(Trained(old, trained.data, trained.unseen, ""), tmp_path, trained.unseen,
                            options=["--reject-unknown"])
    assert "no unknown model" in output
    assert all(row["ood_score"] == "" and row["unknown"] == "" and row["label"] != "unknown" for row in rows)
