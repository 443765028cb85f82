"""A multi-label head's predictions file: its columns and the predicted set over the per-label thresholds.

CSV columns: path, labels (the predicted set: every label whose sigmoid probability is at least its threshold,
`|`-joined in the head's class order, empty for none), ood_score and unknown (as a single-label head's: empty when
the head has no unknown-image model), with --top-k K above 1 label_<k>, confidence_<k> for k = 1..K (the K most
probable labels, whatever their thresholds), prob_<class> for each class in the head's order, and error (an
unreadable file: empty cells, the reason here). With --reject-unknown a flagged image's labels are `unknown` alone
(its probabilities stay the head's). Written through the one CSV writer (features/files/csvfile.py): a path or
label cell that starts like a formula is made safe as in every CSV.

JSON Lines: {"path", "ood_score", "unknown", "labels": [names], "top_k": [{"label", "confidence"}, ...] (empty
unless --top-k above 1), "probabilities": {class: p}, "error"}, null for what a failed image lacks.

The labels' separator `|` cannot appear inside a class name from a folder (a table's `a|b` cell is two labels).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from headstart.features.files.csvfile import safe_path

if TYPE_CHECKING:
    import numpy as np


class Prediction(Protocol):
    """What a row is written from: heads/predict/writer.py's Prediction (not imported: it imports this module)."""

    path: str
    probabilities: np.ndarray | None
    error: str | None
    ood_score: float | None
    unknown: bool | None

    def ranked(self, top_k: int) -> list[int]: ...


UNKNOWN_LABEL = "unknown"  # as heads/predict/writer.py's

SEPARATOR = "|"


def predicted_set(probabilities: np.ndarray, thresholds: list[float], classes: list[str]) -> list[str]:
    """The labels whose probability is at least their threshold, in the head's class order."""
    return [name for name, p, cut in zip(classes, probabilities, thresholds) if p >= cut]


@dataclass(frozen=True)
class Layout:
    """What a multi-label predictions file holds: the head's classes and thresholds, --top-k, --reject-unknown."""

    classes: list[str]
    thresholds: list[float]
    top_k: int = 1
    reject_unknown: bool = False

    def labels(self, prediction: Prediction) -> list[str]:
        """The predicted set; [UNKNOWN_LABEL] for a flagged image with reject_unknown."""
        if self.reject_unknown and prediction.unknown:
            return [UNKNOWN_LABEL]
        assert prediction.probabilities is not None  # only read images are labelled
        return predicted_set(prediction.probabilities, self.thresholds, self.classes)

    def ranked(self, prediction: Prediction) -> list[tuple[str, float]]:
        """The top_k most probable labels and their probabilities (none when top_k is 1)."""
        if self.top_k < 2:
            return []
        return [(self.classes[i], float(prediction.probabilities[i])) for i in prediction.ranked(self.top_k)]  # type: ignore[index]

    def csv_header(self) -> list[str]:
        ranks = [column for k in range(1, self.top_k + 1) for column in (f"label_{k}", f"confidence_{k}")]
        return [
            "path",
            "labels",
            "ood_score",
            "unknown",
            *(ranks if self.top_k > 1 else []),
            *self._probabilities(),
            "error",
        ]

    def _probabilities(self) -> list[str]:
        return [f"prob_{name}" for name in self.classes]

    def csv_row(self, prediction: Prediction) -> list[str]:
        """One image's CSV cells."""
        ranks = 2 * self.top_k if self.top_k > 1 else 0
        if prediction.probabilities is None:
            return [safe_path(prediction.path), "", "", "", *[""] * (ranks + len(self.classes)), prediction.error or ""]
        trust = (
            ["", ""] if prediction.unknown is None else [f"{prediction.ood_score:.6g}", str(prediction.unknown).lower()]
        )
        ranked = [cell for name, p in self.ranked(prediction) for cell in (name, f"{p:.6f}")]
        probabilities = [f"{p:.6f}" for p in prediction.probabilities]
        labels = SEPARATOR.join(self.labels(prediction))
        return [safe_path(prediction.path), labels, *trust, *ranked, *probabilities, ""]

    def json_record(self, prediction: Prediction) -> dict:
        """One image's JSON Lines record."""
        record: dict = {"path": prediction.path, "ood_score": prediction.ood_score, "unknown": prediction.unknown}
        if prediction.probabilities is None:
            return {**record, "labels": None, "top_k": [], "probabilities": None, "error": prediction.error}
        return {
            **record,
            "labels": self.labels(prediction),
            "top_k": [{"label": name, "confidence": p} for name, p in self.ranked(prediction)],
            "probabilities": dict(zip(self.classes, map(float, prediction.probabilities))),
            "error": None,
        }
