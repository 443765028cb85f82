"""Multi-label heads (issue 24): extract --multi-label, features format 5 read as untrusted, train-head with BCE and
per-label thresholds, the metrics against scikit-learn; single-label files and heads keep their formats."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from cli_helpers import assert_error, assert_ok, read_csv, run
from conftest import make_image

from headstart.features.files.cachedir import FEATURES_FILE, HEAD_FILE
from headstart.features.provenance import IMAGENET_MEAN, IMAGENET_STD, PREPROCESSINGS, Preprocessing, WeightsIdentity
from headstart.features.store import MULTI_LABEL, FeaturesHeader, FeatureStore, Rows, StoreError, StoreWriter
from headstart.heads.config import TrainConfig
from headstart.heads.multilabel.metrics import best_thresholds, multilabel_summary
from headstart.heads.multilabel.train import choose_thresholds, probabilities, train_multilabel

FAST = ("--weights", "none", "--device", "cpu", "--workers", "0", "--batch-size", "8")
CLASSES = ("hat", "red", "shoe")


@pytest.fixture(autouse=True)
def small_inputs(monkeypatch):
    """32-pixel inputs: the label logic is unchanged, the forward pass far cheaper."""
    monkeypatch.setitem(PREPROCESSINGS, "imagenet", Preprocessing("imagenet", 36, 32, IMAGENET_MEAN, IMAGENET_STD))


def make_shared(root: Path) -> Path:
    """train/ and val/ class folders; train/red/both.jpg is the same file as train/shoe/both_copy.jpg."""
    seed = 0
    for split, count in (("train", 4), ("val", 2)):
        for name in CLASSES:
            for index in range(count):
                seed += 1
                make_image(root / split / name / f"{name}_{index}.jpg", seed=seed)
    make_image(root / "train" / "red" / "both.jpg", seed=999)
    shutil.copy(root / "train" / "red" / "both.jpg", root / "train" / "shoe" / "both_copy.jpg")
    return root


def test_multi_label_folders_extract_train_and_record_the_task(tmp_path):
    data, cache = make_shared(tmp_path / "data"), tmp_path / "cache"
    result = run("extract", "--data", data, "--cache", cache, "--multi-label", *FAST)
    assert_ok(result)
    assert "1 copies in other class folders merged" in result.output
    with FeatureStore(cache / FEATURES_FILE) as store:
        assert store.header.task == MULTI_LABEL and store.header.format_version == 5
        rows = store.read("train")
    assert len(rows) == 13  # 12 own images and one image in two folders
    sets = {path: [CLASSES[label] for label in np.flatnonzero(row)] for path, row in zip(rows.paths, rows.label_sets)}
    assert sets["train/red/both.jpg"] == ["red", "shoe"] and sets["train/hat/hat_0.jpg"] == ["hat"]
    assert "train/shoe/both_copy.jpg" not in sets
    assert rows.labels[rows.paths.index("train/red/both.jpg")] == CLASSES.index("red")  # the lowest of the set
    trained = run("train-head", "--cache", cache, "--epochs", "3")
    assert_ok(trained)
    printed = " ".join(trained.output.split())  # rich wraps at 80 columns
    assert "thresholds by best F1 on 5-fold out-of-fold calibrated probabilities" in printed
    assert "val: mAP" in printed and "Hamming loss" in printed
    assert f"{cache / 'calibration.png'}" in "".join(trained.output.split())  # listed, and written:
    assert (cache / "calibration.png").read_bytes()[:4] == b"\x89PNG"
    metrics = json.loads((cache / "metrics.json").read_text())
    report = metrics["val_report"]
    assert report["rows"] == 6 and set(report["labels"]) == set(CLASSES)
    for key in ("mAP", "micro_f1", "macro_f1", "subset_accuracy", "hamming_loss"):
        assert 0 <= report[key] <= 1, key
    assert set(report["labels"]["red"]) >= {"precision", "recall", "f1-score", "average_precision", "threshold"}
    assert "val_map" in metrics["history"][-1] and metrics["counts"] == {"train": 13, "val": 6}
    saved = torch.load(cache / HEAD_FILE, weights_only=True)
    assert saved["format_version"] == 5 and saved["multilabel"]["task"] == "multi-label"
    assert [round(value, 6) for value in saved["multilabel"]["thresholds"]] == [
        round(report["labels"][name]["threshold"], 6) for name in CLASSES
    ]
    assert saved["state_dict"]["weight"].shape[0] == 3
    thresholds = saved["multilabel"]["thresholds"]
    predicted_and_evaluated(data, cache, tmp_path, thresholds)
    evaluated_page(data, cache, tmp_path)
    exported(cache, tmp_path, saved)
    predicted_by_a_format_4_head(data, cache, tmp_path)


def predicted_by_a_format_4_head(data: Path, cache: Path, tmp_path: Path) -> None:
    """A multi-label head saved before per-label calibration and unknown models (format 4) still predicts; predict's
    warning names why it has no unknown model (not a format 1 file)."""
    from headstart.heads.checkpoint import head_digest

    old = tmp_path / "old"
    shutil.copytree(cache, old)
    data_4 = torch.load(old / HEAD_FILE, weights_only=True)
    data_4 |= {"format_version": 4, "calibration": None, "unknown": None}
    data_4["digest"] = head_digest(data_4["state_dict"], data_4["classes"], None, data_4["multilabel"])
    torch.save(data_4, old / HEAD_FILE)
    result = run("predict", data / "val", "--cache", old, "--out", tmp_path / "old.csv", "--device", "cpu")
    assert_ok(result)
    printed = " ".join(result.output.split())
    assert "no unknown model (a format 4 multi-label head file, saved before multi-label heads had one" in printed
    assert "format 1" not in printed and len(read_csv(tmp_path / "old.csv")) == 6
    refused = run("suggest", "--cache", cache, "--out", tmp_path / "s.csv")
    assert_error(refused, "is a multi-label head: suggest ranks single-label heads only so far")
    assert not (tmp_path / "s.csv").exists()
    for head, expected in ((cache, "calibration: a temperature per label folded into the head"), (old, "format 4")):
        described = run("info", "--cache", head)
        assert_ok(described)
        assert expected in " ".join(described.output.split())


def exported(cache: Path, tmp_path: Path, saved: dict) -> None:
    """export writes sigmoid probabilities (verified against predict by export itself) and the thresholds and
    calibration in its format 2 metadata; TorchScript here, the other formats share the code (test_export.py)."""
    from headstart.heads.export import ExportConfig, export_head

    out = tmp_path / "m.pt"
    summary = export_head(ExportConfig(out=out, format="torchscript", cache=cache, sample=4))
    assert summary.difference <= 1e-4 and summary.images == 4
    extra = {"headstart.json": ""}
    model = torch.jit.load(str(out), _extra_files=extra)
    meta = json.loads(extra["headstart.json"])
    assert meta["format_version"] == 2 and meta["task"] == "multi-label"
    assert meta["thresholds"] == saved["multilabel"]["thresholds"]
    assert meta["calibration"]["scale"] == saved["calibration"]["scale"]
    probabilities = model(torch.rand(3, 3, 32, 32))
    assert probabilities.shape == (3, 3) and not torch.allclose(probabilities.sum(1), torch.ones(3))


def predicted_and_evaluated(data: Path, cache: Path, tmp_path: Path, thresholds: list[float]) -> None:
    """predict's labels column is the set over the thresholds, CSV and JSON Lines agree; evaluate scores the sets."""
    out, lines = tmp_path / "p.csv", tmp_path / "p.jsonl"
    assert_ok(run("predict", data / "train", "--cache", cache, "--out", out, "--device", "cpu"))
    assert_ok(run("predict", data / "train", "--cache", cache, "--out", lines, "--format", "jsonl", "--device", "cpu"))
    rows = read_csv(out)
    records = [json.loads(line) for line in lines.read_text().splitlines()]
    assert len(rows) == len(records) == 14 and list(rows[0]) == [
        "path",
        "labels",
        "ood_score",
        "unknown",
        *[f"prob_{c}" for c in CLASSES],
        "error",
    ]
    for row, record in zip(rows, records):
        chances = [float(row[f"prob_{name}"]) for name in CLASSES]
        expected = [name for name, p, cut in zip(CLASSES, chances, thresholds) if p >= cut]
        assert row["labels"] == "|".join(expected) and record["labels"] == expected
        assert [round(record["probabilities"][name], 6) for name in CLASSES] == chances
        assert sum(chances) != pytest.approx(1.0, abs=1e-4) or len(expected) <= 1  # sigmoids, not a softmax
        assert row["unknown"] in ("true", "false") and record["unknown"] == (row["unknown"] == "true")
        assert float(row["ood_score"]) == pytest.approx(record["ood_score"], rel=1e-5)
    top_and_unknown(data, tmp_path, rows, thresholds)
    wrong = tmp_path / "wrong.csv"
    evaluated = run("evaluate", data / "train", "--cache", cache, "--device", "cpu", "--out", wrong)
    assert_ok(evaluated)
    printed = " ".join(evaluated.output.split())
    assert "13 images" in printed and "micro F1" in printed and "subset accuracy" in printed
    for mistake in read_csv(wrong):
        assert set(mistake) == {"path", "true", "predicted", "confidence"} and mistake["true"] != mistake["predicted"]
    both = [row for row in read_csv(wrong) if row["path"].endswith("both.jpg")]
    assert not both or both[0]["true"] == "red|shoe"


