"""decisions.csv and apply: a dry run by default, --yes moves (never over a file), stale, conflicting and invalid
rows skipped, the journal, --undo byte for byte, and a kill mid-apply losing or doubling nothing."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cli_helpers import assert_error, assert_ok, run
from conftest import make_image
from test_sources import FAST, counts, small_inputs, stored  # noqa: F401 (small_inputs: autouse, 32-pixel inputs)

from headstart.features.decisions.formats import Decision, DecisionsError, read_decisions, write_decisions

FILES = ["train/ants/a0.png", "train/ants/a1.png", "train/ants/a2.png", "train/bees/b0.png", "train/bees/b1.png",
         "train/bees/a1.png", "val/ants/v0.png", "val/bees/v1.png"]  # fmt: skip

WIDE = {"COLUMNS": "400"}  # one line per message, however long the temporary paths


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under root, by relative path."""
    return {
        str(path.relative_to(root)): None if path.is_dir() else path.read_bytes() for path in sorted(root.rglob("*"))
    }


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def dataset(tmp_path) -> Path:
    data = tmp_path / "data"
    for seed, name in enumerate(FILES):
        make_image(data / name, seed=seed)
    return data


def _decisions(data: Path, rows: list[tuple[str, str, str]], out: Path, sha: dict | None = None) -> Path:
    made = [
        Decision(path, action, argument, (sha or {}).get(path) or _sha(data / path)) for path, action, argument in rows
    ]
    write_decisions(out, made)
    return out


PLAN = [
    ("train/ants/a0.png", "relabel", "bees"),
    ("train/bees/b0.png", "remove", ""),
    ("train/ants/a2.png", "duplicate-of", "val/bees/v1.png"),
    ("train/bees/b1.png", "move-split", "val"),
    ("val/bees/v1.png", "ignore", ""),
    ("train/ants/a1.png", "relabel", "bees"),  # train/bees/a1.png exists: never overwritten
    ("val/ants/v0.png", "relabel", "wasps"),  # and the same path again, below: a conflict
    ("val/ants/v0.png", "remove", ""),
]


def test_a_dry_run_moves_nothing_and_says_what_would_move(dataset, tmp_path):
    decisions = _decisions(dataset, PLAN[:4], tmp_path / "d.csv")
    before = _snapshot(dataset)
    result = run("apply", decisions, "--data", dataset)
    assert_ok(result)
    assert _snapshot(dataset) == before and not (tmp_path / "data-quarantine").exists()
    assert "would move train/ants/a0.png -> train/bees/a0.png (relabel)" in result.output
    assert "would move train/bees/b0.png -> quarantine: train/bees/b0.png (remove)" in result.output
    assert "4 would move, 0 ignored, 0 skipped" in result.output and "pass --yes" in result.output


def test_yes_moves_skips_what_it_must_and_undo_restores_byte_for_byte(dataset, tmp_path):
    before = _snapshot(dataset)
    decisions = _decisions(dataset, PLAN, tmp_path / "d.csv")
    (dataset / "train/bees/b0.png").write_bytes(before["train/bees/b0.png"])  # unchanged: still current
    result = run("apply", decisions, "--data", dataset, "--yes", env=WIDE)
    assert_ok(result)
    quarantine = tmp_path / "data-quarantine"
    after = _snapshot(dataset)
    assert after["train/bees/a0.png"] == before["train/ants/a0.png"] and "train/ants/a0.png" not in after
    assert after["val/bees/b1.png"] == before["train/bees/b1.png"] and "train/bees/b1.png" not in after
    assert (quarantine / "train/bees/b0.png").read_bytes() == before["train/bees/b0.png"]
    assert (quarantine / "train/ants/a2.png").read_bytes() == before["train/ants/a2.png"]
    assert after["train/ants/a1.png"] == before["train/ants/a1.png"]  # skipped: its target exists
    assert after["train/bees/a1.png"] == before["train/bees/a1.png"]
    assert "val/ants/v0.png" in after and "val/wasps" not in after  # the conflict: neither decision
    assert "4 moved, 1 ignored, 3 skipped" in result.output
    assert "exists: never overwritten" in result.output and "conflict: several decisions" in result.output
    assert [path.name for path in quarantine.glob("apply-*.jsonl")] == ["apply-0001.jsonl"]
    result = run("apply", "--undo", "--data", dataset)
    assert_ok(result)
    assert "4 files put back" in result.output and "0 left" in result.output
    assert _snapshot(dataset) == before
    assert [path.name for path in quarantine.glob("apply-*")] == ["apply-0001.undone.jsonl"]
    assert_error(run("apply", "--undo", "--data", dataset), "no apply journal to undo")


