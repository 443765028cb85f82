"""Unknown images and calibration end to end: generated kinds extracted and trained on, then a kind never seen."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from cli_helpers import assert_ok, read_csv, run

from bench.trust import generate_classes, generate_kind
from headstart.heads.checkpoint import load_head

SEEN = ("red_fields", "green_stripes", "gray_rings")
UNSEEN = "yellow_dots"


@dataclass
class Trained:
    cache: Path
    data: Path
    unseen: Path
    train_output: str
    rows: list[dict]  # predict over val and the unseen folder together


def _predict(cache: Path, out: Path, *paths, options=()) -> tuple[list[dict], str]:
    result = run("predict", *paths, "--out", out, "--cache", cache, *options)
    assert_ok(result)
    return (read_csv(out) if out.suffix == ".csv" else out.read_text()), result.output


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Trained:
    """Three generated kinds trained on (random-weights backbone); a fourth kind, never seen, as the unknowns."""
    work = tmp_path_factory.mktemp("trust")
    data = generate_classes(work / "data", SEEN, {"train": 12, "val": 6})
    unseen = generate_kind(work / "unseen", UNSEEN, 20, seed=5)
    cache = work / "cache"
    assert_ok(run("extract", "--data", data, "--cache", cache, "--weights", "none"))
    train = run("train-head", "--cache", cache, "--unknown-rate", "0.1")
    assert_ok(train)
    rows, _ = _predict(cache, work / "mixed.csv", data / "val", unseen)
    return Trained(cache, data, unseen, train.output, rows)


def test_unseen_kind_is_flagged_far_more_than_val(trained):
    rows = trained.rows
    assert list(rows[0])[:5] == ["path", "label", "confidence", "ood_score", "unknown"]
    unseen = [row for row in rows if UNSEEN in row["path"]]
    val = [row for row in rows if UNSEEN not in row["path"]]
    assert len(unseen) == 20 and len(val) == 18
    unseen_rate = sum(row["unknown"] == "true" for row in unseen) / len(unseen)
    val_rate = sum(row["unknown"] == "true" for row in val) / len(val)
    assert unseen_rate >= 0.8 and val_rate <= 0.25, (unseen_rate, val_rate)
    assert min(float(row["ood_score"]) for row in unseen) > sorted(float(row["ood_score"]) for row in val)[9]


def test_unseen_folder_warns_of_drift_in_one_line_and_reject_unknown_relabels(trained, tmp_path):
    rows, output = _predict(trained.cache, tmp_path / "p.csv", trained.unseen, options=["--reject-unknown"])
    before = {row["path"]: row for row in trained.rows}
    flagged = 0
    for row in rows:
        plain = before[row["path"]]
        flagged += row["unknown"] == "true"
        assert row["label"] == ("unknown" if plain["unknown"] == "true" else plain["label"])
        assert (row["confidence"], row["ood_score"], row["unknown"]) == (
            plain["confidence"],
            plain["ood_score"],
            plain["unknown"],
        )
    # One warning (rich wraps it at the test terminal's 80 columns), with the numbers.
    words = " ".join(output.split())
    assert words.count("drift") == 1, output
    assert f"drift: {flagged} of 20 images ({flagged / 20:.1%}) flagged as unknown, against 10.0% expected" in words


def test_jsonl_carries_ood_score_and_unknown(trained, tmp_path):
    files = sorted(trained.unseen.iterdir())[:3]
    text, _ = _predict(trained.cache, tmp_path / "p.jsonl", *files, options=["--format", "jsonl"])
    records = [json.loads(line) for line in text.splitlines()]
    assert len(records) == 3
    assert all(isinstance(r["ood_score"], float) and isinstance(r["unknown"], bool) for r in records)


def test_metrics_info_and_plot_report_calibration_and_unknown_model(trained):
    metrics = json.loads((trained.cache / "metrics.json").read_text())
    calibration, unknown = metrics["calibration"], metrics["unknown"]
    assert calibration["temperature"] > 0 and 0 <= calibration["val_ece_after"] <= 1
    assert unknown["method"] == "mahalanobis" and 0 <= unknown["val_flagged_rate"] <= 0.25
    assert (trained.cache / "calibration.png").read_bytes()[:4] == b"\x89PNG"
    checkpoint = load_head(trained.cache / "head.pt")
    assert checkpoint.unknown.threshold == pytest.approx(unknown["threshold"])
    assert checkpoint.calibration["temperature"] == calibration["temperature"]
    assert "temperature" in trained.train_output and "ECE" in trained.train_output
    info = run("info", "--cache", trained.cache)
    assert_ok(info)
    assert "temperature" in info.output and "unknown images: mahalanobis" in info.output


def test_calibrated_head_gives_the_uncalibrated_labels(trained, tmp_path):
    plain = tmp_path / "plain"
    shutil.copytree(trained.cache, plain)
    assert_ok(run("train-head", "--cache", plain, "--no-calibrate", "--unknown-rate", "0.1"))
    assert json.loads((plain / "metrics.json").read_text())["calibration"] is None
    uncalibrated, _ = _predict(plain, tmp_path / "p.csv", trained.data / "val")
    calibrated = [row for row in trained.rows if UNSEEN not in row["path"]]
    assert [row["path"] for row in calibrated] == [row["path"] for row in uncalibrated]
    assert [row["label"] for row in calibrated] == [row["label"] for row in uncalibrated]
    assert [row["confidence"] for row in calibrated] != [row["confidence"] for row in uncalibrated]
    assert [row["ood_score"] for row in calibrated] == [row["ood_score"] for row in uncalibrated]


def test_evaluate_reports_how_many_were_flagged(trained):
    result = run("evaluate", trained.data / "val", "--cache", trained.cache)
    assert_ok(result)
    flagged = sum(row["unknown"] == "true" for row in trained.rows if UNSEEN not in row["path"])
    assert f"{flagged} of 18 images flagged as unknown" in " ".join(result.output.split())


def test_format_1_head_loads_and_predict_says_it_has_no_unknown_model(trained, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(trained.cache, old)
    data = torch.load(old / "head.pt", weights_only=True)
    for key in ("unknown", "calibration"):
        del data[key]
    data["format_version"] = 1
    torch.save(data, old / "head.pt")
    assert load_head(old / "head.pt").unknown is None
    files = sorted(trained.unseen.iterdir())[:3]
    rows, output = _predict(old, tmp_path / "p.csv", *files, options=["--reject-unknown"])
    assert "no unknown model (a format 1 head file" in " ".join(output.split())
    assert len(rows) == 3
    assert all(row["ood_score"] == "" and row["unknown"] == "" and row["label"] != "unknown" for row in rows)
