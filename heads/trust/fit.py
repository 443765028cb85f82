"""The trust part of train-head: fit the unknown-image model and the temperature on train, score both on val."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from heads.linear import LinearHead

from .calibration import Calibration, Reliability, Trainer, calibrate, reliability
from .config import TrustConfig
from .unknown import UnknownModel, fit_unknown


@dataclass(frozen=True)
class Trust:
    """The head to save (the temperature folded in, or as trained), and what train-head records about trust."""

    head: LinearHead
    config: TrustConfig
    calibration: Calibration | None
    unknown: UnknownModel | None
    val_flagged_rate: float | None
    val_reliability: Reliability | None  # of the head as trained
    skipped: str | None = None  # why neither was fitted

    def metrics(self) -> dict:
        """metrics.json's `calibration` and `unknown` entries (None when not fitted)."""
        calibration = self.calibration and {"temperature": self.calibration.temperature,
                                            "val_ece_before": self.calibration.val_ece_before,
                                            "val_ece_after": self.calibration.val_ece_after}
        unknown = self.unknown and {"method": self.unknown.method, "threshold": self.unknown.threshold,
                                    "rate": self.unknown.rate, "val_flagged_rate": self.val_flagged_rate}
        return {"calibration": calibration, "unknown": unknown}

    def records(self) -> dict:
        """head.pt's `calibration` and `unknown` records (plain types; None when not fitted)."""
        return {"calibration": self.calibration and self.calibration.to_dict(),
                "unknown": self.unknown and self.unknown.to_dict()}


def _too_few_rows(labels: torch.Tensor, num_classes: int) -> str | None:
    counts = torch.bincount(labels, minlength=num_classes)
    if int(counts.min()) < 2:
        return "a class has fewer than 2 training rows, too few for held-out scores"
    return None


def fit_trust(head: LinearHead, train: tuple[torch.Tensor, torch.Tensor],
              val: tuple[torch.Tensor, torch.Tensor] | None, trainer: Trainer, config: TrustConfig = TrustConfig(),
              seed: int = 0) -> Trust:
    """Unknown model and threshold from train's out-of-fold scores; T from out-of-fold logits of `trainer`'s heads."""
    val_reliability = None
    if val is not None:
        with torch.inference_mode():
            val_reliability = reliability(torch.softmax(head(val[0]), 1), val[1])
    skipped = _too_few_rows(train[1], head.out_features)
    if skipped:
        return Trust(head, config, None, None, None, val_reliability, skipped)
    folds = min(config.folds, len(train[1]))
    unknown = fit_unknown(*train, method=config.unknown_method, rate=config.unknown_rate, folds=folds, seed=seed)
    val_flagged = float(unknown.flag(val[0]).double().mean()) if val is not None else None
    calibration = calibrate(head, train, trainer, val, folds, seed) if config.calibrate else None
    return Trust(calibration.head if calibration else head, config, calibration, unknown, val_flagged,
                 val_reliability)
