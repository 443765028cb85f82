"""The reliability record of a head on val, in plain Python: the plotting helper (heads/plots.py) imports no torch."""

from __future__ import annotations

from dataclasses import dataclass

BINS = 15


@dataclass(frozen=True)
class Reliability:
    """Per-bin mean confidence, accuracy and row count over equal-width confidence bins (empty bins: count 0)."""

    confidence: list[float]
    accuracy: list[float]
    counts: list[int]

    @property
    def ece(self) -> float:
        """Expected calibration error: the count-weighted mean gap between accuracy and confidence."""
        total = sum(self.counts)
        return sum(n * abs(a - c) for n, a, c in zip(self.counts, self.accuracy, self.confidence)) / total
