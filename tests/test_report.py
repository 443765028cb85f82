"""heads/report.py: the classification report and confusion matrix equal scikit-learn's, value for value."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import classification_report, confusion_matrix

from headstart.heads.report import classification_summary


def sklearn_report(labels: np.ndarray, predicted: np.ndarray, classes: list[str]) -> tuple[dict, list]:
    indices = list(range(len(classes)))
    return (
        classification_report(
            labels, predicted, labels=indices, target_names=classes, output_dict=True, zero_division=0
        ),
        confusion_matrix(labels, predicted, labels=indices).tolist(),
    )


CASES = {
    "two classes": (2, 153, None),
    "five classes": (5, 997, None),
    "a class never predicted": (3, 60, 2),
    "a class with no rows": (4, 40, "empty"),
    "one row": (2, 1, None),
    "all wrong": (2, 10, "wrong"),
}


@pytest.mark.parametrize("case", CASES)
def test_report_equals_scikit_learn(case):
    count, rows, twist = CASES[case]
    rng = np.random.default_rng(rows)
    labels = rng.integers(0, count, rows)
    predicted = np.where(rng.random(rows) < 0.7, labels, rng.integers(0, count, rows))
    if twist == "empty":
        labels[labels == count - 1] = 0
    elif twist == "wrong":
        predicted = 1 - labels
    elif twist is not None:
        predicted[predicted == twist] = 0
    classes = [f"class_{i}" for i in range(count)]

    ours = classification_summary(labels, predicted, classes)
    report, confusion = sklearn_report(labels, predicted, classes)
    assert ours["report"] == report  # exact: same keys, same order of arithmetic, same float values
    assert list(ours["report"]) == list(report)
    assert all(type(value) is type(report[key]) for key, value in ours["report"].items())
    assert ours["confusion"] == confusion
    assert ours["accuracy"] == report["accuracy"]
    assert ours["classes"] == classes


def test_report_does_not_import_scipy():
    import subprocess
    import sys

    code = (
        "import sys, numpy as np; from headstart.heads.report import classification_summary; "
        "classification_summary(np.array([0, 1]), np.array([1, 1]), ['a', 'b']); "
        "print('scipy' in sys.modules, 'sklearn' in sys.modules)"
    )
    from conftest import ROOT

    assert subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split() == ["False", "False"]
