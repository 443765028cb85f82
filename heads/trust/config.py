"""Options of train-head's trust step, importable without torch so the CLI's --help stays instant."""

from __future__ import annotations

from dataclasses import asdict, dataclass

UNKNOWN_METHODS = ("mahalanobis", "knn")


@dataclass(frozen=True, kw_only=True)
class TrustConfig:
    """Unknown-image detection (always on) and the temperature (calibrate=False: --no-calibrate)."""

    unknown_rate: float = 0.05  # the share of in-distribution images the threshold may flag
    unknown_method: str = "mahalanobis"  # chosen by bench/trust.py; see docs/trust.md
    calibrate: bool = True
    folds: int = 5  # k of the out-of-fold scores and logits (fewer when train has fewer rows)

    def to_dict(self) -> dict:
        return asdict(self)