def test_a_file_changed_since_the_decision_is_stale_and_invalid_rows_are_listed(dataset, tmp_path):
    decisions = _decisions(dataset, PLAN[:2], tmp_path / "d.csv", sha={"train/bees/b0.png": "0" * 64})
    with open(decisions, "a", encoding="utf-8") as handle:
        handle.write(f"../outside.png,remove,,{'1' * 64},x\ntrain/ants/a1.png,burn,,{'1' * 64},x\n")
        handle.write("train/ants/a1.png,remove,,not-a-digest,x\ntrain/ants/a1.png,relabel,../up," + "1" * 64 + ",x\n")
    result = run("apply", decisions, "--data", dataset, "--yes", env=WIDE)
    assert_ok(result)
    assert (dataset / "train/bees/b0.png").is_file() and (dataset / "train/bees/a0.png").is_file()
    assert "skipped line 3 train/bees/b0.png: stale" in result.output
    assert "line 4 ../outside.png: invalid row: the path is not a relative path" in result.output
    assert "'burn' is not one of" in result.output and "sha256 is not 64" in result.output
    assert "relabel needs a plain folder name" in result.output and "1 moved, 0 ignored, 5 skipped" in result.output


def test_the_reader_refuses_other_files_in_one_line_and_takes_off_the_formula_guard(tmp_path):
    other = tmp_path / "other.csv"
    other.write_text("path,label\na.png,ants\n")
    assert_error(run("apply", other, "--data", tmp_path), "is not a decisions file", "path,action,argument,sha256")
    out = tmp_path / "d.csv"
    write_decisions(out, [Decision("=cmd.png", "relabel", "+bees", "a" * 64, "@me")])
    assert out.read_text().splitlines()[1] == f"./=cmd.png,relabel,'+bees,{'a' * 64},'@me"
    decisions, invalid = read_decisions(out)
    assert invalid == [] and (decisions[0].path, decisions[0].argument, decisions[0].source) == (
        "=cmd.png",
        "+bees",
        "@me",
    )
    out.write_bytes(b"\xff\xfe")
    with pytest.raises(DecisionsError, match="not UTF-8"):
        read_decisions(out)


KILLER = """
import os, signal, sys
real, count = os.rename, [0]
def rename(source, target):
    count[0] += 1
    if count[0] == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    real(source, target)
os.rename = rename
from headstart.cli import main
sys.argv = ["headstart", "apply", sys.argv[1], "--data", sys.argv[2], "--yes"]
main()
"""


def test_a_kill_mid_apply_leaves_every_file_in_its_old_or_new_place_and_undo_restores_them(dataset, tmp_path):
    before = _snapshot(dataset)
    decisions = _decisions(dataset, PLAN[:4], tmp_path / "d.csv")
    script = tmp_path / "killer.py"
    script.write_text(textwrap.dedent(KILLER))
    done = subprocess.run([sys.executable, script, decisions, dataset], capture_output=True, timeout=120)
    assert done.returncode == -signal.SIGKILL
    quarantine = tmp_path / "data-quarantine"
    moves = {
        "train/ants/a0.png": dataset / "train/bees/a0.png",
        "train/bees/b0.png": quarantine / "train/bees/b0.png",
        "train/ants/a2.png": quarantine / "train/ants/a2.png",
        "train/bees/b1.png": dataset / "val/bees/b1.png",
    }
    places = {old: ((dataset / old).exists(), new.exists()) for old, new in moves.items()}
    assert all(at_old != at_new for at_old, at_new in places.values()), places  # one place each, never both or none
    assert [at_new for _, at_new in places.values()] == [True, True, False, False]  # killed before the third rename
    result = run("apply", "--undo", "--data", dataset)
    assert_ok(result)
    assert "2 files put back" in result.output
    assert _snapshot(dataset) == before
    assert not (quarantine / "train").exists()  # the folders apply made are gone
    assert [path.name for path in quarantine.iterdir()] == ["apply-0001.undone.jsonl"]


