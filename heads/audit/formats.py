"""The audit's output files (CACHE/audit/). This docstring is their schema; bump FORMAT_VERSION on any change.

All files of one run are replaced together (features/atomic.py), audit.json last. Paths are relative to the
features file's data_root. Every CSV is written by the one CSV writer (features/files/csvfile.py): its header row first
(csv.reader and pandas.read_csv read it with defaults), a path starting with = + - @ written as ./<path>, any
other text cell starting so (a class name in given, suggested, nearest) with a leading apostrophe; floats have
6 decimals.

label_issues.csv   rows flagged by confident learning (Northcutt, Jiang & Chuang, "Confident Learning:
                   Estimating Uncertainty in Dataset Labels", JAIR 70, 2021): a row whose out-of-fold
                   probability of another class j reaches class j's threshold (the mean probability of j
                   over the train rows labelled j). Most suspicious first.
    path, split, given, suggested, self_confidence, normalized_margin, rank
        given / suggested   class names; suggested is the most probable of the classes over threshold
        self_confidence     p(given) out of fold (train) or from the head fitted on all of train (val, test)
        normalized_margin   p(given) - max over other classes p(j), in [-1, 1]
        rank                1 = most suspicious, by the score named in audit.json label_issues.score

duplicates.csv     pairs of images, each pair once (a's row comes before b's in features.h5, so across
                   splits split_a is train). Pairs across train and val/test (leakage) first, then exact
                   pairs, then by similarity, highest first.
    path_a, split_a, path_b, split_b, similarity, exact
        similarity   cosine similarity of the PCA-whitened features (heads/audit/duplicates.py)
        exact        1 when both files have the same sha256 (byte-identical), else 0

outliers.csv       rows far from every class, farthest first: score above the quantile of the train rows'
                   scores named in audit.json outliers.quantile.
    path, split, given, nearest, score, rank
        nearest      the class whose train mean is nearest (Mahalanobis distance)
        score        heads/audit/outliers.py's outlier_score: squared Mahalanobis distance to the
                     nearest class, train rows out of fold (higher: farther from every class)

audit.json         {"format_version", "producer": "headstart <version>", "created": ISO 8601 UTC,
                    "features": the features file, "classes", "counts": {split: rows},
                    "label_issues": {"score", "folds", "head", "flagged", "thresholds": {class: t}},
                    "duplicates": {"threshold", "exact_pairs", "near_pairs", "leakage_pairs", "listed",
                                   "not_listed"},
                    "outliers": {"quantile", "cutoff", "listed"},
                    "learning_curve": null, or {"sizes": [images per class], "seeds", "head",
                                    "accuracy": {"mean": [...], "std": [...]},
                                    "per_class": {class: {"mean": [...], "std": [...], "images": n}},
                                    "still_improving": [class, ...]},
                    "val_mistakes": the val rows the head fitted on all of train gets wrong, as a count,
                    "reading": how the rows were read: "read into memory (...)", or above the in-memory limit
                               "streamed in chunks (...); models fitted on a seeded stratified sample of N train
                               rows" (heads/audit/streamed.py: the models are the sample's, not all of train's),
                    "seconds"}
    learning_curve.png   the same curve, accuracy against images per class (log scale), mean and spread.
report.html        one self-contained page (heads/audit/html_report.py), thumbnails embedded.

On multi-label features (heads/audit/multilabel.py) audit.json is format 2 and label_issues.csv and
learning_curve.png are not written (an earlier run's are removed); in their place:

label_set_issues.csv   likely missing and extra labels, one row per (image, label), by confident learning per label
                   over out-of-fold probabilities against per-label thresholds. Most suspicious first.
    path, split, label, kind, given, probability, self_confidence, normalized_margin, rank
        label               the label in question (a class name)
        kind                "missing" (not given, likely present) or "extra" (given, likely absent)
        given               1 when the row was given the label, else 0
        probability         p(label present), out of fold (train) or from the models fitted on all of train
        self_confidence     p(the value given): probability for an extra label, 1 - probability for a missing one
        normalized_margin   p(the value given) - p(the other value), in [-1, 1]
        rank                1 = most suspicious, by the score named in audit.json label_set_issues.score

audit.json (format 2)  {"format_version": 2, "task": "multi-label", "producer", "created", "features", "classes",
                    "counts", "label_set_issues": {"score", "folds", "head", "flagged", "missing", "extra",
                    "thresholds": {label: {"absent": t0, "present": t1}}}, "duplicates": {as format 1},
                    "outliers": {as format 1}, "learning_curve": null, "val_mistakes": null, "seconds"}
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

from headstart.features.files.csvfile import CsvWriter, safe_path

FORMAT_VERSION = 1
MULTI_LABEL_VERSION = 2  # audit.json of multi-label features
LABEL_SET_ISSUES_FILE = "label_set_issues.csv"
LABEL_ISSUES_FILE = "label_issues.csv"
DUPLICATES_FILE = "duplicates.csv"
OUTLIERS_FILE = "outliers.csv"
AUDIT_FILE = "audit.json"
CURVE_FILE = "learning_curve.png"
REPORT_FILE = "report.html"

LABEL_ISSUE_COLUMNS = ["path", "split", "given", "suggested", "self_confidence", "normalized_margin", "rank"]
DUPLICATE_COLUMNS = ["path_a", "split_a", "path_b", "split_b", "similarity", "exact"]
OUTLIER_COLUMNS = ["path", "split", "given", "nearest", "score", "rank"]
LABEL_SET_ISSUE_COLUMNS = [
    *("path", "split", "label", "kind", "given", "probability", "self_confidence", "normalized_margin", "rank")
]
PATH_COLUMNS = {"path", "path_a", "path_b"}


def _cell(column: str, value) -> str:
    if column in PATH_COLUMNS:
        return safe_path(value)
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)


def write_csv(path: str | os.PathLike, columns: list[str], rows: Iterable[dict]) -> None:
    """One of the audit CSVs, to an open temporary path (the caller replaces the files together)."""
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = CsvWriter(handle, columns)
        for row in rows:
            writer.writerow([_cell(column, row[column]) for column in columns])


def write_json(path: str | os.PathLike, record: dict, version: int = FORMAT_VERSION) -> None:
    """audit.json, its format version first (MULTI_LABEL_VERSION for multi-label features)."""
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"format_version": version, **record}, handle, indent=2)


def read_audit(path: str | os.PathLike) -> dict:
    """audit.json, refused with a clear message when it is of another format version."""
    with open(path, encoding="utf-8") as handle:
        record = json.load(handle)
    if record.get("format_version") not in (FORMAT_VERSION, MULTI_LABEL_VERSION):
        raise ValueError(
            f"{path} is audit format {record.get('format_version')}; this headstart reads format "
            f"{FORMAT_VERSION} (and {MULTI_LABEL_VERSION}, multi-label): re-run `audit`"
        )
    return record
