"""audit on multi-label features: likely missing and extra labels per (image, label), by confident learning per label.

Each label is its own binary task. Its probabilities come from a model that never saw the row: out of fold over
train (folds stratified by each row's lowest label, as train-head's thresholds are), val and test from the model fitted
on all of train; the model is the audit's head (`--head logreg`, the default: one scikit-learn logistic regression per
label, a label constant in a fold's rows gets that fold's rate; `--head sgd`: heads/multilabel/train.py's head).
Per label, confident learning (Northcutt, Jiang & Chuang, JAIR 70, 2021; heads/audit/label_issues.py) on the two
classes "absent" and "present": t1 is the mean probability over the train rows given the label, t0 the mean of
1 - p over the train rows not given it. A row not given the label whose p reaches t1 (and beats its absence) is a
likely **missing** label; a row given it whose 1 - p reaches t0 is a likely **extra** label. Every flagged
(image, label) pair of every label is then ranked together by its self-confidence (the probability of the value given:
p for an extra label, 1 - p for a missing one; lowest first), or by the normalized margin (p(given) - p(other)).

The rest of the audit is the single-label one: duplicates and leakage (label-free), outliers (the class-conditional
distance with each row's lowest label as its class; rows without a label are scored, never fitted). Not computed on
multi-label features yet: the learning curve, val's confidently wrong images and the dataset map.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from headstart.heads.audit.config import AuditConfig
from headstart.heads.audit.duplicates import find_duplicates
from headstart.heads.audit.label_issues import LabelIssues, class_thresholds, find_label_issues
from headstart.heads.audit.outliers import outlier_score
from headstart.heads.audit.result import AuditResult, LabelSetIssues, Outliers
from headstart.heads.audit.rows import CachedRows
from headstart.heads.config import TrainConfig
from headstart.heads.kfold import out_of_fold, stratified_folds


def _fit_predict(train_x: torch.Tensor, train_y: torch.Tensor, x: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    """Per-label probabilities (len(x), C) from models fitted on (train_x, train_y) as the audit's head is."""
    if config.head != "logreg":
        from headstart.heads.multilabel.train import probabilities, train_multilabel

        return torch.from_numpy(probabilities(train_multilabel((train_x, train_y), None, config).head, x))
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    targets, columns = train_y.numpy(), []
    with threadpool_limits(limits=1):  # one BLAS thread: a D x 1 model gains nothing from a pool
        for label in range(targets.shape[1]):
            column = targets[:, label]
            if column.min() == column.max():  # one value in these rows: no model, the rate
                columns.append(np.full(len(x), float(column.mean())))
                continue
            weight = None if config.class_weight == "none" else config.class_weight
            model = LogisticRegression(C=config.c, class_weight=weight, max_iter=2000, random_state=config.seed)
            columns.append(model.fit(train_x.numpy(), column).predict_proba(x.numpy())[:, 1])
    return torch.from_numpy(np.stack(columns, 1).astype(np.float32))


def label_probabilities(rows: CachedRows, config: AuditConfig) -> np.ndarray:
    """(N, C) p(label present): out of fold for the train rows, the rest from the models fitted on all of train."""
    assert rows.label_sets is not None
    train, rest = rows.where("train"), np.flatnonzero(rows.split != "train")
    if len(train) < config.folds:
        raise ValueError(
            f"{len(train)} train rows, fewer than the {config.folds} folds: use --folds {max(2, len(train))} or "
            "add images"
        )
    x, y = torch.from_numpy(rows.features), torch.from_numpy(rows.label_sets.astype(np.float32))
    folds = stratified_folds(rows.label_sets[train].argmax(1), config.folds, config.train.seed)
    probabilities = np.zeros(rows.label_sets.shape, np.float32)
    probabilities[train] = out_of_fold(
        x[train], y[train], folds, lambda tx, ty, hx: _fit_predict(tx, ty, hx, config.train)
    ).numpy()
    if len(rest):
        probabilities[rest] = _fit_predict(x[train], y[train], x[rest], config.train).numpy()
    return probabilities


def find_label_set_issues(
    probabilities: np.ndarray, targets: np.ndarray, train: np.ndarray, score: str = "self_confidence"
) -> LabelSetIssues:
    """Confident learning per label (the module docstring); the flagged pairs of every label ranked together."""
    found: list[tuple[np.ndarray, ...]] = []
    thresholds = np.zeros((targets.shape[1], 2))
    for label in range(targets.shape[1]):
        present = probabilities[:, label].astype(np.float64)
        binary, given = np.stack([1 - present, present], 1), targets[:, label].astype(np.int64)
        thresholds[label] = class_thresholds(binary[train], given[train])
        issues: LabelIssues = find_label_issues(binary, given, thresholds[label], score)
        labels = np.full(len(issues.rows), label, np.int64)
        found.append((issues.rows, labels, issues.self_confidence, issues.normalized_margin))
    rows, labels, confidence, margin = (np.concatenate(parts) for parts in zip(*found))
    ranking = confidence if score == "self_confidence" else margin
    order = np.lexsort((labels, rows, ranking))
    rows, labels = rows[order].astype(np.int64), labels[order]
    given = targets[rows, labels].astype(np.uint8)
    return LabelSetIssues(
        rows,
        labels,
        given,
        probabilities[rows, labels].astype(np.float64),
        confidence[order],
        margin[order],
        thresholds,
    )


def _outliers(rows: CachedRows, quantile: float) -> Outliers:
    """The single-label outliers with each row's lowest label as its class, fitted on the train rows with a label."""
    fitted = np.flatnonzero((rows.split == "train") & (rows.labels >= 0))
    score, nearest = outlier_score(rows.features, np.maximum(rows.labels, 0), fitted)
    cutoff = float(np.quantile(score[fitted], quantile))
    listed = np.flatnonzero(score > cutoff)
    listed = listed[np.lexsort((listed, -score[listed]))]
    return Outliers(listed, score[listed], nearest[listed], cutoff)


def _no_issues() -> LabelIssues:
    empty = np.zeros(0, np.int64)
    return LabelIssues(empty, empty, np.zeros(0), np.zeros(0), np.zeros(0))


def audit_multilabel(
    rows: CachedRows, config: AuditConfig, cache: Path, stage: Callable[[str], Callable[[int, int], None] | None]
) -> AuditResult:
    """The multi-label audit's findings (the module docstring); stage(name) is a step's progress callback."""
    from headstart.features.files.cachedir import AUDIT_DIR

    progress = stage("label issues")
    if progress:
        progress(0, 1)
    assert rows.label_sets is not None
    probabilities = label_probabilities(rows, config)
    issues = find_label_set_issues(probabilities, rows.label_sets, rows.where("train"), config.score)
    if progress:
        progress(1, 1)
    pairs = find_duplicates(
        rows.features,
        rows.sha256,
        rows.split,
        len(rows.where("train")),
        config.near_threshold,
        config.max_pairs,
        on_progress=stage("duplicates"),
        index_min_rows=config.index_min_rows,
    )
    result = AuditResult(cache / AUDIT_DIR, _no_issues(), pairs, _outliers(rows, config.outlier_quantile), None, [])
    result.label_set_issues = issues
    return result
