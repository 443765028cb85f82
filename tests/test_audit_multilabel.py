"""heads/audit/multilabel.py and the audit command on multi-label features: planted missing and extra labels ranked
first by confident learning per label, label_set_issues.csv and audit.json format 2, the page, the stale
single-label files removed; duplicates and outliers as for single-label."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from cli_helpers import assert_ok, read_csv, run
from test_multilabel import CLASSES, planted, write_multilabel

from headstart.heads.audit.config import AuditConfig
from headstart.heads.audit.formats import LABEL_SET_ISSUE_COLUMNS, MULTI_LABEL_VERSION, read_audit
from headstart.heads.audit.multilabel import find_label_set_issues, label_probabilities
from headstart.heads.audit.result import EXTRA, MISSING
from headstart.heads.audit.rows import CachedRows


def planted_issues(seed: int = 0, val: int = 0) -> tuple[np.ndarray, np.ndarray, set[tuple[int, int]]]:
    """120 train rows (then `val` more, left alone) of well separated planted labels, in train 3 labels cleared and 3
    set by mistake; the given sets and the planted (row, label) pairs."""
    features, truth = planted(120 + val, seed=seed, labels=3)
    given = truth.copy()
    rng = np.random.default_rng(seed)
    positives, negatives = np.argwhere(truth[:120] == 1), np.argwhere(truth[:120] == 0)
    flipped = [*positives[rng.choice(len(positives), 3, replace=False)]]
    flipped += [*negatives[rng.choice(len(negatives), 3, replace=False)]]
    for row, label in flipped:
        given[row, label] ^= 1
    return features, given, {(int(row), int(label)) for row, label in flipped}


def as_rows(features: np.ndarray, given: np.ndarray) -> CachedRows:
    count = len(given)
    return CachedRows(
        features=features,
        labels=np.where(given.any(1), given.argmax(1), -1).astype(np.int64),
        split=np.array(["train"] * count),
        paths=[f"{row}.jpg" for row in range(count)],
        sha256=[f"{row:064x}" for row in range(count)],
        classes=list(CLASSES),
        data_root=Path("."),
        header=None,  # type: ignore[arg-type]
        label_sets=given.astype(np.uint8),
    )


def test_planted_missing_and_extra_labels_are_ranked_first():
    for seed in (0, 1):
        features, given, flipped = planted_issues(seed)
        rows = as_rows(features, given)
        probabilities = label_probabilities(rows, AuditConfig(folds=4))
        issues = find_label_set_issues(probabilities, given, rows.where("train"))
        top = {(int(row), int(label)) for row, label in zip(issues.rows[:12], issues.labels[:12])}
        assert flipped <= top  # every planted pair within the first 2 x planted
        for index, (row, label) in enumerate(zip(issues.rows, issues.labels)):
            assert issues.kind(index) == (EXTRA if given[row, label] else MISSING)
            expected = probabilities[row, label] if given[row, label] else 1 - probabilities[row, label]
            assert issues.self_confidence[index] == np.float64(expected)
        assert list(issues.self_confidence) == sorted(issues.self_confidence)


def test_the_audit_command_writes_the_multi_label_files(tmp_path):
    features, given, flipped = planted_issues(2, val=30)
    cache = tmp_path / "cache"
    write_multilabel(cache, {"train": (features[:120], given[:120]), "val": (features[120:], given[120:])})
    (cache / "audit").mkdir()
    (cache / "audit" / "label_issues.csv").write_text("path\nstale.jpg\n")  # an earlier single-label run's
    result = run("audit", "--cache", cache, "--folds", "4")
    assert_ok(result)
    printed = " ".join(result.output.split())
    assert "possible label-set issues" in printed and "label_set_issues.csv" in printed
    folder = cache / "audit"
    assert not (folder / "label_issues.csv").exists() and not (folder / "learning_curve.png").exists()
    table = read_csv(folder / "label_set_issues.csv")
    assert list(table[0]) == LABEL_SET_ISSUE_COLUMNS
    top = {(int(row["path"].split("/")[1].split(".")[0]), CLASSES.index(row["label"])) for row in table[:12]}
    assert len(flipped & top) >= 5 and [row["rank"] for row in table[:3]] == ["1", "2", "3"]
    for row in table:
        assert row["kind"] == ("extra" if row["given"] == "1" else "missing")
    record = read_audit(folder / "audit.json")
    assert record["format_version"] == MULTI_LABEL_VERSION and record["task"] == "multi-label"
    issues = record["label_set_issues"]
    assert issues["flagged"] == len(table) and issues["missing"] + issues["extra"] == len(table)
    assert set(issues["thresholds"]) == set(CLASSES) and record["counts"] == {"train": 120, "val": 30}
    assert record["learning_curve"] is None and record["duplicates"]["listed"] > 0
    outliers = read_csv(folder / "outliers.csv")
    assert all(set(row["given"].split("|")) <= {"", *CLASSES} for row in outliers)
    page = (folder / "report.html").read_text()
    assert "Likely missing and extra labels" in page and "Duplicates and leakage" in page and "Outliers" in page
    assert json.loads((folder / "audit.json").read_text())["format_version"] == 2
