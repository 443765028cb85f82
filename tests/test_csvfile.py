"""files.csvfile: one CSV writer for every CSV; every text cell formula-safe (class names included), and every CSV
of a whole run reads with csv.reader and pandas.read_csv at their defaults."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pandas
import pytest
from cli_helpers import assert_ok, run
from conftest import make_dataset

from headstart.features.files.csvfile import FORMULA_STARTS, CsvWriter, safe_cell, safe_path
from headstart.heads.sweep.table import SWEEP_FORMAT_VERSION

FORMULA_CLASS = '=HYPERLINK("evil.example","x")'  # a class folder's name (no slash)
CLASSES = (FORMULA_CLASS, "@bees", "ants")


@pytest.mark.parametrize(
    "value, written",
    [
        ("=1+2", "'=1+2"),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("\t1", "'\t1"),
        ("-0.250000", "-0.250000"),
        ("-inf", "-inf"),
        ("+3", "+3"),
        ("ants", "ants"),
        ("", ""),
        (5, "5"),
        (-1.5, "-1.5"),
    ],
)
def test_a_text_cell_never_starts_a_formula_and_a_number_stays_a_number(value, written):
    assert safe_cell(value) == written


def test_paths_stay_paths_and_the_rule_leaves_them_alone():
    assert safe_path("=a.jpg") == "./=a.jpg" and safe_cell(safe_path("=a.jpg")) == "./=a.jpg"
    handle = io.StringIO()
    writer = CsvWriter(handle, ["path", "label"])
    writer.writerow([safe_path("-x.jpg"), "=evil()"])
    assert list(csv.reader(io.StringIO(handle.getvalue()))) == [["path", "label"], ["./-x.jpg", "'=evil()"]]


def _cells(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def _live(cell: str) -> bool:
    """Would a spreadsheet run this cell? A formula start that is not a plain number."""
    if not cell.startswith(FORMULA_STARTS):
        return False
    try:
        float(cell)
    except ValueError:
        return True
    return cell[0] not in "+-"


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory) -> tuple[Path, list[Path]]:
    """Every command that writes a CSV, over classes named like formulas."""
    work = tmp_path_factory.mktemp("csv")
    data, cache = make_dataset(work / "data", classes=CLASSES, per_class={"train": 6, "val": 3}), work / "cache"
    (work / "grid.json").write_text(json.dumps({"sgd": {"lr": [0.01, 0.1], "epochs": 2, "batch_size": 4}}))
    assert_ok(run("extract", "--data", data, "--cache", cache, "--weights", "none", "--workers", 0))
    assert_ok(run("sweep", "--cache", cache, "--grid", work / "grid.json", "--folds", 2))
    predictions, mistakes = work / "predictions.csv", work / "mistakes.csv"
    assert_ok(run("predict", data / "val", "--out", predictions, "--cache", cache, "--top-k", 3))
    assert_ok(run("evaluate", data / "val", "--cache", cache, "--out", mistakes))
    assert_ok(run("audit", "--cache", cache, "--folds", 2, "--curve-seeds", 1, "--outlier-quantile", 0.5))
    files = [predictions, mistakes, cache / "sweep.csv", *sorted((cache / "audit").glob("*.csv"))]
    return cache, files


def test_every_csv_of_a_run_reads_with_default_options(whole_run):
    cache, files = whole_run
    assert len(files) == 6, files
    for path in files:
        rows = _cells(path)
        frame = pandas.read_csv(path)
        assert list(frame.columns) == rows[0], path  # the header is the first line: no comment before it
        assert len(frame) == len(rows) - 1, path
    metrics = json.loads((cache / "metrics.json").read_text())
    assert metrics["sweep"]["table"] == "sweep.csv" and metrics["sweep"]["table_format"] == SWEEP_FORMAT_VERSION
    assert metrics["sweep"]["producer"].startswith("headstart ")


def test_a_formula_class_name_is_never_a_live_formula(whole_run):
    _, files = whole_run
    guarded = set()
    for path in files:
        for row in _cells(path)[1:]:
            assert not [cell for cell in row if _live(cell)], (path, row)
            guarded |= {cell for cell in row if cell in ("'" + FORMULA_CLASS, "'@bees")}
    assert guarded == {"'" + FORMULA_CLASS, "'@bees"}  # written, guarded (top 3 of 3: every class is in each row)
    predicted = pandas.read_csv(files[0])
    assert set(predicted["label"]) <= {"'" + FORMULA_CLASS, "'@bees", "ants"}
