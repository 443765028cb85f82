"""features/sources/tables.py and labels.py: label tables of every format read alike; each bad table gets its line."""

from __future__ import annotations

import json
import os
import tracemalloc
from pathlib import Path

import pytest
from conftest import make_image

from headstart.features.sources.labels import read_table, table_dataset
from headstart.features.sources.rule import UNSPLIT
from headstart.features.sources.tables import TableColumns, TableError

ROWS = [
    ("img/ants/a0.png", "ants", "train"),
    ("img/ants/a1.png", "ants", "val"),
    ("img/bees/b0.png", "bees", "train"),
    ("img/bees/b1.png", "bees", ""),
    ("img/bees/b2.png", "bees", "TEST"),
]


@pytest.fixture
def root(tmp_path) -> Path:
    """tmp_path/data with the five images ROWS names."""
    for seed, (path, _, _) in enumerate(ROWS):
        make_image(tmp_path / "data" / path, size=(8, 8), seed=seed)
    return tmp_path / "data"


def write_text(path: Path, header: list[str], rows: list[tuple], separator: str = ",", bom: bool = False) -> Path:
    lines = [separator.join(header), *(separator.join(row) for row in rows)]
    path.write_bytes(("\ufeff" if bom else "").encode() + "\r\n".join(lines).encode() + b"\r\n")
    return path


def write_jsonl(path: Path, header: list[str], rows: list[tuple]) -> Path:
    path.write_text("".join(json.dumps(dict(zip(header, row))) + "\n" for row in rows))
    return path


def write_parquet(path: Path, header: list[str], rows: list[tuple]) -> Path:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({name: [row[i] for row in rows] for i, name in enumerate(header)}), path)
    return path


WRITERS = {
    "plain.csv": lambda p, h, r: write_text(p, h, r),
    "excel.csv": lambda p, h, r: write_text(p, h, r, ";", bom=True),
    "table.tsv": lambda p, h, r: write_text(p, h, r, "\t"),
    "table.jsonl": write_jsonl,
    "table.parquet": write_parquet,
}


def names(dataset) -> dict[str, list[tuple[str, str]]]:
    return {
        split: [(entry.name, dataset.classes[entry.label]) for entry in entries]
        for split, entries in dataset.splits.items()
    }


@pytest.mark.parametrize("kind", WRITERS)
def test_every_format_reads_as_the_same_dataset(root, kind):
    table = WRITERS[kind](root / kind, ["path", "label", "split"], ROWS)
    dataset = table_dataset(table, root, TableColumns())
    assert dataset.classes == ["ants", "bees"] and dataset.table_skipped == []
    assert names(dataset) == {
        "train": [("img/ants/a0.png", "ants"), ("img/bees/b0.png", "bees")],
        "val": [("img/ants/a1.png", "ants")],
        "test": [("img/bees/b2.png", "bees")],
        UNSPLIT: [("img/bees/b1.png", "bees")],  # an empty split cell: drawn by content
    }
    assert all(entry.path == root / entry.name for entries in dataset.splits.values() for entry in entries)


def test_named_columns_absolute_paths_and_no_split_column(root):
    rows = [(str(root / path) if i % 2 else path, label) for i, (path, label, _) in enumerate(ROWS)]
    table = write_text(root / "t.csv", ["file", "class"], rows)
    dataset = table_dataset(table, root, TableColumns(path="file", label="class"))
    assert list(dataset.splits) == [UNSPLIT] and len(dataset.splits[UNSPLIT]) == 5
    assert {entry.name for entry in dataset.splits[UNSPLIT]} == {path for path, _, _ in ROWS}


def test_missing_files_are_skipped_and_listed_or_fatal_with_strict(root):
    table = write_text(root / "t.csv", ["path", "label"], [*[row[:2] for row in ROWS], ("img/gone.png", "ants")])
    dataset = table_dataset(table, root, TableColumns())
    assert dataset.table_skipped == [("img/gone.png", "is missing (line 7)")]
    assert sum(len(entries) for entries in dataset.splits.values()) == 5
    with pytest.raises(TableError, match=r"t\.csv: line 7: img/gone\.png is missing: fix the row, or drop --strict"):
        table_dataset(table, root, TableColumns(), strict=True)


