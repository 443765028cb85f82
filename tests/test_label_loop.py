"""The labelling loop end to end (issue 26's done-when), on planted data: extract -> audit -> choose in report.html
in Chromium -> the button's decisions.csv -> apply --yes -> extract recomputes nothing and the next audit no longer
reports what was acted on -> apply --undo restores the dataset byte for byte."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_ok, read_csv, run
from PIL import Image
from test_audit import CHROMIUM, CHROMIUM_ARGS
from test_sources import FAST, counts, small_inputs  # noqa: F401 (small_inputs: autouse, 32-pixel inputs)

from headstart.features.decisions.formats import read_decisions

WIDE = {"COLUMNS": "300"}
# Plain colour fields: what a random-init backbone (no ImageNet weights here) tells apart reliably. The planted
# wrong label is a red (ants) image filed under bees, so its out-of-fold probability for bees is near 0 whatever the
# random weights; tests/planted.py's shapes on grey ramps were not found at these sizes with `--weights none`.
COLOURS = {"ants": (200, 40, 40), "bees": (40, 60, 200)}
WRONG, COPY, ORIGINAL = "train/bees/planted_wrong.png", "train/ants/copy_of_val.png", "val/ants/ants_0.png"


def _image(path: Path, colour: str, rng: np.random.Generator) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.array(COLOURS[colour]) * rng.uniform(0.7, 1.1) + rng.normal(0, 20, (40, 40, 3))
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)


def _planted(data: Path) -> None:
    """10 train and 3 val images a class, one wrong label, one val image copied into train, an unlabeled pool."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 10), ("val", 3)):
        for colour in COLOURS:
            for index in range(count):
                _image(data / split / colour / f"{colour}_{index}.png", colour, rng)
    _image(data / WRONG, "ants", rng)
    shutil.copyfile(data / ORIGINAL, data / COPY)
    for index in range(4):
        _image(data / "unlabeled" / f"u{index}.png", list(COLOURS)[index % 2], rng)


def _tree_hash(root: Path) -> str:
    """Every path under root, each file's bytes and each folder, in one digest."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(b"<folder>" if path.is_dir() else hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _choose_in_chromium(report: Path, saved: Path) -> str:
    """Relabel the planted wrong label, drop the copy's pair; the button's download saved; the page's text."""
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(accept_downloads=True)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(report.resolve().as_uri(), wait_until="load")
            page.select_option(f'select.hs-choice[data-path="{WRONG}"]', label="relabel to ants")
            page.select_option(f'select.hs-choice[data-path="{ORIGINAL}"]', label="drop b, a copy of a")
            with page.expect_download() as waiting:
                page.click("#hs-save")
            waiting.value.save_as(saved)
            text = page.inner_text("body")
        finally:
            browser.close()
    assert errors == []
    return text


def test_audit_choose_in_the_page_apply_extract_audit_and_undo(tmp_path):
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (the report is tested in a real browser)")
    data, cache = tmp_path / "data", tmp_path / "cache"
    _planted(data)
    extract = ("extract", "--data", data, "--pool", data / "unlabeled", "--cache", cache, *FAST)
    audit = ("audit", "--cache", cache, "--folds", 2, "--curve-seeds", 1)
    assert_ok(run(*extract, env=WIDE))
    assert_ok(run(*audit, env=WIDE))
    issues = read_csv(cache / "audit" / "label_issues.csv")
    assert [(row["path"], row["suggested"]) for row in issues] == [(WRONG, "ants")]
    pairs = read_csv(cache / "audit" / "duplicates.csv")
    assert [(row["path_a"], row["path_b"], row["exact"]) for row in pairs] == [(COPY, ORIGINAL, "1")]

    saved = tmp_path / "decisions.csv"
    text = _choose_in_chromium(cache / "audit" / "report.html", saved)
    assert "NOT pretrained" in text  # random-init features: the page says so
    decisions, invalid = read_decisions(saved)
    assert invalid == [] and [(d.path, d.action, d.argument) for d in decisions] == [
        (WRONG, "relabel", "ants"),
        (ORIGINAL, "duplicate-of", COPY),
    ]

    before = _tree_hash(data)
    assert_ok(run("apply", saved, "--cache", cache, "--yes", env=WIDE))  # --data: the one features.h5 records
    assert (data / "train/ants/planted_wrong.png").is_file() and not (data / ORIGINAL).exists()
    assert (tmp_path / "data-quarantine" / ORIGINAL).is_file()
    result = run(*extract, env=WIDE)
    assert_ok(result)
    assert counts(result.output) == {"train": [22, 0, 22, 1, 0], "val": [5, 0, 5, 0, 0]}  # nothing recomputed
    assert_ok(run(*audit, env=WIDE))
    reported = {row["path"] for row in read_csv(cache / "audit" / "label_issues.csv")}
    assert not reported & {WRONG, "train/ants/planted_wrong.png"}
    paired = {(row["path_a"], row["path_b"]) for row in read_csv(cache / "audit" / "duplicates.csv")}
    assert not any(ORIGINAL in pair for pair in paired)

    result = run("apply", "--undo", "--cache", cache, env=WIDE)
    assert_ok(result)
    assert "2 files put back" in result.output and _tree_hash(data) == before
