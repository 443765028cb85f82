"""Issue 24 end to end: a generated multi-label table (the 0/1 form) over small generated images, random-init weights
(--weights none), through the real CLI: extract -> train-head -> predict -> evaluate --labels -> sweep -> audit ->
export."""

from __future__ import annotations

import json

import torch
from cli_helpers import assert_ok, read_csv, run
from conftest import make_image
from test_multilabel import CLASSES, FAST, small_inputs  # noqa: F401  (the autouse fixture: 32-pixel inputs)

from headstart.features.files.cachedir import FEATURES_FILE, HEAD_FILE
from headstart.features.store import FeatureStore
from headstart.heads.checkpoint import load_head

GRID = "[sgd]\nlr = [0.001, 0.01]\nepochs = [2]\n"


def make_table(data) -> None:
    """12 train and 4 val images, each with 0 to 3 of hat, red, shoe (every label in train and in val)."""
    lines = ["path,hat,red,shoe,split"]
    for index in range(16):
        make_image(data / f"img{index:02d}.jpg", seed=900 + index)
        flags = [(index >> bit) & 1 for bit in range(3)]  # every set, twice over, among 16 rows
        lines.append(f"img{index:02d}.jpg,{','.join(map(str, flags))},{'train' if index % 4 else 'val'}")
    (data / "labels.csv").write_text("\n".join(lines) + "\n")


def test_a_multi_label_table_goes_from_extract_to_audit(tmp_path):
    data, cache = tmp_path / "data", tmp_path / "cache"
    make_table(data)
    table = data / "labels.csv"
    assert_ok(run("extract", "--labels", table, "--cache", cache, "--multi-label", *FAST))
    with FeatureStore(cache / FEATURES_FILE) as store:
        assert store.header.multi_label and store.count("train") == 12 and store.count("val") == 4

    assert_ok(run("train-head", "--cache", cache, "--epochs", "3"))
    head = load_head(cache / HEAD_FILE)
    assert head.multilabel is not None and head.classes == list(CLASSES)

    predictions = tmp_path / "predictions.csv"
    assert_ok(run("predict", data, "--cache", cache, "--out", predictions, "--device", "cpu"))
    predicted = read_csv(predictions)
    assert len(predicted) == 16
    assert list(predicted[0]) == ["path", "labels", "ood_score", "unknown", *[f"prob_{c}" for c in CLASSES], "error"]

    wrong = tmp_path / "wrong.csv"
    evaluated = run("evaluate", data, "--labels", table, "--cache", cache, "--out", wrong, "--device", "cpu")
    assert_ok(evaluated)
    assert "16 images" in " ".join(evaluated.output.split())

    grid = tmp_path / "grid.toml"
    grid.write_text(GRID)
    assert_ok(run("sweep", "--cache", cache, "--grid", grid, "--folds", "2"))
    swept = json.loads((cache / "metrics.json").read_text())
    assert "cv_map_mean" in swept["sweep"] and load_head(cache / HEAD_FILE).multilabel is not None

    assert_ok(run("audit", "--cache", cache, "--folds", "3"))
    record = json.loads((cache / "audit" / "audit.json").read_text())
    assert record["task"] == "multi-label" and record["counts"] == {"train": 12, "val": 4}
    assert (cache / "audit" / "label_set_issues.csv").exists() and (cache / "audit" / "report.html").exists()

    model = tmp_path / "model.pt"  # TorchScript, checked against predict by export itself before it is kept
    assert_ok(run("export", "--cache", cache, "--out", model, "--sample", "4"))
    extra = {"headstart.json": ""}
    exported = torch.jit.load(str(model), _extra_files=extra)
    meta = json.loads(extra["headstart.json"])
    assert meta["task"] == "multi-label" and len(meta["thresholds"]) == len(CLASSES)
    with torch.no_grad():
        probabilities = exported(torch.rand(2, 3, 32, 32))
    assert probabilities.shape == (2, len(CLASSES)) and bool(((probabilities >= 0) & (probabilities <= 1)).all())