def top_and_unknown(data: Path, tmp_path: Path, plain: list[dict], thresholds: list[float]) -> None:
    """--top-k 2: the two most probable labels beside the set; --reject-unknown: a flagged image's set is `unknown`."""
    cache, out, lines = tmp_path / "cache", tmp_path / "top.csv", tmp_path / "top.jsonl"
    assert_ok(run("predict", data / "train", "--cache", cache, "--out", out, "--top-k", "2", "--reject-unknown"))
    options = ("--top-k", "2", "--reject-unknown", "--format", "jsonl")
    assert_ok(run("predict", data / "train", "--cache", cache, "--out", lines, *options))
    records = [json.loads(line) for line in lines.read_text().splitlines()]
    for row, before, record in zip(read_csv(out), plain, records):
        assert list(row)[4:8] == ["label_1", "confidence_1", "label_2", "confidence_2"]
        chances = {name: float(row[f"prob_{name}"]) for name in CLASSES}
        ranked = sorted(CLASSES, key=lambda name: -chances[name])[:2]
        assert [row["label_1"], row["label_2"]] == ranked and float(row["confidence_1"]) == chances[ranked[0]]
        assert [entry["label"] for entry in record["top_k"]] == ranked
        flagged = row["unknown"] == "true"
        assert row["labels"] == ("unknown" if flagged else before["labels"])
        assert record["labels"] == (["unknown"] if flagged else [n for n in before["labels"].split("|") if n])


