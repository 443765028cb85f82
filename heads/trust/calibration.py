"""Calibrated confidence: one temperature fitted on out-of-fold logits over train, folded into the head.

The record stored in head.pt under "calibration" (plain types only):

    temperature            float T; the saved head's weight and bias are the trained ones divided by T
    uncalibrated           {"weight": tensor, "bias": tensor}: the head as trained, before folding T in
    folds                  int: the k of the out-of-fold logits T was fitted on
    val_ece_before/after   float or None: val's expected calibration error (15 bins), before and after

Dividing the logits by T > 0 never changes their argmax, so labels are those of the uncalibrated head, and
the head stays a plain Linear(512, C).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from headstart.heads.kfold import stratified_folds
from headstart.heads.linear import LinearHead
from headstart.heads.trust.bins import BINS, Reliability
from headstart.heads.trust.config import TrustConfig

DEFAULT_FOLDS = TrustConfig().folds
# T is searched in [1/20, 20]: a wider range only matters for heads that are useless either way.
_LOG_T_RANGE = (math.log(0.05), math.log(20.0))


class Trainer(Protocol):
    """Trains a head on (features, labels), or on the rows numbered `fold` of them as on a copy of those rows."""

    def __call__(self, features: torch.Tensor, labels: torch.Tensor, fold: torch.Tensor | None = None) -> LinearHead:
        """The trained head."""


def reliability(probabilities: torch.Tensor, labels: torch.Tensor, bins: int = BINS) -> Reliability:
    """Bin rows by their top probability (bins of (i/bins, (i+1)/bins]) and compare with how often they are right."""
    confidence, predicted = probabilities.double().max(1)
    return binned_reliability(confidence, (predicted == labels).double(), bins)


def binned_reliability(confidence: torch.Tensor, correct: torch.Tensor, bins: int = BINS) -> Reliability:
    """reliability() from each row's top probability and whether its label was right (float64 each)."""
    index = (torch.ceil(confidence * bins).long() - 1).clamp(0, bins - 1)
    counts = torch.bincount(index, minlength=bins)
    safe = counts.clamp(min=1).double()
    mean_confidence = torch.zeros(bins, dtype=torch.float64).index_add_(0, index, confidence) / safe
    accuracy = torch.zeros(bins, dtype=torch.float64).index_add_(0, index, correct) / safe
    return Reliability(mean_confidence.tolist(), accuracy.tolist(), counts.tolist())


def expected_calibration_error(probabilities: torch.Tensor, labels: torch.Tensor, bins: int = BINS) -> float:
    """ECE over `bins` equal-width confidence bins."""
    return reliability(probabilities, labels, bins).ece


def _nll(logits: torch.Tensor, labels: torch.Tensor, log_t: float) -> float:
    return float(torch.nn.functional.cross_entropy(logits / math.exp(log_t), labels))


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, tolerance: float = 1e-4) -> float:
    """The T minimising the mean NLL of softmax(logits / T), by golden-section search over log T.

    The NLL is convex in 1/T, so it has one minimum along log T; no optimiser (and no torch.optim import) needed.
    """
    logits = logits.double()
    low, high = _LOG_T_RANGE
    ratio = (math.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    nll_a, nll_b = _nll(logits, labels, a), _nll(logits, labels, b)
    while high - low > tolerance:
        if nll_a <= nll_b:
            high, b, nll_b = b, a, nll_a
            a = high - ratio * (high - low)
            nll_a = _nll(logits, labels, a)
        else:
            low, a, nll_a = a, b, nll_b
            b = low + ratio * (high - low)
            nll_b = _nll(logits, labels, b)
    return math.exp((low + high) / 2)


def fold_temperature(head: LinearHead, temperature: float) -> LinearHead:
    """A new head computing head(x) / T: weight / T, bias / T."""
    folded = LinearHead(head.in_features, head.out_features)
    with torch.no_grad():
        folded.weight.copy_(head.weight / temperature)
        folded.bias.copy_(head.bias / temperature)
    return folded.eval()


def held_out_logits(
    features: torch.Tensor, labels: torch.Tensor, train: Trainer, folds: int = DEFAULT_FOLDS, seed: int = 0
) -> torch.Tensor:
    """Every train row's logits from a head trained (by `train`, the head's own recipe) on the other folds: each
    fold's head trains on its rows in place (no copy of 4/5 of the rows: what held a streamed trust fit's memory),
    as heads/kfold.py's out_of_fold would on copies, bit for bit."""
    logits = torch.empty(0)
    for number, held_out in enumerate(stratified_folds(labels.numpy(), folds, seed)):
        keep = np.ones(len(labels), dtype=bool)
        keep[held_out] = False
        head = train(features, labels, torch.from_numpy(np.flatnonzero(keep)))
        held = torch.from_numpy(held_out)
        with torch.inference_mode():
            fold_logits = head(features[held])
        if number == 0:
            logits = fold_logits.new_empty((len(labels), fold_logits.shape[1]))
        logits[held] = fold_logits
    return logits


@dataclass(frozen=True)
class Calibration:
    """A fitted temperature, the head with it folded in, and val's ECE before and after."""

    temperature: float
    head: LinearHead
    uncalibrated: LinearHead
    folds: int
    val_ece_before: float | None
    val_ece_after: float | None
    val_before: Reliability | None
    val_after: Reliability | None

    def to_dict(self) -> dict:
        return {
            "temperature": self.temperature,
            "folds": self.folds,
            "val_ece_before": self.val_ece_before,
            "val_ece_after": self.val_ece_after,
            "uncalibrated": {k: v.detach().clone() for k, v in self.uncalibrated.state_dict().items()},
        }


def calibrate(
    head: LinearHead,
    train: tuple[torch.Tensor, torch.Tensor],
    trainer: Trainer,
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
) -> Calibration:
    """Fit T on out-of-fold train logits (each fold's head trained by `trainer`) and fold it into `head`."""
    features, labels = train
    temperature = fit_temperature(held_out_logits(features, labels, trainer, folds, seed), labels)
    folded = fold_temperature(head, temperature)
    before = after = None
    if val is not None:
        with torch.inference_mode():
            before = reliability(torch.softmax(head(val[0]), 1), val[1])
            after = reliability(torch.softmax(folded(val[0]), 1), val[1])
    return Calibration(
        temperature, folded, head, folds, before.ece if before else None, after.ece if after else None, before, after
    )
