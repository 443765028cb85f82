"""heads.predict.writer: the predictions CSV: its columns, quoting, formula-safe paths and all-or-nothing writes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from headstart.heads.predict.writer import Prediction, write_predictions

CLASSES = ["ants", "bees"]


def _read(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def _ok(path: str, *probabilities: float) -> Prediction:
    return Prediction(path, np.asarray(probabilities, dtype=np.float32))


def _leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_columns_and_values(tmp_path):
    out = tmp_path / "predictions.csv"
    counts = write_predictions(out, ["ants", "bees", "wasps"], [_ok("val/a.jpg", 0.1, 0.7, 0.2)])
    assert counts == {"predicted": 1, "failed": 0, "flagged": 0, "failed_kinds": {}}
    header, row = _read(out)
    assert header == [
        "path",
        "label",
        "confidence",
        "ood_score",
        "unknown",
        "prob_ants",
        "prob_bees",
        "prob_wasps",
        "error",
    ]
    assert row[0] == "val/a.jpg"
    assert row[1] == "bees"
    assert float(row[2]) == pytest.approx(0.7, abs=1e-6)
    assert row[3:5] == ["", ""]  # no unknown-image model in this prediction
    assert [float(v) for v in row[5:8]] == pytest.approx([0.1, 0.7, 0.2], abs=1e-6)
    assert row[8] == ""


def test_label_is_the_argmax_class(tmp_path):
    out = tmp_path / "p.csv"
    write_predictions(out, CLASSES, [_ok("a.jpg", 0.9, 0.1), _ok("b.jpg", 0.2, 0.8), _ok("c.jpg", 0.4999, 0.5001)])
    rows = _read(out)[1:]
    assert [row[1] for row in rows] == ["ants", "bees", "bees"]
    assert [float(row[2]) for row in rows] == pytest.approx([0.9, 0.8, 0.5001], abs=1e-6)


def test_failed_row_has_error_and_empty_prediction(tmp_path):
    out = tmp_path / "p.csv"
    counts = write_predictions(
        out, CLASSES, [_ok("good.jpg", 0.3, 0.7), Prediction("broken.jpg", None, "damaged image: truncated")]
    )
    assert counts == {"predicted": 1, "failed": 1, "flagged": 0, "failed_kinds": {"unreadable": 1}}
    rows = _read(out)
    assert rows[2] == ["broken.jpg", "", "", "", "", "", "", "damaged image: truncated"]
    assert len(rows[2]) == len(rows[0])


@pytest.mark.parametrize(
    "name",
    [
        "with,comma.jpg",
        'with "quotes".jpg',
        "with\nnewline.jpg",
        "with\r\ncrlf.jpg",
        "naïve/日本語/ümlaut.jpg",
        "emoji 🐝.jpg",
        "bad-bytes-\\xff.jpg",
        "  leading spaces.jpg",
    ],
)
def test_awkward_names_round_trip(tmp_path, name):
    out = tmp_path / "p.csv"
    write_predictions(out, CLASSES, [_ok(name, 0.6, 0.4), Prediction(name, None, f"cannot read {name}")])
    rows = _read(out)
    assert len(rows) == 3
    assert rows[1][0] == name and rows[1][1] == "ants"
    assert rows[2][0] == name and rows[2][-1] == f"cannot read {name}"


def test_file_is_utf8_without_bom(tmp_path):
    out = tmp_path / "p.csv"
    write_predictions(out, CLASSES, [_ok("ü.jpg", 0.5, 0.5)])
    data = out.read_bytes()
    assert data.startswith(b"path,label,")
    assert "ü.jpg".encode() in data


@pytest.mark.parametrize("name", ["=cmd|' /C calc'!A0.jpg", "+1.jpg", "-2.jpg", "@SUM(A1).jpg", "\tx.jpg", "\rx.jpg"])
def test_formula_starts_are_prefixed(tmp_path, name):
    out = tmp_path / "p.csv"
    write_predictions(out, CLASSES, [_ok(name, 0.5, 0.5), Prediction(name, None, "damaged")])
    rows = _read(out)
    assert rows[1][0] == f"./{name}"
    assert rows[2][0] == f"./{name}"


@pytest.mark.parametrize("name", ["a=b.jpg", "x-1.jpg", "./=already.jpg", "/abs/=x.jpg"])
def test_other_paths_are_unchanged(tmp_path, name):
    out = tmp_path / "p.csv"
    write_predictions(out, CLASSES, [_ok(name, 0.5, 0.5)])
    assert _read(out)[1][0] == name


def test_rows_keep_the_given_order(tmp_path):
    out = tmp_path / "p.csv"
    names = ["z.jpg", "a.jpg", "m/b.jpg", "a.jpg"]
    write_predictions(out, CLASSES, [_ok(name, 0.5, 0.5) for name in names])
    assert [row[0] for row in _read(out)[1:]] == names


def test_no_predictions_writes_the_header_only(tmp_path):
    out = tmp_path / "p.csv"
    assert write_predictions(out, CLASSES, []) == {"predicted": 0, "failed": 0, "flagged": 0, "failed_kinds": {}}
    assert _read(out) == [["path", "label", "confidence", "ood_score", "unknown", "prob_ants", "prob_bees", "error"]]


def test_streams_a_generator_and_leaves_no_temp_file(tmp_path):
    out = tmp_path / "p.csv"
    counts = write_predictions(out, CLASSES, (_ok(f"{i:03}.jpg", 0.25, 0.75) for i in range(500)))
    assert counts == {"predicted": 500, "failed": 0, "flagged": 0, "failed_kinds": {}}
    assert len(_read(out)) == 501
    assert _leftovers(tmp_path, {"p.csv"}) == []


def test_creates_the_output_folder(tmp_path):
    out = tmp_path / "new" / "p.csv"
    write_predictions(out, CLASSES, [_ok("a.jpg", 0.5, 0.5)])
    assert _read(out)[1][0] == "a.jpg"


def _failing(after: int):
    for index in range(after):
        yield _ok(f"{index}.jpg", 0.5, 0.5)
    raise RuntimeError("backbone exploded")


def test_failure_midway_leaves_no_output(tmp_path):
    out = tmp_path / "p.csv"
    with pytest.raises(RuntimeError, match="backbone exploded"):
        write_predictions(out, CLASSES, _failing(3))
    assert not out.exists()
    assert _leftovers(tmp_path, set()) == []


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_failure_midway_keeps_the_previous_output(tmp_path, error):
    out = tmp_path / "p.csv"
    write_predictions(out, CLASSES, [_ok("old.jpg", 0.9, 0.1)])
    before = out.read_bytes()

    def predictions():
        yield _ok("new.jpg", 0.1, 0.9)
        raise error()

    with pytest.raises(error):
        write_predictions(out, CLASSES, predictions())
    assert out.read_bytes() == before
    assert _leftovers(tmp_path, {"p.csv"}) == []


def test_ood_score_and_unknown_columns_and_reject_unknown(tmp_path):
    flagged = Prediction("far.jpg", np.asarray([0.2, 0.8], dtype=np.float32), ood_score=812.5, unknown=True)
    kept = Prediction("near.jpg", np.asarray([0.9, 0.1], dtype=np.float32), ood_score=40.25, unknown=False)
    out = tmp_path / "p.csv"
    assert write_predictions(out, CLASSES, [flagged, kept])["flagged"] == 1
    assert [row[:5] for row in _read(out)[1:]] == [
        ["far.jpg", "bees", "0.800000", "812.5", "true"],
        ["near.jpg", "ants", "0.900000", "40.25", "false"],
    ]
    write_predictions(out, CLASSES, [flagged, kept], top_k=2, reject_unknown=True)
    rows = _read(out)
    assert rows[0][:7] == ["path", "label", "confidence", "ood_score", "unknown", "label_2", "confidence_2"]
    assert rows[1][:7] == ["far.jpg", "unknown", "0.800000", "812.5", "true", "ants", "0.200000"]
    assert rows[2][1] == "ants"
    jsonl = tmp_path / "p.jsonl"
    write_predictions(jsonl, CLASSES, [flagged], format="jsonl", reject_unknown=True)
    record = json.loads(jsonl.read_text())
    assert (record["label"], record["ood_score"], record["unknown"]) == ("unknown", 812.5, True)
    assert record["top_k"][0]["label"] == "bees" and record["probabilities"]["bees"] == pytest.approx(0.8)