def evaluated_page(data: Path, cache: Path, tmp_path: Path) -> None:
    """evaluate --html: the multi-label metrics, per label with its threshold, and each wrong image's thumbnail with
    its true and predicted sets, under the page's no-network policy."""
    from headstart.heads.pages.html_report import CSP

    page, wrong = tmp_path / "e.html", tmp_path / "w.csv"
    assert_ok(run("evaluate", data / "val", "--cache", cache, "--out", wrong, "--html", page, "--device", "cpu"))
    text, mistakes = page.read_text(encoding="utf-8"), read_csv(wrong)
    assert f'content="{CSP}"' in text and "<script" not in text
    sources, links = re.findall(r'\bsrc="([^"]*)"', text), re.findall(r'\bhref="([^"]*)"', text)
    assert sources and all(source.startswith("data:image/") for source in sources)  # nothing loads from elsewhere
    assert all(link.startswith(("file:///", "#")) for link in links) and "http:" not in text and "https:" not in text
    assert "6 images" in text and "mAP " in text and "Hamming loss" in text and "subset accuracy" in text
    for name in CLASSES:
        assert f"<td>{name}</td>" in text
    assert mistakes and text.count("<img ") == len(mistakes) == text.count("<tr><td><figure>")
    for mistake in mistakes:
        assert f"<td>{mistake['true']}</td><td>{mistake['predicted']}</td>" in text


