"""The audit step: cached features -> label issues, duplicates, outliers, learning curve -> CACHE/audit/.

A runner that only chains the roles: each step is its own module, this file reads the cache once,
calls them in turn and writes every output together.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from features import FEATURES_FILE, StoreError, __version__, cache_lock
from features.atomic import replace_together

from . import formats
from .config import AuditConfig
from .duplicates import Pairs, find_duplicates
from .label_issues import LabelIssues, class_thresholds, find_label_issues
from .learning_curve import LearningCurve, learning_curve, plot_learning_curve
from .outliers import outlier_score
from .page import audit_page
from .probabilities import fit_and_predict, out_of_fold_probabilities
from .rows import CachedRows, load_rows

Progress = Callable[[str, int, int], None]


@dataclass
class Outliers:
    rows: np.ndarray  # farthest first
    score: np.ndarray
    nearest: np.ndarray
    cutoff: float


@dataclass
class AuditResult:
    folder: Path
    label_issues: LabelIssues
    pairs: Pairs
    outliers: Outliers
    curve: LearningCurve | None
    val_mistakes: list[tuple[int, int, float]]  # (row, predicted, confidence), most confident first
    record: dict = field(default_factory=dict)  # audit.json
    summary_lines: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    curve_note: str = ""
    seconds: float = 0.0


def _stage(on_progress: Progress | None, stage: str) -> Callable[[int, int], None] | None:
    """A step's callback(done, total) reporting to the audit's callback(stage, done, total)."""
    return None if on_progress is None else lambda done, total: on_progress(stage, done, total)


def _probabilities(rows: CachedRows, config: AuditConfig, on_progress: Progress | None) -> np.ndarray:
    """Out of fold for train rows; val and test from the head fitted on all of train."""
    train, rest = rows.where("train"), np.flatnonzero(rows.split != "train")
    num_classes = len(rows.classes)
    progress = _stage(on_progress, "label issues")
    if progress:
        progress(0, 1)
    probabilities = np.zeros((len(rows), num_classes), np.float32)
    probabilities[train] = out_of_fold_probabilities(rows.features[train], rows.labels[train], num_classes,
                                                     config.train, config.folds)
    if len(rest):
        probabilities[rest] = fit_and_predict(torch.from_numpy(rows.features[train]),
                                              torch.from_numpy(rows.labels[train]),
                                              torch.from_numpy(rows.features[rest]), num_classes, config.train).numpy()
    if progress:
        progress(1, 1)
    return probabilities


def _outliers(rows: CachedRows, quantile: float) -> Outliers:
    train = rows.where("train")
    score, nearest = outlier_score(rows.features[train], rows.labels[train], rows.features, len(rows.classes))
    cutoff = float(np.quantile(score[train], quantile))
    listed = np.flatnonzero(score > cutoff)
    listed = listed[np.lexsort((listed, -score[listed]))]
    return Outliers(listed, score[listed], nearest[listed], cutoff)


def _val_mistakes(rows: CachedRows, probabilities: np.ndarray) -> list[tuple[int, int, float]]:
    val = rows.where("val")
    guesses = probabilities[val].argmax(1)
    wrong = val[guesses != rows.labels[val]]
    mistakes = [(int(row), int(probabilities[row].argmax()), float(probabilities[row].max())) for row in wrong]
    return sorted(mistakes, key=lambda item: (-item[2], rows.paths[item[0]]))


def _describe(result: AuditResult, rows: CachedRows, config: AuditConfig, features_path: Path) -> None:
    """audit.json's record, the summary lines and the warnings shown by the CLI and the page."""
    pairs, issues = result.pairs, result.label_issues
    leakage = int(pairs.leakage.sum())
    curve = result.curve.to_dict(rows.classes, config.train.head) if result.curve else None
    result.record = {
        "producer": f"headstart {__version__}", "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "features": str(features_path), "classes": rows.classes, "counts": rows.counts,
        "label_issues": {"score": config.score, "folds": config.folds, "head": config.train.to_dict(),
                         "flagged": len(issues.rows),
                         "thresholds": {c: round(float(t), 6) for c, t in zip(rows.classes, issues.thresholds)}},
        "duplicates": {"threshold": config.near_threshold, "exact_pairs": int(pairs.exact.sum()),
                       "near_pairs": int((~pairs.exact).sum()), "leakage_pairs": leakage, "listed": len(pairs),
                       "not_listed": pairs.not_listed},
        "outliers": {"quantile": config.outlier_quantile, "cutoff": round(result.outliers.cutoff, 6),
                     "listed": len(result.outliers.rows)},
        "learning_curve": curve, "val_mistakes": len(result.val_mistakes),
    }
    if leakage:
        result.warnings.append(f"leakage: {leakage} image pairs are in train and in val/test "
                               f"({int((pairs.exact & pairs.leakage).sum())} exact copies); see {formats.DUPLICATES_FILE}")
    result.summary_lines = [
        f"{len(issues.rows)} possible label issues, {int(pairs.exact.sum())} exact and {int((~pairs.exact).sum())} "
        f"near-duplicate pairs (whitened cosine >= {config.near_threshold}), {len(result.outliers.rows)} outliers.",
    ]
    if curve is None:
        result.curve_note = "no val rows: no learning curve"
    else:
        improving = curve["still_improving"]
        result.curve_note = (f"still improving with all their images: {', '.join(improving)} — more images should "
                             "help these classes" if improving else
                             "no class is still improving with all its images: cleaning labels beats collecting more")
        result.summary_lines.append(result.curve_note)


