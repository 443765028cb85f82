"""features/sources/: a folder of class folders without train/ split by content, stably; relabelling recomputes
nothing."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from cli_helpers import assert_error, assert_ok, read_csv, run
from conftest import make_image, write_features

from headstart.features.files.cachedir import FEATURES_FILE
from headstart.features.provenance import IMAGENET_MEAN, IMAGENET_STD, PREPROCESSINGS, Preprocessing
from headstart.features.sources.rule import SplitRule, SplitRuleError
from headstart.features.store import FeatureStore

FAST = ("--weights", "none", "--device", "cpu", "--workers", "0", "--batch-size", "8")


@pytest.fixture(autouse=True)
def small_inputs(monkeypatch):
    """32-pixel inputs: the split and cache logic are unchanged, the forward pass is far cheaper."""
    monkeypatch.setitem(PREPROCESSINGS, "imagenet", Preprocessing("imagenet", 36, 32, IMAGENET_MEAN, IMAGENET_STD))


def make_flat(root: Path, per_class: int = 10, start: int = 0, classes=("ants", "bees")) -> Path:
    """root/<class>/*.jpg, no train/: each image its own noise."""
    for number, name in enumerate(classes):
        for index in range(start, start + per_class):
            make_image(root / name / f"{name}_{index}.jpg", seed=1000 * number + index)
    return root


def stored(cache: Path) -> tuple[dict[str, tuple[str, str]], FeatureStore]:
    """path -> (split, class) of every row, and the store's header."""
    found = {}
    with FeatureStore(cache / FEATURES_FILE) as store:
        for split in store.splits:
            rows = store.read(split)
            found.update({path: (split, store.header.classes[label]) for path, label in zip(rows.paths, rows.labels)})
        return found, store.header


def counts(output: str) -> dict[str, list[int]]:
    """The extract table's numbers per split: images, extracted, reused, relabelled, skipped."""
    rows = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip("│ ").split("│")]
        if len(cells) == 6 and cells[0] in ("train", "val", "test") and cells[1].isdigit():
            rows[cells[0]] = [int(cell) for cell in cells[1:]]
    return rows


def test_the_draw_depends_on_content_and_seed_only():
    rule = SplitRule(val_fraction=0.25, test_fraction=0.1, seed=3)
    hashes = [hashlib.sha256(str(index).encode()).hexdigest() for index in range(4000)]
    splits = [rule.split_of(sha) for sha in hashes]
    assert splits == [SplitRule(val_fraction=0.25, test_fraction=0.1, seed=3).split_of(sha) for sha in hashes]
    shares = {name: splits.count(name) / len(splits) for name in ("train", "val", "test")}
    assert abs(shares["val"] - 0.25) < 0.03 and abs(shares["test"] - 0.1) < 0.02
    assert splits != [SplitRule(val_fraction=0.25, test_fraction=0.1, seed=4).split_of(sha) for sha in hashes]
    assert SplitRule.from_dict(json.loads(json.dumps(rule.to_dict()))) == rule


@pytest.mark.parametrize(
    ("val", "test", "fragment"), [(1.0, 0.0, "--val-fraction 1.0"), (0.6, 0.5, "leave no train images")]
)
def test_fractions_that_cannot_split_are_refused(val, test, fragment):
    with pytest.raises(SplitRuleError, match=fragment):
        SplitRule(val_fraction=val, test_fraction=test)


def test_flat_folder_goes_extract_train_predict_evaluate_audit(tmp_path):
    data, cache = make_flat(tmp_path / "flat", per_class=12), tmp_path / "cache"
    result = run("extract", "--data", data, "--cache", cache, "--test-fraction", "0.2", *FAST)
    assert_ok(result)
    assert "split by content (sha256-seed-v1): val 0.2, test 0.2, seed 0" in result.output
    rows, header = stored(cache)
    assert header.split == SplitRule(val_fraction=0.2, test_fraction=0.2) and header.format_version == 4
    assert len(rows) == 24 and {split for split, _ in rows.values()} == {"train", "val", "test"}
    for path, (split, name) in rows.items():  # the split is the rule's, from the file's content alone
        sha256 = hashlib.sha256((data / path).read_bytes()).hexdigest()
        assert path.startswith(f"{name}/")
        assert split == header.split.split_of(sha256) or split == "train"  # train also keeps a class's last image
    info = run("info", "--cache", cache)
    assert_ok(info)
    assert "split by content" in info.output
    trained = run("train-head", "--cache", cache, "--epochs", "2")
    assert_ok(trained)
    metrics = json.loads((cache / "metrics.json").read_text())
    tested = sum(split == "test" for split, _ in rows.values())
    assert metrics["counts"]["test"] == tested and metrics["test_report"]["report"]["macro avg"]["support"] == tested
    assert f"test accuracy {metrics['test_report']['accuracy']:.4f}" in trained.output
    predicted = run("predict", data / "ants", "--cache", cache, "--out", tmp_path / "p.csv", "--device", "cpu")
    assert_ok(predicted)
    assert len(read_csv(tmp_path / "p.csv")) == 12
    assert_ok(run("evaluate", data, "--cache", cache, "--device", "cpu", "--out", tmp_path / "wrong.csv"))
    assert_ok(run("audit", "--cache", cache, "--curve-seeds", "1", "--folds", "2"))
    assert (cache / "audit" / "audit.json").exists()


def test_train_only_says_val_is_absent_and_points_to_sweep(tmp_path):
    data, cache = make_flat(tmp_path / "flat", per_class=6), tmp_path / "cache"
    assert_ok(run("extract", "--data", data, "--cache", cache, "--val-fraction", "0", *FAST))
    rows, _ = stored(cache)
    assert {split for split, _ in rows.values()} == {"train"}
    trained = run("train-head", "--cache", cache, "--epochs", "2")
    assert_ok(trained)
    assert "no val rows" in trained.output and "headstart sweep" in trained.output
    assert json.loads((cache / "metrics.json").read_text())["counts"] == {"train": 12, "val": 0}
    assert_ok(run("predict", data, "--cache", cache, "--out", tmp_path / "p.csv", "--device", "cpu"))
    assert len(read_csv(tmp_path / "p.csv")) == 12


def test_adding_images_moves_no_old_image(tmp_path):
    data, cache = make_flat(tmp_path / "flat", per_class=10), tmp_path / "cache"
    assert_ok(run("extract", "--data", data, "--cache", cache, *FAST))
    before, _ = stored(cache)
    make_flat(data, per_class=6, start=10)
    result = run("extract", "--data", data, "--cache", cache, *FAST)
    assert_ok(result)
    after, _ = stored(cache)
    assert {path: after[path] for path in before} == before
    table = counts(result.output)
    assert sum(row[1] for row in table.values()) == 12 and sum(row[2] for row in table.values()) == 20


def test_relabelling_and_a_new_fraction_recompute_nothing(tmp_path):
    data, cache = make_flat(tmp_path / "flat", per_class=10), tmp_path / "cache"
    assert_ok(run("extract", "--data", data, "--cache", cache, *FAST))
    before, _ = stored(cache)
    shutil.move(data / "ants" / "ants_0.jpg", data / "bees" / "was_an_ant.jpg")  # relabelled by moving it
    result = run("extract", "--data", data, "--cache", cache, "--val-fraction", "0.5", *FAST)
    assert_ok(result)
    table = counts(result.output)
    assert sum(row[1] for row in table.values()) == 0  # extracted: nothing
    after, header = stored(cache)
    assert after["bees/was_an_ant.jpg"][1] == "bees" and "ants/ants_0.jpg" not in after
    changed = sum(after.get(path, after["bees/was_an_ant.jpg"]) != old for path, old in before.items())
    assert changed > 1 and sum(row[3] for row in table.values()) == changed
    assert f"{changed} cached image(s) changed class or split" in result.output
    assert header.split.val_fraction == 0.5


def test_a_class_drawn_whole_into_val_keeps_one_image_in_train(tmp_path):
    data, cache = make_flat(tmp_path / "flat", per_class=1), tmp_path / "cache"
    assert_ok(run("extract", "--data", data, "--cache", cache, "--val-fraction", "0.95", *FAST))
    rows, _ = stored(cache)
    assert sorted(name for split, name in rows.values() if split == "train") == ["ants", "bees"]


def test_fractions_with_a_train_folder_are_refused(tiny_dataset, tmp_path):
    result = run("extract", "--data", tiny_dataset, "--cache", tmp_path / "c", "--val-fraction", "0.3", *FAST)
    assert_error(result, str(tiny_dataset), "has a train/ folder", "drop --val-fraction")


def test_val_without_train_is_refused(tmp_path):
    data = make_flat(tmp_path / "flat")
    make_image(data / "val" / "ants" / "a.jpg")
    assert_error(run("extract", "--data", data, "--cache", tmp_path / "c", *FAST), "has val/ but no train/")


def test_one_class_folder_is_refused(tmp_path):
    data = make_flat(tmp_path / "flat", classes=("ants",))
    assert_error(run("extract", "--data", data, "--cache", tmp_path / "c", *FAST), "1 class folder(s)", "at least 2")


def test_a_format_2_file_still_loads(tmp_path):
    path = write_features(tmp_path, {"train": (np.zeros((4, 8)), np.array([0, 1, 0, 1]))})
    with h5py.File(path, "r+") as file:
        file.attrs["format_version"] = 2
        del file.attrs["split"]
    with FeatureStore(path) as store:
        assert store.header.split is None and store.header.format_version == 2 and store.count("train") == 4
