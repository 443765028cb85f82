"""features/sources/tables.py's 0/1 form: one 0/1 column per label, read for multi-label in every format alike as
the label-cell form; each bad cell is one line naming the row and the column; single-label reading is unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_image
from test_tables import write_jsonl, write_parquet, write_text

from headstart.features.sources.labels import table_dataset
from headstart.features.sources.tables import TableColumns, TableError

PATHS = ["a.png", "b.png", "c.png", "d.png", "e.png"]
HEADER = ["path", "red", "shoe", "hat", "split"]
FLAGS = [(1, 1, 0, "train"), (0, 0, 1, "train"), (0, 0, 0, "train"), (0, 1, 0, "val"), (1, 0, 1, "")]
CELLS = ["red|shoe", "hat", "", "shoe", "red|hat"]  # the same sets in the label-cell form
MULTI = TableColumns(multi_label=True)


@pytest.fixture
def root(tmp_path) -> Path:
    for seed, path in enumerate(PATHS):
        make_image(tmp_path / "data" / path, size=(8, 8), seed=seed)
    return tmp_path / "data"


def sets(dataset) -> dict[str, tuple[str, list[str]]]:
    return {
        entry.name: (split, [dataset.classes[label] for label in entry.label_set])
        for split, entries in dataset.splits.items()
        for entry in entries
    }


def as_bools(row: tuple) -> tuple:
    return (row[0], *map(bool, row[1:4]), row[4])


def text_rows(rows: list[tuple]) -> list[tuple]:
    return [tuple(str(value) for value in row) for row in rows]


@pytest.mark.parametrize(
    "name, write",
    [
        ("t.csv", lambda path, rows: write_text(path, HEADER, text_rows(rows))),
        ("t.tsv", lambda path, rows: write_text(path, HEADER, text_rows(rows), "\t")),
        ("t.jsonl", lambda path, rows: write_jsonl(path, HEADER, rows)),
        ("t.parquet", lambda path, rows: write_parquet(path, HEADER, rows)),
        ("bools.parquet", lambda path, rows: write_parquet(path, HEADER, [as_bools(row) for row in rows])),
    ],
)
def test_zero_one_columns_read_as_the_label_cell_form(root, name, write):
    table = write(root / name, [(path, *flags) for path, flags in zip(PATHS, FLAGS)])
    zero_one = table_dataset(table, root, MULTI, multi_label=True)
    cells = write_text(
        root / "cells.csv", ["path", "label", "split"], [(p, c, f[3]) for p, c, f in zip(PATHS, CELLS, FLAGS)]
    )
    expected = table_dataset(cells, root, MULTI, multi_label=True)
    assert zero_one.classes == expected.classes == ["hat", "red", "shoe"]
    assert sets(zero_one) == sets(expected)
    assert sets(zero_one)["a.png"] == ("train", ["red", "shoe"]) and sets(zero_one)["c.png"] == ("train", [])


@pytest.mark.parametrize(
    "cell, shown, writer",
    [("2", "'2'", "csv"), ("yes", "'yes'", "csv"), ("", "''", "csv"), (2, "'2'", "jsonl"), (None, "''", "jsonl")],
)
def test_a_bad_cell_is_one_line_naming_row_and_column(root, cell, shown, writer):
    rows = [(path, *flags) for path, flags in zip(PATHS, FLAGS)]
    rows[3] = (rows[3][0], 0, cell, 0, "val")
    if writer == "csv":
        table = write_text(root / "t.csv", HEADER, text_rows(rows))
    else:
        table = write_jsonl(root / "t.jsonl", HEADER, rows)
    with pytest.raises(TableError) as raised:
        table_dataset(table, root, MULTI, multi_label=True)
    message = str(raised.value)
    line = 5 if writer == "csv" else 4  # a CSV's header is its line 1
    assert f"line {line}: column 'shoe' holds {shown}, not 0 or 1: write 0 or 1" in message and "\n" not in message


def test_a_bad_parquet_cell_names_its_row(root):
    rows = [(path, *flags) for path, flags in zip(PATHS, FLAGS)]
    rows[1] = (rows[1][0], 0, 0, 3, "train")
    table = write_parquet(root / "t.parquet", HEADER, rows)
    with pytest.raises(TableError, match=r"t.parquet: row 2: column 'hat' holds '3', not 0 or 1"):
        table_dataset(table, root, MULTI, multi_label=True)


@pytest.mark.parametrize(
    "header, fragment",
    [
        (["path", "split"], "has no 'label' column and no 0/1 label columns"),
        (["path", "red|shoe", "split"], "label column 'red|shoe' is empty, holds '|' or comes twice"),
        (["path", "red", "red", "split"], "label column 'red' is empty, holds '|' or comes twice"),
    ],
)
def test_bad_label_columns(root, header, fragment):
    table = write_text(root / "t.csv", header, [(PATHS[0], *["1"] * (len(header) - 2), "train")])
    with pytest.raises(TableError, match=fragment.replace("|", r"\|")):
        table_dataset(table, root, MULTI, multi_label=True)


def test_single_label_reading_is_unchanged(root):
    """Without --multi-label a table with no label column is the missing-column error of always; with a label
    column present, the other columns are not labels, even in multi-label reading."""
    table = write_text(root / "t.csv", HEADER, text_rows([(PATHS[0], *FLAGS[0])]))
    with pytest.raises(
        TableError, match=r"has no column 'label' \(its columns: 'path', 'red', 'shoe', 'hat', 'split'\)"
    ):
        table_dataset(table, root, TableColumns())
    both = write_text(
        root / "both.csv", ["path", "label", "red"], [(PATHS[0], "hat|shoe", "1"), (PATHS[1], "red", "x")]
    )
    assert sets(table_dataset(both, root, MULTI, multi_label=True))["a.png"][1] == ["hat", "shoe"]
