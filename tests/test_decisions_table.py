"""apply --labels TABLE: decisions rewrite a label table's rows (relabel, split, dropped rows), no image moves, the
rows it does not touch keep their bytes, stale and unknown rows are skipped, and --undo restores the table byte for
byte."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import pytest
from cli_helpers import assert_error, assert_ok, run
from conftest import make_image
from test_sources import FAST, counts, small_inputs, stored  # noqa: F401 (small_inputs: autouse, 32-pixel inputs)

from headstart.features.decisions.formats import Decision, write_decisions

WIDE = {"COLUMNS": "400"}
IMAGES = ["img/a0.png", "img/a1.png", "img/a2.png", "img/b0.png", "img/b1.png", "img/b2.png", "img/v0.png"]
# A quoted cell, a CRLF line and a `;`-free comma table: rows apply does not touch must keep these bytes.
TABLE = (
    "path,label,split,note\r\n"
    'img/a0.png,ants,train,"first, quoted"\r\n'
    "img/a1.png,ants,train,\r\n"
    "img/a2.png,ants,train,x\r\n"
    "img/b0.png,bees,train,\r\n"
    "img/b1.png,bees,train,\r\n"
    "./img/b2.png,bees,train,\r\n"
    "img/v0.png,ants,val,last\r\n"
)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


@pytest.fixture
def table_data(tmp_path) -> tuple[Path, Path]:
    data = tmp_path / "data"
    for seed, name in enumerate(IMAGES):
        make_image(data / name, seed=seed)
    table = data / "labels.csv"
    table.write_bytes(TABLE.encode())
    return data, table


def _decisions(data: Path, rows: list[tuple[str, str, str]], out: Path, sha: dict | None = None) -> Path:
    write_decisions(out, [Decision(p, a, arg, (sha or {}).get(p) or _sha(data / p)) for p, a, arg in rows])
    return out


ROWS = [
    ("img/a1.png", "relabel", "bees"),
    ("img/b0.png", "remove", ""),
    ("img/b2.png", "duplicate-of", "img/b1.png"),
    ("img/a2.png", "move-split", "val"),
    ("img/v0.png", "relabel", "bees"),  # stale below
    ("img/zz.png", "remove", ""),  # no row of the table
]


def test_a_dry_run_shows_the_table_edits_and_changes_nothing(table_data, tmp_path):
    data, table = table_data
    make_image(data / "img/zz.png", seed=99)
    decisions = _decisions(data, ROWS, tmp_path / "d.csv", sha={"img/v0.png": "0" * 64})
    before = _tree(data)
    result = run("apply", decisions, "--data", data, "--labels", table, env=WIDE)
    assert_ok(result)
    assert _tree(data) == before and not (tmp_path / "data-quarantine").exists()
    assert "would edit labels.csv line 3 img/a1.png: label 'ants' -> 'bees' (relabel)" in result.output
    assert "would edit labels.csv line 5 img/b0.png: drop the row (remove)" in result.output
    assert "would edit labels.csv line 7 img/b2.png: drop the row (duplicate-of)" in result.output
    assert "would edit labels.csv line 4 img/a2.png: split 'train' -> 'val' (move-split)" in result.output
    assert "skipped line 6 img/v0.png: stale" in result.output
    assert "skipped line 7 img/zz.png: no row of labels.csv names this image" in result.output
    assert "4 rows would edit, 0 ignored, 2 skipped" in result.output and "pass --yes" in result.output


def test_yes_rewrites_the_table_moves_no_image_and_undo_restores_it_byte_for_byte(table_data, tmp_path):
    data, table = table_data
    cache = tmp_path / "cache"
    assert_ok(run("extract", "--data", data, "--labels", table, "--cache", cache, *FAST))
    decisions = _decisions(data, ROWS[:4], tmp_path / "d.csv")
    images = {name: (data / name).read_bytes() for name in IMAGES}
    result = run("apply", decisions, "--data", data, "--labels", table, "--cache", cache, "--yes", env=WIDE)
    assert_ok(result)
    assert "4 rows edited, 0 ignored, 0 skipped" in result.output
    assert {name: (data / name).read_bytes() for name in IMAGES} == images  # no image moved or changed
    lines = table.read_bytes().decode().split("\r\n")
    assert lines[0] == "path,label,split,note" and lines[1] == 'img/a0.png,ants,train,"first, quoted"'
    assert lines[2] == "img/a1.png,bees,train," and lines[3] == "img/a2.png,ants,val,x"
    assert lines[4:] == ["img/b1.png,bees,train,", "img/v0.png,ants,val,last", ""]  # b0 and ./b2 dropped
    quarantine = tmp_path / "data-quarantine"
    assert (quarantine / "apply-0001.before.csv").read_bytes() == TABLE.encode()
    journal = [json.loads(line) for line in (quarantine / "apply-0001.jsonl").read_text().splitlines()]
    assert (
        journal[0]["journal"] == 2
        and journal[1]["op"] == "table"
        and journal[-1] == {"op": "done", "moves": 0, "edits": 4}
    )
    result = run("extract", "--data", data, "--labels", table, "--cache", cache, *FAST, env=WIDE)
    assert_ok(result)
    rows, _ = stored(cache)
    assert rows["img/a1.png"] == ("train", "bees") and rows["img/a2.png"] == ("val", "ants")
    assert "img/b0.png" not in rows and "img/b2.png" not in rows and len(rows) == 5
    assert sum(found[1] for found in counts(result.output).values()) == 0  # extracted: none, every row reused
    assert_error(run("apply", "--undo", "--data", data), "--labels")  # the table must be named to be put back
    result = run("apply", "--undo", "--data", data, "--labels", table, env=WIDE)  # no path wrapped mid-message
    assert_ok(result)
    assert "put back as it was" in result.output and table.read_bytes() == TABLE.encode()
    assert (quarantine / "apply-0001.undone.jsonl").is_file()


def test_a_json_lines_table_is_edited_and_a_parquet_table_refused(table_data, tmp_path):
    data, _ = table_data
    table = data / "labels.jsonl"
    records = [{"path": name, "label": "ants" if "/a" in name else "bees", "extra": [1]} for name in IMAGES]
    table.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    original = table.read_bytes()
    decisions = _decisions(data, [("img/a0.png", "relabel", "bees"), ("img/b1.png", "remove", "")], tmp_path / "d.csv")
    assert_ok(run("apply", decisions, "--data", data, "--labels", table, "--yes"))
    edited = [json.loads(line) for line in table.read_text(encoding="utf-8").splitlines()]
    assert edited[0] == {"path": "img/a0.png", "label": "bees", "extra": [1]} and len(edited) == len(IMAGES) - 1
    assert [record["path"] for record in edited] == [name for name in IMAGES if name != "img/b1.png"]
    assert table.read_bytes().split(b"\n")[1:] == [
        line for line in original.split(b"\n")[1:] if b"b1.png" not in line
    ]  # rows not edited: their bytes
    assert_ok(run("apply", "--undo", "--data", data, "--labels", table))
    assert table.read_bytes() == original
    parquet = data / "labels.parquet"
    parquet.write_bytes(b"PAR1")
    assert_error(run("apply", decisions, "--data", data, "--labels", parquet), "Parquet", "convert it")


def test_a_table_without_a_split_column_cannot_move_a_split_and_conflicts_are_skipped(table_data, tmp_path):
    data, _ = table_data
    table = data / "plain.tsv"
    table.write_text("path\tlabel\n" + "".join(f"{name}\t{'ants' if '/a' in name else 'bees'}\n" for name in IMAGES))
    with open(table, "a") as handle:
        handle.write("img/zz.png\tants|bees\n")  # a multi-label row
    make_image(data / "img/zz.png", seed=99)
    rows = [("img/a0.png", "move-split", "val"), ("img/b0.png", "relabel", "ants"), ("img/b0.png", "remove", "")]
    rows.append(("img/zz.png", "relabel", "ants"))
    decisions = _decisions(data, rows, tmp_path / "d.csv")
    result = run("apply", decisions, "--data", data, "--labels", table, "--yes", env=WIDE)
    assert_ok(result)
    assert "the table has no split column" in result.output and "conflict: several decisions" in result.output
    assert "a multi-label row (ants|bees): relabel it by hand" in result.output
    assert "0 rows edited, 0 ignored, 4 skipped" in result.output
    parsed = list(csv.reader(io.StringIO(table.read_text()), delimiter="\t"))
    assert parsed[1] == ["img/a0.png", "ants"] and len(parsed) == len(IMAGES) + 2
