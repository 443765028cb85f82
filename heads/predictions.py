"""The predictions file (CSV): one row per image, sorted by path.

Columns: path, label, confidence, prob_<class> for each class in the head's order, error.
A file that could not be decoded has an empty label and probabilities and the reason in `error`.
Fields are quoted by the csv module as needed, so commas, quotes, newlines and non-ASCII round-trip.
Spreadsheet formula injection: a relative path that starts with = + - @ (or a tab or carriage return)
is written as ./<path>, the same file, so no cell of the path column starts a formula.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from features.atomic import atomic_write

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class Prediction:
    path: str
    probabilities: np.ndarray | None
    error: str | None = None


def header(classes: list[str]) -> list[str]:
    return ["path", "label", "confidence", *[f"prob_{name}" for name in classes], "error"]


def safe_path(path: str) -> str:
    return f"./{path}" if path.startswith(FORMULA_STARTS) else path


def _row(prediction: Prediction, classes: list[str]) -> list[str]:
    if prediction.probabilities is None:
        return [safe_path(prediction.path), "", "", *[""] * len(classes), prediction.error or ""]
    best = int(np.argmax(prediction.probabilities))
    return [
        safe_path(prediction.path),
        classes[best],
        f"{prediction.probabilities[best]:.6f}",
        *[f"{p:.6f}" for p in prediction.probabilities],
        "",
    ]


def write_predictions(out: str | os.PathLike, classes: list[str], predictions: Iterable[Prediction]) -> dict:
    """Stream predictions into out (whole or not at all); return counts of labelled and failed rows."""
    counts = {"predicted": 0, "failed": 0}
    with atomic_write(out, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header(classes))
        for prediction in predictions:
            writer.writerow(_row(prediction, classes))
            counts["failed" if prediction.probabilities is None else "predicted"] += 1
    return counts
