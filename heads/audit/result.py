"""What an audit found, as plain arrays and counts: what the writer, the page and the CLI read."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from headstart.heads.audit.duplicates import Pairs
from headstart.heads.audit.label_issues import LabelIssues
from headstart.heads.audit.learning_curve import LearningCurve
from headstart.heads.pages.map import DatasetMap

MISSING, EXTRA = "missing", "extra"  # a multi-label audit's kinds of label-set issue


@dataclass
class LabelSetIssues:
    """A multi-label audit's flagged (row, label) pairs (heads/audit/multilabel.py), most suspicious first."""

    rows: np.ndarray  # int64, a row per flagged pair
    labels: np.ndarray  # int64, the label in question
    given: np.ndarray  # uint8, 1: the row was given the label (a likely extra one), 0: not (a likely missing one)
    probability: np.ndarray  # p(label present), out of fold for train rows
    self_confidence: np.ndarray  # p(the value given)
    normalized_margin: np.ndarray  # p(the value given) - p(the other value), in [-1, 1]
    thresholds: np.ndarray  # (C, 2) per label: t0 (absent), t1 (present)

    def kind(self, index: int) -> str:
        return EXTRA if self.given[index] else MISSING


@dataclass
class Outliers:
    """Rows above the cutoff, farthest first, with their scores and nearest classes."""

    rows: np.ndarray  # farthest first
    score: np.ndarray
    nearest: np.ndarray
    cutoff: float


@dataclass
class AuditResult:
    """Every finding, audit.json's record and the lines the CLI and the page show."""

    folder: Path
    label_issues: LabelIssues
    pairs: Pairs
    outliers: Outliers
    curve: LearningCurve | None
    val_mistakes: list[tuple[int, int, float]]  # (row, predicted, confidence), most confident first
    dataset_map: DatasetMap | None = None  # report.html's map (None: --map-points 0)
    record: dict = field(default_factory=dict)  # audit.json
    summary_lines: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    curve_note: str = ""
    seconds: float = 0.0
    label_set_issues: LabelSetIssues | None = None  # multi-label features: likely missing and extra labels
    files: list[str] = field(default_factory=list)  # the files written, when they are not the single-label set
