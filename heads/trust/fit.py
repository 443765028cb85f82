"""The trust part of train-head: fit the unknown-image model and the temperature on train, score both on val."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import torch

from headstart.heads.config import TrainConfig
from headstart.heads.linear import LinearHead
from headstart.heads.train import _one_thread
from headstart.heads.trust.calibration import Calibration, Reliability, Trainer, calibrate, reliability
from headstart.heads.trust.config import TrustConfig
from headstart.heads.trust.unknown import UnknownModel, fit_unknown


@dataclass(frozen=True)
class Trust:
    """The head to save (the temperature folded in, or as trained), and what train-head records about trust."""

    head: LinearHead
    calibration: Calibration | None
    unknown: UnknownModel | None
    val_flagged_rate: float | None
    val_reliability: Reliability | None  # of the head as trained
    skipped: str | None = None  # why neither was fitted

    def metrics(self) -> dict:
        """metrics.json's `calibration` and `unknown` entries (None when not fitted)."""
        calibration = self.calibration and {
            "temperature": self.calibration.temperature,
            "val_ece_before": self.calibration.val_ece_before,
            "val_ece_after": self.calibration.val_ece_after,
        }
        unknown = self.unknown and {
            "method": self.unknown.method,
            "threshold": self.unknown.threshold,
            "rate": self.unknown.rate,
            "val_flagged_rate": self.val_flagged_rate,
        }
        return {"calibration": calibration, "unknown": unknown}

    def records(self) -> dict:
        """HeadCheckpoint's `unknown` (the model) and `calibration` (its plain record); None when not fitted."""
        return {"unknown": self.unknown, "calibration": self.calibration and self.calibration.to_dict()}

    def reliability_plot(self) -> dict:
        """What calibration.png shows (val's reliability as trained, and after the temperature when there is one), as
        plain values: heads/plots.py draws it, maybe in its helper process."""
        calibration = self.calibration
        after = calibration and calibration.val_after
        return {
            "before": self.val_reliability and asdict(self.val_reliability),
            "after": after and asdict(after),
            "temperature": calibration and calibration.temperature,
        }


def fold_trainer(config: TrainConfig, num_classes: int, rows: int) -> Trainer:
    """Train a fold's head by the saved head's recipe and seed, with as many SGD steps as the saved head took.

    A fold holds (k-1)/k of the `rows`; at the same batch size its head would take fewer steps, and a recipe
    far from convergence (5 epochs at lr 0.001) would leave it less trained, less accurate and less confident
    than the head saved, which is not what T should be fitted to. So each epoch splits the fold into as many
    batches as the saved head's epoch had. bench/trust.py measures both choices (docs/trust.md).
    """
    from headstart.heads.logreg import train_logreg
    from headstart.heads.train import train_sgd

    batches = math.ceil(rows / config.batch_size)

    def train(features: torch.Tensor, labels: torch.Tensor, fold: torch.Tensor | None = None) -> LinearHead:
        if config.head == "logreg":
            if fold is not None:
                features, labels = features[fold], labels[fold]
            return train_logreg((features, labels), None, num_classes, config).head
        count = len(labels) if fold is None else len(fold)
        fold_config = replace(config, batch_size=math.ceil(count / batches))
        return train_sgd((features, labels), None, num_classes, fold_config, rows=fold).head

    return train


def _too_few_rows(labels: torch.Tensor, num_classes: int) -> str | None:
    counts = torch.bincount(labels, minlength=num_classes)
    if int(counts.min()) < 2:
        return "a class has fewer than 2 training rows, too few for held-out scores"
    return None


def fit_trust(
    head: LinearHead,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor] | None,
    train_config: TrainConfig,
    config: TrustConfig = TrustConfig(),
) -> Trust:
    """Unknown model and threshold from train's out-of-fold scores; T from out-of-fold logits of heads trained
    by `train_config` (the recipe and seed of `head`) on the other folds."""
    with _one_thread():
        return _fit_trust(head, train, val, train_config, config)


def _fit_trust(
    head: LinearHead,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor] | None,
    train_config: TrainConfig,
    config: TrustConfig,
) -> Trust:
    val_reliability = None
    if val is not None:
        with torch.inference_mode():
            val_reliability = reliability(torch.softmax(head(val[0]), 1), val[1])
    skipped = _too_few_rows(train[1], head.out_features)
    if skipped:
        return Trust(head, None, None, None, val_reliability, skipped)
    folds = min(config.folds, len(train[1]))
    seed = train_config.seed
    unknown = fit_unknown(*train, method=config.unknown_method, rate=config.unknown_rate, folds=folds, seed=seed)
    val_flagged = float(unknown.flag(val[0]).double().mean()) if val is not None else None
    calibration = None
    if config.calibrate:
        trainer = fold_trainer(train_config, head.out_features, len(train[1]))
        calibration = calibrate(head, train, trainer, val, folds, seed)
    return Trust(calibration.head if calibration else head, calibration, unknown, val_flagged, val_reliability)
