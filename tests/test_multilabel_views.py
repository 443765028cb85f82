"""Issue 24, what shows a multi-label cache: info's per-label counts, embeddings' `labels` column (format 2, Parquet
and the npy table), similar's label set of each neighbour; single-label outputs keep their form."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_helpers import assert_error, assert_ok, read_csv, run
from conftest import make_image
from test_multilabel import CLASSES, FAST, small_inputs  # noqa: F401  (the autouse fixture: 32-pixel inputs)

from headstart.features.vectors.formats import FORMAT_VERSION, METADATA_KEY, MULTI_LABEL_VERSION

# (path, hat, red, shoe, split): the 0/1 form; img6 carries no label
TABLE = [
    ("img0.jpg", 1, 1, 0, "train"),
    ("img1.jpg", 0, 1, 1, "train"),
    ("img2.jpg", 1, 0, 0, "train"),
    ("img3.jpg", 0, 0, 1, "train"),
    ("img4.jpg", 1, 1, 1, "train"),
    ("img5.jpg", 0, 1, 0, "val"),
    ("img6.jpg", 0, 0, 0, "val"),
]


@pytest.fixture
def cache(tmp_path):
    data = tmp_path / "data"
    for index in range(len(TABLE)):
        make_image(data / f"img{index}.jpg", seed=700 + index)
    lines = ["path,hat,red,shoe,split", *(",".join(map(str, row)) for row in TABLE)]
    (data / "labels.csv").write_text("\n".join(lines) + "\n")
    cache = tmp_path / "cache"
    assert_ok(run("extract", "--labels", data / "labels.csv", "--cache", cache, "--multi-label", *FAST))
    return cache


def expected_sets() -> dict[str, list[str]]:
    return {row[0]: [name for name, flag in zip(CLASSES, row[1:4]) if flag] for row in TABLE}


def test_info_counts_every_label_and_the_rows_without_one(cache):
    described = run("info", "--cache", cache, "--json")
    assert_ok(described)
    features = json.loads(described.output)["features"]
    assert features["task"] == "multi-label"
    assert features["splits"]["train"]["per_class"] == {"hat": 3, "red": 3, "shoe": 3}
    assert features["splits"]["train"]["no_label"] == 0 and features["splits"]["train"]["rows"] == 5
    assert features["splits"]["val"]["per_class"] == {"hat": 0, "red": 1, "shoe": 0}
    assert features["splits"]["val"]["no_label"] == 1
    shown = run("info", "--cache", cache)
    assert_ok(shown)
    assert "rows with no label: train 0, val 1" in " ".join(shown.output.split())


def test_embeddings_carry_every_label(cache, tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    out = tmp_path / "e.parquet"
    assert_ok(run("embeddings", "--cache", cache, "--out", out))
    frame = pd.read_parquet(out)
    assert {path: list(labels) for path, labels in zip(frame["path"], frame["labels"])} == expected_sets()
    assert list(frame.columns) == ["path", "split", "label", "labels", "sha256", "embedding"]
    assert json.loads(pq.read_schema(out).metadata[METADATA_KEY.encode()])["format_version"] == MULTI_LABEL_VERSION
    npy = tmp_path / "e.npy"
    assert_ok(run("embeddings", "--cache", cache, "--out", npy, "--format", "npy"))
    table = read_csv(tmp_path / "e.csv")
    assert {row["path"]: row["labels"].split("|") if row["labels"] else [] for row in table} == expected_sets()
    assert json.loads((tmp_path / "e.json").read_text())["format_version"] == MULTI_LABEL_VERSION == FORMAT_VERSION + 1
    assert np.load(npy).shape[0] == len(TABLE)


def test_similar_lists_each_neighbours_label_set(cache, tmp_path):
    data = tmp_path / "data"
    out = tmp_path / "near.csv"
    assert_ok(run("similar", data / "img0.jpg", "--cache", cache, "-k", "6", "--out", out, "--device", "cpu"))
    rows = read_csv(out)
    assert len(rows) == 6 and "img0.jpg" not in {row["path"] for row in rows}  # the cached query left out
    sets = expected_sets()
    assert all((row["labels"].split("|") if row["labels"] else []) == sets[row["path"]] for row in rows)
    jsonl = tmp_path / "near.jsonl"
    assert_ok(run("similar", data / "img0.jpg", "--cache", cache, "--out", jsonl, "--format", "jsonl"))
    for line in jsonl.read_text().splitlines():
        record = json.loads(line)
        assert record["labels"] == sets[record["path"]]


def test_evaluate_labels_reads_the_tables_label_sets(cache, tmp_path):
    """evaluate --labels on a multi-label head: the 0/1 form and the label-cell form score alike, against each
    row's label set; a label the head does not know is one line naming the row."""
    data = tmp_path / "data"
    assert_ok(run("train-head", "--cache", cache, "--epochs", "2"))
    cells = data / "cells.csv"
    sets = expected_sets()
    cells.write_text("path,label\n" + "".join(f"{path},{'|'.join(found)}\n" for path, found in sets.items()))
    outputs = []
    for table in (data / "labels.csv", cells):
        out = tmp_path / f"{table.stem}_wrong.csv"
        result = run("evaluate", data, "--labels", table, "--cache", cache, "--out", out, "--device", "cpu")
        assert_ok(result)
        printed = " ".join(result.output.split())
        assert "7 images" in printed and "micro F1" in printed and "mAP" in printed
        outputs.append((printed[printed.index("7 images") : printed.index("most confidently")], read_csv(out)))
        for row in read_csv(out):
            assert row["true"] == "|".join(sets[row["path"].rsplit("/", 1)[-1]])
    assert outputs[0] == outputs[1]
    cells.write_text("path,label\nimg0.jpg,red|wasps\n")
    refused = run("evaluate", data, "--labels", cells, "--cache", cache, "--out", tmp_path / "x.csv")
    assert_error(refused, "cells.csv: line 2: label 'wasps' is not a class the head knows (hat, red, shoe)")