def audit_cache(config: AuditConfig = AuditConfig(), on_progress: Progress | None = None) -> AuditResult:
    """Audit CACHE/features.h5 and write CACHE/audit/ (its files replaced together, audit.json last)."""
    started = time.perf_counter()
    cache = Path(config.cache)
    features_path = cache / FEATURES_FILE
    if not cache.is_dir():  # checked before taking the lock, which would create the folder
        raise StoreError(f"{features_path} does not exist: run `extract` first")
    with cache_lock(cache, "audit"):
        rows = load_rows(features_path)
        probabilities = _probabilities(rows, config, on_progress)
        train = rows.where("train")
        thresholds = class_thresholds(probabilities[train], rows.labels[train])
        issues = find_label_issues(probabilities, rows.labels, thresholds, config.score)
        pairs = find_duplicates(rows.features, rows.sha256, rows.split, len(train),
                                config.near_threshold, config.max_pairs, on_progress=_stage(on_progress, "duplicates"))
        outliers = _outliers(rows, config.outlier_quantile)
        val = rows.where("val")
        curve = None
        if len(val):
            curve = learning_curve(rows.features[train], rows.labels[train], rows.features[val], rows.labels[val],
                                   len(rows.classes), config.train, config.curve_seeds,
                                   _stage(on_progress, "learning curve"))
        result = AuditResult(cache / formats.AUDIT_DIR, issues, pairs, outliers, curve,
                             _val_mistakes(rows, probabilities))
        _describe(result, rows, config, features_path)
        result.record["seconds"] = round(time.perf_counter() - started, 3)
        _write(result, rows, config, cache)
    result.seconds = time.perf_counter() - started
    return result


def _label_issue_rows(result: AuditResult, rows: CachedRows):
    issues = result.label_issues
    for rank, (row, suggested, confidence, margin) in enumerate(
            zip(issues.rows, issues.suggested, issues.self_confidence, issues.normalized_margin), start=1):
        yield {"path": rows.paths[row], "split": rows.split[row], "given": rows.classes[rows.labels[row]],
               "suggested": rows.classes[suggested], "self_confidence": float(confidence),
               "normalized_margin": float(margin), "rank": rank}


def _duplicate_rows(pairs: Pairs, rows: CachedRows):
    for a, b, similarity, exact in zip(pairs.a, pairs.b, pairs.similarity, pairs.exact):
        yield {"path_a": rows.paths[a], "split_a": rows.split[a], "path_b": rows.paths[b], "split_b": rows.split[b],
               "similarity": float(similarity), "exact": bool(exact)}


def _outlier_rows(outliers: Outliers, rows: CachedRows):
    for rank, (row, score, nearest) in enumerate(zip(outliers.rows, outliers.score, outliers.nearest), start=1):
        yield {"path": rows.paths[row], "split": rows.split[row], "given": rows.classes[rows.labels[row]],
               "nearest": rows.classes[nearest], "score": float(score), "rank": rank}


def _write(result: AuditResult, rows: CachedRows, config: AuditConfig, cache: Path) -> None:
    folder = result.folder
    curve_file = [formats.CURVE_FILE] if result.curve is not None else []
    names = [formats.LABEL_ISSUES_FILE, formats.DUPLICATES_FILE, formats.OUTLIERS_FILE, *curve_file,
             formats.REPORT_FILE, formats.AUDIT_FILE]
    with replace_together(*(folder / name for name in names)) as temporaries:
        paths = dict(zip(names, temporaries))
        formats.write_csv(paths[formats.LABEL_ISSUES_FILE], formats.LABEL_ISSUE_COLUMNS, _label_issue_rows(result, rows))
        formats.write_csv(paths[formats.DUPLICATES_FILE], formats.DUPLICATE_COLUMNS, _duplicate_rows(result.pairs, rows))
        formats.write_csv(paths[formats.OUTLIERS_FILE], formats.OUTLIER_COLUMNS, _outlier_rows(result.outliers, rows))
        curve_png = None
        if result.curve is not None:
            plot_learning_curve(result.curve, rows.classes, paths[formats.CURVE_FILE])
            curve_png = paths[formats.CURVE_FILE].read_bytes()
        paths[formats.REPORT_FILE].write_text(
            audit_page(result, rows, cache, config.report_rows, config.thumbnail_size, curve_png), encoding="utf-8")
        formats.write_json(paths[formats.AUDIT_FILE], result.record)
