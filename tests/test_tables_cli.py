"""extract --labels and --pool from the command line: a table and a pool go extract -> info -> train-head -> audit;
relabelling or moving rows recomputes nothing; a bad table is one error line."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from cli_helpers import assert_error, assert_ok, run
from conftest import make_image
from test_sources import FAST, counts, small_inputs, stored  # noqa: F401 (small_inputs: an autouse fixture)

from headstart.features.files.cachedir import FEATURES_FILE
from headstart.features.store import FORMAT_VERSION, FeatureStore, StoreError
from headstart.heads.audit.rows import load_rows


def make_table(root: Path, per_class: int = 6, pool: int = 3) -> Path:
    """root/img/<class>_<i>.png, root/unlabeled/u<i>.png and root/labels.csv (Excel's: BOM, `;`), no split column."""
    lines = ["path;label"]
    for number, name in enumerate(("cat", "dog")):
        for index in range(per_class):
            make_image(root / "img" / f"{name}_{index}.png", seed=100 * number + index)
            lines.append(f"img/{name}_{index}.png;{name}")
    for index in range(pool):
        make_image(root / "unlabeled" / f"u{index}.png", seed=900 + index)
    (root / "labels.csv").write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    return root / "labels.csv"


def test_a_table_and_a_pool_go_extract_info_train_head_predict_evaluate_audit(tmp_path):
    table, cache = make_table(tmp_path / "data"), tmp_path / "cache"
    # --data left out: the table's paths are relative to its own folder.
    result = run("extract", "--labels", table, "--pool", tmp_path / "data" / "unlabeled", "--cache", cache, *FAST)
    assert_ok(result)
    rows, header = stored(cache)
    assert header.format_version == FORMAT_VERSION == 4 and header.classes == ["cat", "dog"]
    assert header.data_root == str((tmp_path / "data").resolve())
    with FeatureStore(cache / FEATURES_FILE) as store:
        pool = store.pool()
        assert sorted(pool.paths) == ["unlabeled/u0.png", "unlabeled/u1.png", "unlabeled/u2.png"]
        assert pool.labels.tolist() == [-1, -1, -1] and pool.features.shape == (3, 512)
        assert "pool" not in store.labelled_splits and store.count("train") + store.count("val") == 12
    info = run("info", "--cache", cache, "--json")
    assert_ok(info)
    described = json.loads(info.output)["features"]
    assert described["pool"] == {"rows": 3, "skipped": 0} and "pool" not in described["splits"]
    assert_ok(run("train-head", "--cache", cache, "--epochs", "2"))
    metrics = json.loads((cache / "metrics.json").read_text())
    assert metrics["counts"]["train"] + metrics["counts"]["val"] == 12  # the pool is never fitted on
    assert set(load_rows(cache / FEATURES_FILE).counts) <= {"train", "val"}
    out = tmp_path / "p.csv"
    assert_ok(run("predict", tmp_path / "data" / "img", "--cache", cache, "--out", out, "--device", "cpu"))
    assert len(out.read_text().splitlines()) == 1 + 12
    scored = run("evaluate", tmp_path / "data", "--labels", table, "--cache", cache, "--out", tmp_path / "w.csv")
    assert_ok(scored)
    assert "12 images, accuracy" in scored.output
    assert_ok(run("audit", "--cache", cache, "--curve-seeds", "1", "--folds", "2"))
    audited = json.loads((cache / "audit" / "audit.json").read_text())
    assert sum(audited["counts"].values()) == 12 and "pool" not in audited["counts"]  # the pool is not audited


def test_relabelling_or_moving_rows_recomputes_nothing(tmp_path):
    table, cache = make_table(tmp_path / "data", pool=0), tmp_path / "cache"
    assert_ok(run("extract", "--labels", table, "--cache", cache, *FAST))
    text = table.read_bytes().decode("utf-8-sig").replace("img/cat_0.png;cat", "img/cat_0.png;dog")
    text = text.replace("path;label", "path;label;split").replace(";dog\r\n", ";dog;val\r\n", 1)
    table.write_text(text.replace(";cat\r\n", ";cat;\r\n"), encoding="utf-8")
    result = run("extract", "--labels", table, "--cache", cache, *FAST)
    assert_ok(result)
    assert sum(row[1] for row in counts(result.output).values()) == 0  # extracted: nothing
    rows, _ = stored(cache)
    assert rows["img/cat_0.png"] == ("val", "dog")
    relabelled = sum(row[3] for row in counts(result.output).values())
    assert relabelled >= 1 and f"{relabelled} cached image(s) changed class or split" in result.output


def test_missing_rows_are_listed_and_strict_makes_them_fatal(tmp_path):
    table, cache = make_table(tmp_path / "data", pool=0), tmp_path / "cache"
    with open(table, "a") as out:
        out.write("img/gone.png;cat\r\n")
    result = run("extract", "--labels", table, "--cache", cache, *FAST)
    assert_ok(result)
    assert "skipped img/gone.png: is missing (line 14)" in result.output
    assert "1 table row(s) skipped" in result.output
    strict = run("extract", "--labels", table, "--cache", tmp_path / "c2", "--strict", *FAST)
    assert_error(strict, "labels.csv: line 14: img/gone.png is missing", "drop --strict")
    assert not (tmp_path / "c2" / FEATURES_FILE).exists()


def test_bad_table_and_pool_options_are_one_line(tmp_path):
    table, cache = make_table(tmp_path / "data", pool=0), tmp_path / "cache"
    with open(table, "a") as out:
        out.write("img/cat_1.png;dog\r\n")
    assert_error(
        run("extract", "--labels", table, "--cache", cache, *FAST), "line 14: img/cat_1.png is 'dog' here but 'cat'"
    )
    (tmp_path / "elsewhere").mkdir()
    result = run("extract", "--data", tmp_path / "data", "--pool", tmp_path / "elsewhere", "--cache", cache, *FAST)
    assert_error(result, "--pool", "is outside the data folder")
    split = tmp_path / "split.csv"
    split.write_text("path,label,split\ndata/img/cat_0.png,cat,train\ndata/img/dog_0.png,dog,train\n")
    result = run("extract", "--labels", split, "--val-fraction", "0.3", "--cache", cache, *FAST)
    assert_error(result, "names every row's split: drop --val-fraction")


def test_the_pool_split_is_read_as_untrusted(tmp_path):
    table, cache = make_table(tmp_path / "data", per_class=2, pool=1), tmp_path / "cache"
    assert_ok(run("extract", "--labels", table, "--pool", tmp_path / "data" / "unlabeled", "--cache", cache, *FAST))
    with h5py.File(cache / FEATURES_FILE, "a") as file:
        file["pool/labels"][0] = 1  # a pool row claiming a class
    with FeatureStore(cache / FEATURES_FILE) as store, pytest.raises(StoreError, match="labels other than -1"):
        store.pool()
    with h5py.File(cache / FEATURES_FILE, "a") as file:
        del file["pool"]
    with FeatureStore(cache / FEATURES_FILE) as store:
        assert len(store.pool()) == 0 and store.pool().features.shape == (0, 512)
    assert np.array_equal(store.header.classes, ["cat", "dog"])


def test_a_pool_inside_class_folders_is_no_class(tmp_path):
    data, cache = tmp_path / "flat", tmp_path / "cache"
    for number, name in enumerate(("ants", "bees", "unlabeled")):
        for index in range(3):
            make_image(data / name / f"{index}.png", seed=10 * number + index)
    assert_ok(run("extract", "--data", data, "--pool", data / "unlabeled", "--cache", cache, *FAST))
    rows, header = stored(cache)
    assert header.classes == ["ants", "bees"]
    pool = sorted(path for path, (split, _) in rows.items() if split == "pool")
    assert pool == [f"unlabeled/{index}.png" for index in range(3)]
