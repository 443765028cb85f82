"""Per-class scores and the confusion matrix of a labelled set, from scikit-learn."""

from __future__ import annotations

import numpy as np


def classification_summary(labels: np.ndarray, predicted: np.ndarray, classes: list[str]) -> dict:
    """accuracy, scikit-learn's classification report (as a dict) and the confusion matrix (rows: true class)."""
    from sklearn.metrics import classification_report, confusion_matrix

    indices = list(range(len(classes)))
    report = classification_report(labels, predicted, labels=indices, target_names=classes, output_dict=True,
                                   zero_division=0)
    return {
        "accuracy": float(np.mean(labels == predicted)) if len(labels) else 0.0,
        "report": report,
        "confusion": confusion_matrix(labels, predicted, labels=indices).tolist(),
        "classes": list(classes),
    }
