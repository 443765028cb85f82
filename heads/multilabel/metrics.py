"""Multi-label scores with numpy: per-label precision, recall, F1 and average precision (as scikit-learn computes
them), mean average precision, micro and macro F1, subset accuracy, Hamming loss; and per-label F1-best thresholds.

A label with no positive row has no average precision (None); mAP is the mean over the labels that have one.
A row is predicted to carry a label when its probability is at least the label's threshold.
"""

from __future__ import annotations

import numpy as np


def _cuts(targets: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """At each distinct score, highest first: the score, and the true and false positives of `score >= it`."""
    order = np.argsort(-scores, kind="stable")
    ordered, hits = scores[order], targets[order].astype(np.float64)
    last = np.r_[np.flatnonzero(np.diff(ordered)), len(ordered) - 1]  # the last row of each run of equal scores
    true_positives = np.cumsum(hits)[last]
    return ordered[last], true_positives, (last + 1) - true_positives


def average_precision(targets: np.ndarray, scores: np.ndarray) -> float | None:
    """scikit-learn's average_precision_score of one label: sum over cuts of (recall step) x precision."""
    positives = float(np.sum(targets))
    if not len(targets) or positives == 0:
        return None
    _, true_positives, false_positives = _cuts(targets, scores)
    precision = true_positives / (true_positives + false_positives)
    recall = true_positives / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def best_thresholds(targets: np.ndarray, probabilities: np.ndarray, fallback: float = 0.5) -> np.ndarray:
    """Per label, the threshold with the best F1 on these rows (ties: the highest), placed halfway between the lowest
    score it keeps and the next score down; `fallback` for a label without positive rows."""
    thresholds = np.full(targets.shape[1], fallback, np.float64)
    for label in range(targets.shape[1]):
        positives = float(targets[:, label].sum())
        if positives == 0:
            continue
        scores, true_positives, false_positives = _cuts(targets[:, label], probabilities[:, label])
        f1 = 2 * true_positives / (true_positives + false_positives + positives)
        best = int(np.argmax(f1))
        below = scores[best + 1] if best + 1 < len(scores) else 0.0
        thresholds[label] = (scores[best] + below) / 2
    return thresholds


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (scikit-learn's zero_division=0)."""
    numerator, denominator = np.asarray(numerator, np.float64), np.asarray(denominator, np.float64)
    return np.where(denominator == 0, 0.0, numerator / np.where(denominator == 0, 1, denominator))


def multilabel_summary(
    targets: np.ndarray, probabilities: np.ndarray, thresholds: np.ndarray, classes: list[str]
) -> dict:
    """The scores of predicted sets (probability >= threshold) against the true ones: per label, then overall."""
    targets = np.asarray(targets, bool)
    predicted = probabilities >= np.asarray(thresholds)[None, :]
    true_positives = (predicted & targets).sum(0)
    predicted_count, support = predicted.sum(0), targets.sum(0)
    precision, recall = _divide(true_positives, predicted_count), _divide(true_positives, support)
    f1 = _divide(2 * true_positives, predicted_count + support)
    precisions = [average_precision(targets[:, label], probabilities[:, label]) for label in range(len(classes))]
    scored = [value for value in precisions if value is not None]
    per_label = {
        name: {
            "precision": float(precision[label]),
            "recall": float(recall[label]),
            "f1-score": float(f1[label]),
            "average_precision": precisions[label],
            "support": int(support[label]),
            "threshold": float(thresholds[label]),
        }
        for label, name in enumerate(classes)
    }
    return {
        "task": "multi-label",
        "rows": int(len(targets)),
        "mAP": float(np.mean(scored)) if scored else None,
        "micro_f1": float(_divide(2 * true_positives.sum(), predicted_count.sum() + support.sum())),
        "macro_f1": float(np.mean(f1)),
        "subset_accuracy": float(np.mean((predicted == targets).all(1))) if len(targets) else 0.0,
        "hamming_loss": float(np.mean(predicted != targets)) if len(targets) else 0.0,
        "labels": per_label,
        "classes": list(classes),
    }