def test_extract_exclude_leaves_listed_images_out_without_moving_them(dataset, tmp_path):
    listed = tmp_path / "exclude.txt"
    listed.write_text("# left out\ntrain/ants/a0.png\n./val/bees/v1.png\n\nnot/there.png\n", encoding="utf-8")
    cache = tmp_path / "cache"
    result = run("extract", "--data", dataset, "--cache", cache, "--exclude", listed, *FAST)
    assert_ok(result)
    rows, _ = stored(cache)
    assert "train/ants/a0.png" not in rows and "val/bees/v1.png" not in rows and len(rows) == len(FILES) - 2
    assert (dataset / "train/ants/a0.png").is_file() and "2 image(s) left out by --exclude" in result.output
    listed.write_text("path,action\ntrain/bees/b0.png,remove\n", encoding="utf-8")  # a CSV with a path column
    assert_ok(run("extract", "--data", dataset, "--cache", cache, "--exclude", listed, *FAST))
    rows, _ = stored(cache)
    assert "train/bees/b0.png" not in rows and "train/ants/a0.png" in rows
    listed.write_text("../outside.png\n", encoding="utf-8")
    assert_error(run("extract", "--data", dataset, "--cache", cache, "--exclude", listed, *FAST), "line 1", "--data")


def test_after_apply_extract_recomputes_nothing_and_sees_the_new_classes_and_splits(dataset, tmp_path):
    cache = tmp_path / "cache"
    assert_ok(run("extract", "--data", dataset, "--cache", cache, *FAST))
    decisions = _decisions(dataset, [PLAN[0], PLAN[1], PLAN[3]], tmp_path / "d.csv")  # relabel, remove, move-split
    assert_ok(run("apply", decisions, "--data", dataset, "--yes"))
    result = run("extract", "--data", dataset, "--cache", cache, *FAST, env=WIDE)
    assert_ok(result)
    found = counts(result.output)  # images, extracted, reused, relabelled, skipped
    assert found["train"] == [4, 0, 4, 1, 0] and found["val"] == [3, 0, 3, 1, 0]
    rows, _ = stored(cache)
    assert rows["train/bees/a0.png"] == ("train", "bees") and rows["val/bees/b1.png"] == ("val", "bees")
    assert "train/bees/b0.png" not in rows and len(rows) == len(FILES) - 1


def test_a_class_folder_that_is_a_link_out_of_the_dataset_is_never_a_target(dataset, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (dataset / "train" / "wasps").symlink_to(outside, target_is_directory=True)
    decisions = _decisions(dataset, [("train/ants/a0.png", "relabel", "wasps")], tmp_path / "d.csv")
    result = run("apply", decisions, "--data", dataset, "--yes", env=WIDE)
    assert_ok(result)
    assert "leads outside the dataset" in result.output and (dataset / "train/ants/a0.png").is_file()
    assert list(outside.iterdir()) == []


def test_a_journal_killed_before_its_first_line_was_on_disk_moved_nothing_and_undo_takes_it(dataset, tmp_path):
    """Found while adding apply to the adversarial harness: SIGKILL between creating the journal and writing its
    header left an empty journal, and every later --undo refused it as "not an apply journal"."""
    quarantine = tmp_path / "data-quarantine"
    quarantine.mkdir()
    (quarantine / "apply-0001.jsonl").write_text('{"journal": 2, "produc')  # torn, or empty: nothing was moved
    before = _snapshot(dataset)
    result = run("apply", "--undo", "--data", dataset)
    assert_ok(result)
    assert "0 files put back" in result.output and _snapshot(dataset) == before
    assert [path.name for path in quarantine.iterdir()] == ["apply-0001.undone.jsonl"]