def test_single_label_files_and_heads_keep_their_formats(tmp_path):
    data, cache = make_shared(tmp_path / "data"), tmp_path / "cache"
    assert_ok(run("extract", "--data", data, "--cache", cache, *FAST))
    with h5py.File(cache / FEATURES_FILE, "r") as raw:
        assert raw.attrs["format_version"] == 4 and "task" not in raw.attrs
        assert set(raw["train"]) == {"features", "labels", "paths", "sizes", "mtimes_ns", "sha256"}
        assert len(raw["train"]["labels"]) == 14  # without --multi-label the copy stays a row of its own
    assert_ok(run("train-head", "--cache", cache, "--epochs", "1"))
    saved = torch.load(cache / HEAD_FILE, weights_only=True)
    assert saved["format_version"] == 3 and "multilabel" not in saved
    assert "threshold" not in saved["train_config"]
    assert "task" not in json.loads((cache / "metrics.json").read_text())


def planted(rows: int, seed: int = 0, labels: int = 4, dim: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Features carrying each of `labels` planted directions when the row has that label (0-3 labels per row)."""
    rng = np.random.default_rng(seed)
    targets = (rng.random((rows, labels)) < 0.35).astype(np.uint8)
    directions = rng.standard_normal((labels, dim)) * 5
    return (rng.standard_normal((rows, dim)) + targets @ directions).astype(np.float32), targets


def write_multilabel(cache: Path, splits: dict, classes=CLASSES) -> Path:
    """cache/features.h5, multi-label, holding splits {name: (features, label_sets)}."""
    header = FeaturesHeader(
        *("headstart test", "2026-01-02T03:04:05+00:00", list(classes), "resnet18"),
        *(WeightsIdentity("none", "random init, seed 0", ""), PREPROCESSINGS["imagenet"], "fp32", "/data", "2", "0"),
        task=MULTI_LABEL,
    )
    cache.mkdir(parents=True, exist_ok=True)
    with StoreWriter(cache / FEATURES_FILE, header, dim=next(iter(splits.values()))[0].shape[1]) as writer:
        for split, (features, sets) in splits.items():
            count, marked = len(sets), sets.any(1)
            writer.begin_split(split)
            labels = np.where(marked, sets.argmax(1), -1).astype(np.int64)
            ones = np.ones(count, np.int64)
            paths = [f"{split}/{row}.jpg" for row in range(count)]
            writer.append(Rows(features, labels, paths, ones, ones, ["0" * 64] * count, sets.astype(np.uint8)))
            writer.end_split([])
        writer.commit()
    return cache / FEATURES_FILE


def test_planted_labels_are_learned_with_out_of_fold_thresholds():
    features, targets = planted(240)
    train = torch.from_numpy(features[:160]), torch.from_numpy(targets[:160].astype(np.float32))
    config = TrainConfig(epochs=30, seed=1)
    head = train_multilabel(train, None, config).head
    thresholds, rule = choose_thresholds(train, config)
    assert rule.startswith("best F1") and thresholds.shape == (4,) and ((0 < thresholds) & (thresholds < 1)).all()
    held = probabilities(head, torch.from_numpy(features[160:]))
    summary = multilabel_summary(targets[160:], held, thresholds, list("abcd"))
    assert summary["mAP"] > 0.9 and summary["micro_f1"] > 0.8
    fixed, rule = choose_thresholds(train, TrainConfig(threshold=0.3))
    assert rule == "fixed" and (fixed == 0.3).all()
    repeated = train_multilabel(train, None, config).head  # the same seed, the same head
    assert torch.equal(head.weight, repeated.weight)


def test_metrics_match_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    targets = (rng.random((50, 4)) < 0.4).astype(int)
    targets[:, 3] = 0  # a label without positives: no AP, left out of mAP
    scores = np.clip(targets * 0.3 + rng.random((50, 4)) * 0.7, 0, 1)
    thresholds = np.array([0.5, 0.4, 0.6, 0.5])
    summary = multilabel_summary(targets, scores, thresholds, ["a", "b", "c", "d"])
    predicted = (scores >= thresholds).astype(int)
    aps = [metrics.average_precision_score(targets[:, label], scores[:, label]) for label in range(3)]
    assert summary["labels"]["d"]["average_precision"] is None
    assert summary["mAP"] == pytest.approx(np.mean(aps))
    for label, name in enumerate("abc"):
        assert summary["labels"][name]["average_precision"] == pytest.approx(aps[label])
        expected = metrics.f1_score(targets[:, label], predicted[:, label], zero_division=0)
        assert summary["labels"][name]["f1-score"] == pytest.approx(expected)
    assert summary["micro_f1"] == pytest.approx(metrics.f1_score(targets, predicted, average="micro", zero_division=0))
    assert summary["macro_f1"] == pytest.approx(metrics.f1_score(targets, predicted, average="macro", zero_division=0))
    assert summary["subset_accuracy"] == pytest.approx(metrics.accuracy_score(targets, predicted))
    assert summary["hamming_loss"] == pytest.approx(metrics.hamming_loss(targets, predicted))
    best = best_thresholds(targets[:, :3], scores[:, :3])
    for label in range(3):  # no threshold beats the chosen one on these rows
        chosen = metrics.f1_score(targets[:, label], scores[:, label] >= best[label])
        assert all(chosen >= metrics.f1_score(targets[:, label], scores[:, label] >= cut) for cut in scores[:, label])


def _tamper(path: Path, change) -> None:
    with h5py.File(path, "r+") as raw:
        change(raw)


@pytest.mark.parametrize(
    "change, fragment",
    [
        (lambda raw: raw["train"]["label_sets"].__setitem__((0, 0), 2), "values other than 0 and 1"),
        (lambda raw: raw["train"]["labels"].__setitem__(0, 2), "not the lowest label of its label set"),
        (lambda raw: raw.attrs.__setitem__("format_version", 4), "task 'multi-label' in a format 4 file"),
        (lambda raw: raw.attrs.__setitem__("task", "many-label"), "task 'many-label'"),
    ],
)
def test_bad_label_sets_are_refused_in_one_line(tmp_path, change, fragment):
    features, targets = planted(20, labels=3)
    targets[0] = [1, 1, 0]
    path = write_multilabel(tmp_path / "cache", {"train": (features, targets)})
    with FeatureStore(path) as store:
        assert store.read("train").label_sets.tolist() == targets.tolist()
    _tamper(path, change)
    with pytest.raises(StoreError) as raised:
        with FeatureStore(path) as store:
            store.read("train")
    message = str(raised.value)
    assert fragment in message and "re-run `extract`" in message and "\n" not in message
    assert_error(run("train-head", "--cache", tmp_path / "cache", "--epochs", "1"), fragment)


def test_a_row_without_labels_is_all_negatives(tmp_path):
    features, targets = planted(30, labels=3)
    targets[:3] = 0
    path = write_multilabel(tmp_path / "cache", {"train": (features, targets), "val": (features[:10], targets[:10])})
    with FeatureStore(path) as store:
        rows = store.read("train")
    assert rows.labels[:3].tolist() == [-1, -1, -1] and not rows.label_sets[:3].any()
    assert_ok(run("train-head", "--cache", tmp_path / "cache", "--epochs", "2"))
    assert json.loads((tmp_path / "cache" / "metrics.json").read_text())["val_report"]["rows"] == 10


def test_a_multi_label_table_gives_label_sets(tmp_path):
    """`a|b` in one cell, a path again with another label, an empty cell: three ways of writing label sets."""
    data = tmp_path / "data"
    for index in range(12):
        make_image(data / f"img{index}.jpg", seed=500 + index)
    rows = ["path,label,split", "img0.jpg,red|shoe,train", "img1.jpg,hat,train", "img1.jpg,red,train"]
    rows += ["img2.jpg,,train", "img3.jpg,shoe,val", "img4.jpg,hat|shoe,val"]
    rows += [f"img{index}.jpg,{CLASSES[index % 3]},train" for index in range(5, 12)]
    table = data / "labels.csv"
    table.write_text("\n".join(rows) + "\n")
    cache = tmp_path / "cache"
    assert_ok(run("extract", "--labels", table, "--cache", cache, "--multi-label", *FAST))
    with FeatureStore(cache / FEATURES_FILE) as store:
        assert store.header.classes == list(CLASSES) and store.header.multi_label
        found = {}
        for split in ("train", "val"):
            read = store.read(split)
            found |= {
                path: [CLASSES[label] for label in np.flatnonzero(row)]
                for path, row in zip(read.paths, read.label_sets)
            }
    assert found["img0.jpg"] == ["red", "shoe"] and found["img1.jpg"] == ["hat", "red"] and found["img2.jpg"] == []
    assert found["img4.jpg"] == ["hat", "shoe"] and len(found) == 12
    assert_ok(run("train-head", "--cache", cache, "--epochs", "2"))
    table.write_text("\n".join([*rows, "img0.jpg,hat,val"]) + "\n")
    refused = run("extract", "--labels", table, "--cache", cache, "--multi-label", *FAST)
    assert_error(refused, "labels.csv: line 15: img0.jpg is in val here but in train at line 2: give an image one")


def test_a_label_set_without_multi_label_is_refused_not_made_a_class(tmp_path):
    """`red|shoe` in a single-label table is not a class named `red|shoe`: one line saying to add --multi-label."""
    data = tmp_path / "data"
    for index in range(4):
        make_image(data / f"img{index}.jpg", seed=600 + index)
    rows = ["path,label", "img0.jpg,red", "img1.jpg,red|shoe", "img2.jpg,shoe", "img3.jpg,red"]
    table = data / "labels.csv"
    table.write_text("\n".join(rows) + "\n")
    refused = run("extract", "--labels", table, "--cache", tmp_path / "cache", *FAST)
    assert_error(refused, "labels.csv: line 3: label 'red|shoe' names several classes: add --multi-label")
    assert not (tmp_path / "cache" / FEATURES_FILE).exists()


def test_multi_label_heads_train_by_their_recipe_unless_epochs_or_lr_are_given(tmp_path):
    features, targets = planted(60)
    cache = tmp_path / "cache"
    write_multilabel(cache, {"train": (features[:40], targets[:40]), "val": (features[40:], targets[40:])}, "abcd")
    assert_ok(trained := run("train-head", "--cache", cache))
    assert "trained by the multi-label default recipe (30 epochs, lr 0.1)" in " ".join(trained.output.split())
    metrics = json.loads((cache / "metrics.json").read_text())
    assert len(metrics["history"]) == 30 and metrics["train_config"]["lr"] == 0.1
    assert metrics["recipe"] == "the multi-label default recipe (30 epochs, lr 0.1)"
    saved = torch.load(cache / HEAD_FILE, weights_only=True)
    assert saved["train_config"]["epochs"] == 30 and saved["train_config"]["lr"] == 0.1
    assert_ok(run("train-head", "--cache", cache, "--epochs", "5", "--lr", "0.001"))  # given, even at the defaults
    metrics = json.loads((cache / "metrics.json").read_text())
    assert len(metrics["history"]) == 5 and metrics["recipe"] == "5 epochs, lr 0.001 as given"
    import headstart

    seen = []
    headstart.train_head(cache, lr=0.05, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (30, 30) and len(seen) == 30  # the recipe's epochs, the lr given
    assert json.loads((cache / "metrics.json").read_text())["train_config"]["lr"] == 0.05


def test_a_flagged_image_is_labelled_unknown_and_top_k_ranks_every_label():
    from headstart.heads.multilabel.predictions import Layout
    from headstart.heads.predict.writer import Prediction

    flagged = Prediction("=a.jpg", np.array([0.9, 0.2, 0.7]), None, 12.5, True)
    kept = Prediction("b.jpg", np.array([0.1, 0.6, 0.3]), None, 1.5, False)
    layout = Layout(list(CLASSES), [0.5, 0.5, 0.5], top_k=2, reject_unknown=True)
    assert layout.csv_row(flagged)[:8] == ["./=a.jpg", "unknown", "12.5", "true", "hat", "0.900000", "shoe", "0.700000"]
    assert layout.json_record(kept)["labels"] == ["red"] and layout.json_record(flagged)["labels"] == ["unknown"]
    plain = Layout(list(CLASSES), [0.5, 0.5, 0.5])
    assert plain.csv_row(flagged)[1] == "hat|shoe" and plain.json_record(flagged)["top_k"] == []
    assert plain.csv_header() == ["path", "labels", "ood_score", "unknown", *[f"prob_{c}" for c in CLASSES], "error"]


@pytest.mark.long  # extract, train-head, two exports and a fresh interpreter: tens of seconds on a loaded machine
def test_multi_label_onnx_and_torchvision_exports_and_the_example_prints_the_label_set(tmp_path):
    import onnxruntime

    from headstart.heads.export import ExportConfig, export_head
    from headstart.heads.export.examples import caller_example

    data, cache = make_shared(tmp_path / "data"), tmp_path / "cache"
    assert_ok(run("extract", "--data", data, "--cache", cache, "--multi-label", *FAST))
    assert_ok(run("train-head", "--cache", cache, "--epochs", "3"))
    onnx_file, state = tmp_path / "m.onnx", tmp_path / "m.pth"
    assert export_head(ExportConfig(out=onnx_file, format="onnx", cache=cache, sample=4)).difference <= 1e-4
    assert export_head(ExportConfig(out=state, format="torchvision", cache=cache, sample=4)).difference <= 1e-4
    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    meta = json.loads(session.get_modelmeta().custom_metadata_map["headstart"])
    assert meta["task"] == "multi-label" and len(meta["thresholds"]) == 3
    assert json.loads(Path(f"{state}.json").read_text())["format_version"] == 2
    image = data / "train" / "red" / "both.jpg"
    (tmp_path / "classify.py").write_text(caller_example("onnx"))
    printed = subprocess.run(
        [sys.executable, "classify.py", str(onnx_file), str(image)], cwd=tmp_path, capture_output=True, text=True
    )
    assert printed.returncode == 0, printed.stderr
    scores, labels = (ast.literal_eval(line) for line in printed.stdout.strip().splitlines())
    expected = [name for name, cut in zip(CLASSES, meta["thresholds"]) if scores[name] >= cut]
    assert labels == expected and set(scores) == set(CLASSES)


def test_the_calibration_plot_pools_every_image_and_label_of_val():
    from headstart.heads.linear import LinearHead
    from headstart.heads.multilabel.calibration import fold
    from headstart.heads.multilabel.trust import reliability_plot
    from headstart.heads.plots import render

    torch.manual_seed(0)
    head, val = LinearHead(4, 3), (torch.randn(20, 4), (torch.rand(20, 3) < 0.4).float())
    folded = fold(head, np.array([0.5, 1.0, 2.0]), np.zeros(3))
    summary = {"method": "temperature"}
    plot = reliability_plot(head, folded, val, summary)
    assert sum(plot["before"]["counts"]) == sum(plot["after"]["counts"]) == 60 and plot["pooled"] == "a temperature"
    assert plot["before"] != plot["after"] and render("calibration", plot)[:4] == b"\x89PNG"
    alone = reliability_plot(head, head, None, None)  # no val split, no calibration
    assert alone["before"] is None and alone["after"] is None and render("calibration", alone)[:4] == b"\x89PNG"
