"""Per-class scores and the confusion matrix of a labelled set, computed with numpy as scikit-learn computes them.

scikit-learn's classification_report would import scipy (about a second) for arithmetic on a C x C matrix;
tests/test_report.py checks that this gives scikit-learn's report, value for value.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def _divide(numerator: npt.ArrayLike, denominator: npt.ArrayLike) -> np.ndarray:
    """numerator / denominator in float64, 0 where the denominator is 0 (scikit-learn's zero_division=0)."""
    denominator = np.asarray(denominator, dtype=np.float64)
    return np.where(
        denominator == 0, 0.0, np.asarray(numerator, dtype=np.float64) / np.where(denominator == 0, 1, denominator)
    )


def _scores(precision, recall, f1, support) -> dict[str, float]:
    return {"precision": float(precision), "recall": float(recall), "f1-score": float(f1), "support": float(support)}


def classification_summary(labels: np.ndarray, predicted: np.ndarray, classes: list[str]) -> dict:
    """accuracy, scikit-learn's classification report (as its output_dict, zero_division=0) and the confusion
    matrix (rows: true class)."""
    count = len(classes)
    labels, predicted = np.asarray(labels, dtype=np.int64), np.asarray(predicted, dtype=np.int64)
    confusion = np.bincount(labels * count + predicted, minlength=count * count).reshape(count, count)
    hits, support, predicted_count = np.diag(confusion), confusion.sum(1), confusion.sum(0)
    precision, recall = _divide(hits, predicted_count), _divide(hits, support)
    f1 = _divide(2.0 * hits, support + predicted_count)
    report: dict[str, dict[str, float] | float] = {
        name: _scores(*row) for name, *row in zip(classes, precision, recall, f1, support)
    }
    report["accuracy"] = float(_divide(hits.sum(), len(labels)))
    report["macro avg"] = _scores(np.mean(precision), np.mean(recall), np.mean(f1), support.sum())
    weights = support if support.sum() else None  # scikit-learn's unweighted fallback when nothing has support
    weighted = [np.average(values, weights=weights) for values in (precision, recall, f1)]
    report["weighted avg"] = _scores(weighted[0], weighted[1], weighted[2], support.sum())
    return {
        "accuracy": float(np.mean(labels == predicted)) if len(labels) else 0.0,
        "report": report,
        "confusion": confusion.tolist(),
        "classes": list(classes),
    }
