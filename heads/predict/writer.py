"""The predictions file: CSV (default) or JSON Lines, one record per image, sorted by path.

CSV columns: path, label, confidence, ood_score, unknown, then label_<k>, confidence_<k> for k = 2..top_k
when top_k > 1, prob_<class> for each class in the head's order, and error. A file that could not be
decoded has an empty label, empty probabilities and the reason in `error`. ood_score (higher = less like
the training set) and unknown ("true"/"false", the score above the head's threshold) are empty when the
head carries no unknown-image model (format 1 files); with reject_unknown, a flagged image's label is
"unknown" (its confidence and probabilities stay the head's). The csv module quotes fields as needed, so
commas, quotes, newlines and non-ASCII round-trip.
Spreadsheet formula injection (features/files/csvfile.py, the one CSV writer): a relative path that starts with
= + - @ (or a tab or carriage return) is written as ./<path>, the same file; any other text cell starting
so (a class name in label or label_<k>, an error message) is written with a leading apostrophe, which
spreadsheets show as text and never run. The header is the first line: csv.reader and pandas.read_csv read
the file with their default options.

JSON Lines: {"path", "label", "confidence", "ood_score", "unknown", "top_k": [{"label", "confidence"}, ...],
"probabilities": {class: p}, "error"} with the exact path and null for what a failed image lacks.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from headstart.features.files.csvfile import CsvWriter, safe_path
from headstart.features.files.outputs import text_output
from headstart.features.folder import count_kinds

if TYPE_CHECKING:  # the CLI imports FORMATS from here at start-up: no numpy for --help
    import numpy as np

FORMATS = ("csv", "jsonl")
UNKNOWN_LABEL = "unknown"


@dataclass
class Prediction:
    """One image's class probabilities, or the reason it could not be read."""

    path: str
    probabilities: np.ndarray | None
    error: str | None = None
    ood_score: float | None = None  # None: failed, or the head has no unknown-image model
    unknown: bool | None = None
    sha256: str | None = None  # the file's content hash, when an engine read it (evaluate's train-split check)

    def ranked(self, top_k: int) -> list[int]:
        """Class indices, most probable first (ties: lower index first)."""
        import numpy as np

        if self.probabilities is None:  # callers rank only the images that were read
            raise ValueError(f"{self.path} has no probabilities to rank: {self.error}")
        return list(np.argsort(-self.probabilities, kind="stable")[:top_k])


def header(classes: list[str], top_k: int = 1) -> list[str]:
    """The CSV's column names for these classes and top_k."""
    ranks = [column for k in range(2, top_k + 1) for column in (f"label_{k}", f"confidence_{k}")]
    return [
        "path",
        "label",
        "confidence",
        "ood_score",
        "unknown",
        *ranks,
        *[f"prob_{name}" for name in classes],
        "error",
    ]


def _label(prediction: Prediction, classes: list[str], reject_unknown: bool) -> str:
    return UNKNOWN_LABEL if reject_unknown and prediction.unknown else classes[prediction.ranked(1)[0]]


def _csv_row(prediction: Prediction, classes: list[str], top_k: int, reject_unknown: bool) -> list[str]:
    if prediction.probabilities is None:
        return [
            safe_path(prediction.path),
            "",
            "",
            "",
            "",
            *[""] * (2 * (top_k - 1) + len(classes)),
            prediction.error or "",
        ]
    ranked = [(classes[i], f"{prediction.probabilities[i]:.6f}") for i in prediction.ranked(top_k)]
    ranked += [("", "")] * (top_k - len(ranked))
    trust = ["", ""] if prediction.unknown is None else [f"{prediction.ood_score:.6g}", str(prediction.unknown).lower()]
    return [
        safe_path(prediction.path),
        _label(prediction, classes, reject_unknown),
        ranked[0][1],
        *trust,
        *[cell for pair in ranked[1:] for cell in pair],
        *[f"{p:.6f}" for p in prediction.probabilities],
        "",
    ]


def _json_record(prediction: Prediction, classes: list[str], top_k: int, reject_unknown: bool) -> dict:
    if prediction.probabilities is None:
        return {
            "path": prediction.path,
            "label": None,
            "confidence": None,
            "ood_score": None,
            "unknown": None,
            "top_k": [],
            "probabilities": None,
            "error": prediction.error,
        }
    ranked = [{"label": classes[i], "confidence": float(prediction.probabilities[i])} for i in prediction.ranked(top_k)]
    return {
        "path": prediction.path,
        "label": _label(prediction, classes, reject_unknown),
        "confidence": ranked[0]["confidence"],
        "ood_score": prediction.ood_score,
        "unknown": prediction.unknown,
        "top_k": ranked,
        "probabilities": dict(zip(classes, map(float, prediction.probabilities))),
        "error": None,
    }


def _multilabel_rows(thresholds: list[float] | None, classes: list[str], top_k: int, reject: bool) -> tuple | None:
    """A multi-label head's CSV header, CSV row and JSON record makers; None for a single-label head."""
    if thresholds is None:
        return None
    from headstart.heads.multilabel.predictions import Layout

    layout = Layout(classes, thresholds, top_k, reject)
    return layout.csv_header(), layout.csv_row, layout.json_record


def write_predictions(
    out: str | os.PathLike,
    classes: list[str],
    predictions: Iterable[Prediction],
    format: str = "csv",
    top_k: int = 1,
    reject_unknown: bool = False,
    thresholds: list[float] | None = None,
) -> dict:
    """Stream predictions into out ('-' for stdout); return counts of labelled, failed and flagged images, and the
    failed ones by kind under "failed_kinds". `thresholds`: a multi-label head's (heads/multilabel/predictions.py
    defines that file)."""
    counts: dict = {"predicted": 0, "failed": 0, "flagged": 0}
    failures = []
    top_k = max(1, min(top_k, len(classes)))
    multi = _multilabel_rows(thresholds, classes, top_k, reject_unknown)
    with text_output(out) as handle:
        if format == "csv":
            writer = CsvWriter(handle, multi[0] if multi else header(classes, top_k))
        for prediction in predictions:
            if format == "csv":
                writer.writerow(multi[1](prediction) if multi else _csv_row(prediction, classes, top_k, reject_unknown))
            else:
                record = multi[2](prediction) if multi else _json_record(prediction, classes, top_k, reject_unknown)
                handle.write(json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n")
            counts["failed" if prediction.probabilities is None else "predicted"] += 1
            counts["flagged"] += bool(prediction.unknown)
            if prediction.probabilities is None:
                failures.append((prediction.path, prediction.error or ""))
    counts["failed_kinds"] = count_kinds(failures)
    return counts
