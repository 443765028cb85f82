"""Images filed under the wrong class, found by confident learning over out-of-fold probabilities.

Northcutt, Jiang & Chuang, "Confident Learning: Estimating Uncertainty in Dataset Labels", JAIR 70 (2021):
class j's threshold t_j is the mean probability of j over the rows labelled j; a row labelled i whose
probability of some j != i reaches t_j is counted in the off-diagonal of the confident joint, i.e. flagged.
Flagged rows are ranked by self-confidence p(given) or the normalized margin p(given) - max_{j != given} p(j),
the two ranking scores the paper and cleanlab recommend (lowest: most suspicious).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class LabelIssues:
    """Flagged rows (indices into the scored rows), most suspicious first, with their scores."""

    rows: np.ndarray  # int64, most suspicious first
    suggested: np.ndarray  # int64, per flagged row
    self_confidence: np.ndarray  # per flagged row
    normalized_margin: np.ndarray  # per flagged row
    thresholds: np.ndarray  # (C,) per-class thresholds t_j


def class_thresholds(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """t_j: the mean probability of class j over the rows labelled j (out of fold)."""
    num_classes = probabilities.shape[1]
    return np.array([probabilities[labels == j, j].mean() if np.any(labels == j) else 1.0 for j in range(num_classes)])


def find_label_issues(
    probabilities: np.ndarray, labels: np.ndarray, thresholds: np.ndarray, score: str = "self_confidence"
) -> LabelIssues:
    """Rows whose probability of another class reaches that class's threshold, ranked by `score`."""
    rows = np.arange(len(labels))
    given = probabilities[rows, labels]
    others = probabilities.copy()
    others[rows, labels] = -np.inf
    margin = given - others.max(axis=1)
    # Confident joint: a row belongs to the most probable class among those whose threshold it reaches.
    above = np.where(probabilities >= thresholds[None, :], probabilities, -np.inf)
    confident = above.argmax(axis=1)
    flagged = np.flatnonzero(np.isfinite(above.max(axis=1)) & (confident != labels))
    ranking = given[flagged] if score == "self_confidence" else margin[flagged]
    flagged = flagged[np.lexsort((flagged, ranking))]
    return LabelIssues(flagged, confident[flagged], given[flagged], margin[flagged], thresholds)