def test_the_same_row_twice_is_a_listed_skip(root):
    table = write_text(root / "t.csv", ["path", "label"], [*[row[:2] for row in ROWS], ("./img/ants/a0.png", "ants")])
    dataset = table_dataset(table, root, TableColumns())
    assert dataset.table_skipped == [("img/ants/a0.png", "listed again (line 7, first at line 2)")]


BAD = {
    "two labels": (
        [*ROWS, ("img/ants/a0.png", "bees", "train")],
        r"t\.csv: line 7: img/ants/a0\.png is 'bees' in train here but 'ants' in train at line 2: keep one row",
    ),
    "unknown split": ([*ROWS[:4], ("img/bees/b2.png", "bees", "holdout")], r"line 6: unknown split 'holdout': use"),
    "no train rows": (
        [row for row in ROWS if row[1] != "ants"] + [("img/ants/a1.png", "ants", "test")],
        r"line 5: class 'ants' is only in test, with no train rows: add train rows",
    ),
    "only in val": (
        [row for row in ROWS if row[1] != "ants"] + [("img/ants/a1.png", "ants", "val")],
        r"line 5: class 'ants' is only in val, with no train rows",
    ),
    "leaves data": ([*ROWS[:4], ("../outside.png", "bees", "")], r"line 6: '\.\./outside\.png' is outside .*data"),
    "absolute outside": ([*ROWS[:4], ("/etc/passwd", "bees", "")], r"line 6: '/etc/passwd' is outside"),
    "no label": ([*ROWS[:4], ("img/bees/b2.png", "", "")], r"line 6: 'img/bees/b2\.png' has no label"),
    "header only": ([], r"t\.csv has no rows: add one row per image"),
    "one class": ([row for row in ROWS if row[1] == "bees"], r"names 1 class\(es\).*at least 2"),
}


@pytest.mark.parametrize("case", BAD)
def test_each_bad_table_gets_its_line(root, case):
    rows, message = BAD[case]
    table = write_text(root / "t.csv", ["path", "label", "split"], rows)
    with pytest.raises(TableError, match=message):
        table_dataset(table, root, TableColumns())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"t\.csv is empty: its first line names the columns"),
        (b"file,label\nimg/ants/a0.png,ants\n", r"no column 'path' \(its columns: 'file', 'label'\): .*--path-column"),
        ("path,label\nimg/ants/a0.png,fourmi\nimg/caf\xe9.png,ants\n".encode("latin-1"), r"line 3 is not UTF-8 text"),
        (b'path,label\n"img/a.png,ants\n', r"t\.csv: line 2 is not a CSV row \(unexpected end of data\): fix it"),
    ],
)
def test_unreadable_text_tables(root, content, message):
    (root / "t.csv").write_bytes(content)
    with pytest.raises(TableError, match=message):
        table_dataset(root / "t.csv", root, TableColumns())


def test_split_column_named_but_missing_and_bad_jsonl(root):
    table = write_text(root / "t.csv", ["path", "label"], [row[:2] for row in ROWS])
    with pytest.raises(TableError, match=r"no column 'fold'.*--split-column"):
        table_dataset(table, root, TableColumns(split="fold"))
    (root / "t.jsonl").write_text('{"path": "img/ants/a0.png", "label": "ants"}\n[1, 2]\n')
    with pytest.raises(TableError, match=r"t\.jsonl: line 2 is not a JSON object"):
        table_dataset(root / "t.jsonl", root, TableColumns())
    with pytest.raises(TableError, match=r"label table .*nope\.csv does not exist"):
        table_dataset(root / "nope.csv", root, TableColumns())
    (root / "t.xlsx").write_bytes(b"PK")
    with pytest.raises(TableError, match=r"t\.xlsx: a label table ends in \.csv"):
        table_dataset(root / "t.xlsx", root, TableColumns())


def test_a_long_table_is_read_in_bounded_memory(tmp_path):
    table = tmp_path / "long.csv"
    with open(table, "w") as out:
        out.write("path;label;split\n")
        out.writelines(f"images/{index:07d}.jpg;class_{index % 7};train\n" for index in range(40_000))
    assert os.path.getsize(table) > 1_200_000
    tracemalloc.start()
    try:
        count = sum(1 for _ in read_table(table, TableColumns()))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 40_000 and peak < 200_000  # streamed: a row at a time, never the file's 1.2 MB
