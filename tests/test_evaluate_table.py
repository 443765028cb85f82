"""evaluate --labels TABLE: a test set named by a label table scores as the same images in class folders do; missing
files are listed skips (--strict: fatal); a label the head does not know is one error line naming the row."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import assert_error, assert_ok, read_csv, run
from conftest import make_dataset

from headstart.features.provenance import IMAGENET_MEAN, IMAGENET_STD, PREPROCESSINGS, Preprocessing
from headstart.features.sources.labels import scored_entries
from headstart.features.sources.tables import TableColumns

FAST = ("--workers", "0", "--batch-size", "4")


def _small_inputs(patch: pytest.MonkeyPatch) -> None:
    patch.setitem(PREPROCESSINGS, "imagenet", Preprocessing("imagenet", 36, 32, IMAGENET_MEAN, IMAGENET_STD))


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """data/{train,val}/{ants,bees}/ and cache/ with a head trained on them (random-init resnet18, 32 pixels)."""
    work = tmp_path_factory.mktemp("evaluate-table")
    data, cache = make_dataset(work / "data"), work / "cache"
    with pytest.MonkeyPatch.context() as patch:
        _small_inputs(patch)
        assert_ok(run("extract", "--data", data, "--cache", cache, "--weights", "none", *FAST, "--quiet"))
        assert_ok(run("train-head", "--cache", cache, "--epochs", 2, "--quiet"))
    return work


@pytest.fixture
def work(built, monkeypatch) -> Path:
    _small_inputs(monkeypatch)
    return built


def _val_rows(data: Path) -> list[tuple[str, str]]:
    return [(f"val/{name}/{name}_{index}.jpg", name) for name in ("ants", "bees") for index in range(2)]


def test_a_table_scores_as_the_same_images_in_class_folders(work, tmp_path):
    data, cache = work / "data", work / "cache"
    table = tmp_path / "test.csv"
    table.write_text("file,class,split\n" + "".join(f"{path},{label},train\n" for path, label in _val_rows(data)))
    by_folder, by_table = tmp_path / "folder.csv", tmp_path / "table.csv"
    folder_run = run("evaluate", data / "val", "--cache", cache, "--out", by_folder, *FAST)
    assert_ok(folder_run)
    columns = ("--path-column", "file", "--label-column", "class")
    table_run = run("evaluate", data, "--labels", table, *columns, "--cache", cache, "--out", by_table, *FAST)
    assert_ok(table_run)
    accuracy = [line for line in folder_run.output.splitlines() if "4 images, accuracy" in line]
    assert len(accuracy) == 1 and accuracy[0].split(";")[0] in table_run.output
    assert [row["predicted"] for row in read_csv(by_folder)] == [row["predicted"] for row in read_csv(by_table)]
    assert [Path(row["path"]).name for row in read_csv(by_folder)] == [
        Path(row["path"]).name for row in read_csv(by_table)
    ]


def test_a_table_of_one_class_and_a_missing_file_is_scored_with_the_row_listed(work, tmp_path):
    data, cache = work / "data", work / "cache"
    table = tmp_path / "ants.tsv"
    table.write_text("path\tlabel\nval/ants/ants_0.jpg\tants\nval/ants/gone.jpg\tants\nval/ants/ants_1.jpg\tants\n")
    result = run("evaluate", data, "--labels", table, "--cache", cache, "--out", tmp_path / "wrong.csv", *FAST)
    assert_ok(result)
    assert "2 images, accuracy" in result.output
    assert (
        "skipped val/ants/gone.jpg: is missing (line 3)" in result.output and "1 table row(s) skipped" in result.output
    )
    strict = run("evaluate", data, "--labels", table, "--strict", "--cache", cache, "--out", tmp_path / "s.csv", *FAST)
    assert_error(strict, "ants.tsv: line 3: val/ants/gone.jpg is missing", "drop --strict")
    assert not (tmp_path / "s.csv").exists()


def test_a_label_the_head_does_not_know_is_one_error_naming_the_row(work, tmp_path):
    data, cache = work / "data", work / "cache"
    table = tmp_path / "t.csv"
    table.write_text("path,label\nval/ants/ants_0.jpg,ants\nval/bees/bees_0.jpg,wasps\n")
    out = tmp_path / "wrong.csv"
    result = run("evaluate", data, "--labels", table, "--cache", cache, "--out", out, *FAST)
    assert_error(result, "t.csv: line 3: label 'wasps' is not a class the head knows (ants, bees)")
    assert not out.exists()


def test_scored_entries_keep_the_tables_order_and_the_heads_class_numbers(tmp_path):
    for name in ("b.png", "a.png", "c.png"):
        (tmp_path / name).write_bytes(b"x")
    table = tmp_path / "t.jsonl"
    table.write_text(
        '{"path": "b.png", "label": "dog"}\n{"path": "a.png", "label": "cat"}\n{"path": "c.png", "label": "dog"}\n'
    )
    entries, skipped = scored_entries(table, tmp_path, TableColumns(), ["cat", "dog", "eel"])
    assert [(Path(entry.path).name, entry.label) for entry in entries] == [("b.png", 1), ("a.png", 0), ("c.png", 1)]
    assert skipped == []


def test_the_python_api_takes_a_label_table(work, tmp_path):
    import headstart

    table = tmp_path / "t.csv"
    table.write_text("path,label\nval/ants/ants_0.jpg,ants\nval/bees/bees_1.jpg,bees\n")
    evaluation = headstart.evaluate(work / "data", tmp_path / "w.csv", work / "cache", labels=table, workers=0)
    assert evaluation.images == 2 and evaluation.skipped == []
