"""A multi-label head's predictions file, and the commands that do not handle multi-label heads yet.

CSV columns: path, labels (the predicted set: every label whose sigmoid probability is at least its threshold,
`|`-joined in the head's class order, empty for none), prob_<class> for each class in the head's order, and error
(an unreadable file: empty labels and probabilities, the reason here). Written through the one CSV writer
(features/files/csvfile.py): a path or label cell that starts like a formula is made safe as in every CSV.

JSON Lines: {"path", "labels": [names], "probabilities": {class: p}, "error"}, null for what a failed image lacks.

The labels' separator `|` cannot appear inside a class name from a folder (a table's `a|b` cell is two labels).
"""

from __future__ import annotations

import numpy as np

from headstart.features.files.csvfile import safe_path

SEPARATOR = "|"


class MultiLabelUnsupported(ValueError):
    """A command, or an option, that handles single-label heads and features only so far."""


def refuse_multilabel(path: object, what: str) -> None:
    """Raise the one-line refusal for `what` (a command or option) on the multi-label head or features at path."""
    raise MultiLabelUnsupported(
        f"{path} is multi-label: {what} handles single-label heads only so far; train-head, predict and evaluate "
        "handle multi-label ones (see docs/multi-label.md)"
    )


def predicted_set(probabilities: np.ndarray, thresholds: list[float], classes: list[str]) -> list[str]:
    """The labels whose probability is at least their threshold, in the head's class order."""
    return [name for name, p, cut in zip(classes, probabilities, thresholds) if p >= cut]


def csv_header(classes: list[str]) -> list[str]:
    return ["path", "labels", *[f"prob_{name}" for name in classes], "error"]


def csv_row(
    path: str, probabilities: np.ndarray | None, error: str | None, thresholds: list[float], classes: list[str]
):
    """One image's CSV cells."""
    if probabilities is None:
        return [safe_path(path), "", *[""] * len(classes), error or ""]
    labels = SEPARATOR.join(predicted_set(probabilities, thresholds, classes))
    return [safe_path(path), labels, *[f"{p:.6f}" for p in probabilities], ""]


def json_record(
    path: str, probabilities: np.ndarray | None, error: str | None, thresholds: list[float], classes: list[str]
) -> dict:
    """One image's JSON Lines record."""
    if probabilities is None:
        return {"path": path, "labels": None, "probabilities": None, "error": error}
    return {
        "path": path,
        "labels": predicted_set(probabilities, thresholds, classes),
        "probabilities": dict(zip(classes, map(float, probabilities))),
        "error": None,
    }
