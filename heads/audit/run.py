"""The audit step: cached features -> label issues, duplicates, outliers, learning curve -> CACHE/audit/.

A runner that only chains the roles: each step is its own module; this file reads the cache once, calls
them in turn, and hands the result to summary.py (audit.json, the lines shown) and writer.py (the files). Above the
in-memory limit (features/chunks.py) a single-label cache is audited by streamed.py instead (a multi-label one is
refused); either way audit.json's `reading` says which.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from headstart.features import FeatureStore, StoreError, cache_lock
from headstart.features.chunks import ReadingPlan, reading_plan
from headstart.features.files.cachedir import AUDIT_DIR, chosen_features
from headstart.heads.audit.config import AuditConfig
from headstart.heads.audit.duplicates import find_duplicates
from headstart.heads.audit.label_issues import class_thresholds, find_label_issues
from headstart.heads.audit.learning_curve import learning_curve
from headstart.heads.audit.outliers import outlier_score
from headstart.heads.audit.probabilities import fit_and_predict, out_of_fold_probabilities
from headstart.heads.audit.result import AuditResult, Outliers
from headstart.heads.audit.rows import CachedRows, load_rows
from headstart.heads.audit.summary import describe
from headstart.heads.audit.writer import write_audit
from headstart.heads.pages.map import DatasetMap, dataset_map

Progress = Callable[[str, int, int], None]


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
    probabilities[train] = out_of_fold_probabilities(
        rows.features[train], rows.labels[train], num_classes, config.train, config.folds
    )
    if len(rest):
        probabilities[rest] = fit_and_predict(
            torch.from_numpy(rows.features[train]),
            torch.from_numpy(rows.labels[train]),
            torch.from_numpy(rows.features[rest]),
            num_classes,
            config.train,
        ).numpy()
    if progress:
        progress(1, 1)
    return probabilities


def _outliers(rows: CachedRows, quantile: float) -> Outliers:
    train = rows.where("train")
    score, nearest = outlier_score(rows.features, rows.labels, train)
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


def _map(rows: CachedRows, config: AuditConfig, on_progress: Progress | None) -> DatasetMap | None:
    """report.html's map of the rows: a stratified sample by split and class, placed by t-SNE."""
    if config.map_points <= 0:
        return None
    progress = _stage(on_progress, "map")
    if progress:
        progress(0, 1)
    strata = np.char.add(np.char.add(rows.split.astype(str), "/"), rows.labels.astype(str))
    placed = dataset_map(rows.features, strata, config.map_points, config.map_seed)
    if progress:
        progress(1, 1)
    return placed


def refuse_above_limit(features_path: Path) -> None:
    """A multi-label audit holds every labelled row (its per-label out-of-fold fits, the outlier scores): above the
    in-memory limit (features/chunks.py) it refuses, naming the alternative, before anything is written. A
    single-label one streams instead (heads/audit/streamed.py)."""
    with FeatureStore(features_path) as store:
        plan = reading_plan(store)
        multi_label = store.header.multi_label
    if multi_label:
        plan.refuse(
            "a multi-label audit (its per-label out-of-fold fits and outlier scores)",
            f"audit a sample: extract at most {plan.limit_rows:,} labelled images into another --cache and audit that",
        )


def _reading(plan: ReadingPlan, sample: int | None = None) -> str:
    """audit.json's `reading` and the console's line: which path the rows took, and the streamed models' sample."""
    if sample is None:
        return plan.describe()
    return f"{plan.describe()}; models fitted on a seeded stratified sample of {sample:,} train rows"


def _audit_streamed(
    plan: ReadingPlan,
    config: AuditConfig,
    cache: Path,
    features_path: Path,
    on_progress: Progress | None,
    started: float,
) -> AuditResult:
    from headstart.heads.audit.streamed import audit_streamed

    with FeatureStore(features_path) as store:
        result, rows, sample = audit_streamed(store, plan, config, cache / AUDIT_DIR, on_progress)
    describe(result, rows, config, features_path)  # type: ignore[arg-type]  # ListedRows: the columns describe reads
    _record_reading(result, _reading(plan, sample))
    result.record["seconds"] = round(time.perf_counter() - started, 3)
    write_audit(result, rows, config, cache)  # type: ignore[arg-type]
    result.seconds = time.perf_counter() - started
    return result


def _record_reading(result: AuditResult, reading: str) -> None:
    result.record["reading"] = reading
    result.summary_lines.append(f"features {reading}")


def audit_cache(config: AuditConfig = AuditConfig(), on_progress: Progress | None = None) -> AuditResult:
    """Audit the cache's features (config.backbone's when it holds several) and write CACHE/audit/ (its files
    replaced together, audit.json last)."""
    started = time.perf_counter()
    cache = Path(config.cache)
    features_path = chosen_features(cache, config.backbone)
    if not cache.is_dir():  # checked before taking the lock, which would create the folder
        raise StoreError(f"{features_path} does not exist: run `extract` first")
    with cache_lock(cache, "audit"):
        refuse_above_limit(features_path)
        with FeatureStore(features_path) as store:
            plan = reading_plan(store)
        if plan.streamed:
            return _audit_streamed(plan, config, cache, features_path, on_progress, started)
        rows = load_rows(features_path)
        if rows.label_sets is not None:  # multi-label features: missing and extra labels (heads/audit/multilabel.py)
            return _audit_multilabel(rows, config, cache, features_path, on_progress, started)
        probabilities = _probabilities(rows, config, on_progress)
        train = rows.where("train")
        thresholds = class_thresholds(probabilities[train], rows.labels[train])
        issues = find_label_issues(probabilities, rows.labels, thresholds, config.score)
        pairs = find_duplicates(
            rows.features,
            rows.sha256,
            rows.split,
            len(train),
            config.near_threshold,
            config.max_pairs,
            on_progress=_stage(on_progress, "duplicates"),
            index_min_rows=config.index_min_rows,
        )
        outliers = _outliers(rows, config.outlier_quantile)
        val = rows.where("val")
        curve = None
        if len(val):
            curve = learning_curve(
                rows.features[train],
                rows.labels[train],
                rows.features[val],
                rows.labels[val],
                len(rows.classes),
                config.train,
                config.curve_seeds,
                _stage(on_progress, "learning curve"),
            )
        result = AuditResult(cache / AUDIT_DIR, issues, pairs, outliers, curve, _val_mistakes(rows, probabilities))
        result.dataset_map = _map(rows, config, on_progress)
        describe(result, rows, config, features_path)
        _record_reading(result, _reading(plan))
        result.record["seconds"] = round(time.perf_counter() - started, 3)
        write_audit(result, rows, config, cache)
    result.seconds = time.perf_counter() - started
    return result


def _audit_multilabel(
    rows: CachedRows,
    config: AuditConfig,
    cache: Path,
    features_path: Path,
    on_progress: Progress | None,
    started: float,
) -> AuditResult:
    from headstart.heads.audit.multilabel import audit_multilabel
    from headstart.heads.audit.summary import describe_multilabel
    from headstart.heads.audit.writer import write_multilabel_audit

    result = audit_multilabel(rows, config, cache, lambda stage: _stage(on_progress, stage))
    describe_multilabel(result, rows, config, features_path)
    result.record["seconds"] = round(time.perf_counter() - started, 3)
    write_multilabel_audit(result, rows, config, cache)
    result.seconds = time.perf_counter() - started
    return result
