"""Unknown-image detection: a distance from the training features, and a threshold set on held-out scores.

The record stored in head.pt under "unknown" (plain types only, loads with weights_only=True):

    method      "mahalanobis" | "knn"   (heads/trust/mahalanobis.py, heads/trust/knn.py)
    state       {name: tensor}: the method's fitted state, fitted on every train row
    threshold   float: a score above it flags the image as unknown
    rate        float: the share of in-distribution images the threshold was set to flag (--unknown-rate)
    folds       int: the k of the out-of-fold scores the threshold came from

The threshold is the (1 - rate) quantile of out-of-fold scores over train: every row scored by a model
fitted on the other folds. In-sample distances are smaller (a kNN row is its own nearest neighbour), so a
threshold set on them would flag far more than `rate` of new in-distribution images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from headstart.heads.kfold import out_of_fold, stratified_folds
from headstart.heads.trust import knn, mahalanobis
from headstart.heads.trust.config import TrustConfig

METHODS = {mahalanobis.NAME: mahalanobis, knn.NAME: knn}  # the names config.UNKNOWN_METHODS lists for the CLI
DEFAULT_METHOD = TrustConfig().unknown_method
DEFAULT_RATE = TrustConfig().unknown_rate
DEFAULT_FOLDS = TrustConfig().folds


@dataclass(frozen=True)
class UnknownModel:
    """A fitted distance and its threshold; score() and flag() take (N, D) features."""

    method: str
    state: dict[str, torch.Tensor]
    threshold: float
    rate: float
    folds: int

    def score(self, features: torch.Tensor) -> torch.Tensor:
        """ood_score: higher = less like the training set."""
        return METHODS[self.method].score(self.state, features)

    def flag(self, features: torch.Tensor) -> torch.Tensor:
        return self.score(features) > self.threshold

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "state": dict(self.state),
            "threshold": self.threshold,
            "rate": self.rate,
            "folds": self.folds,
        }

    @classmethod
    def from_dict(cls, data: dict) -> UnknownModel:
        """The stored record; a ValueError says what is wrong with a damaged one."""
        if not isinstance(data, dict) or data.get("method") not in METHODS:
            raise ValueError(f"the unknown model's method is not one of {sorted(METHODS)}")
        state = data.get("state")
        if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
            raise ValueError("the unknown model's state is not a dict of tensors")
        return cls(data["method"], dict(state), float(data["threshold"]), float(data["rate"]), int(data["folds"]))


def held_out_scores(
    features: torch.Tensor,
    labels: torch.Tensor,
    method: str = DEFAULT_METHOD,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
) -> torch.Tensor:
    """Every train row's score from a model fitted on the other folds."""
    fitter = METHODS[method]
    splits = stratified_folds(labels.numpy(), folds, seed)
    return out_of_fold(features, labels, splits, lambda x, y, held: fitter.score(fitter.fit(x, y), held))


def fit_unknown(
    features: torch.Tensor,
    labels: torch.Tensor,
    method: str = DEFAULT_METHOD,
    rate: float = DEFAULT_RATE,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
) -> UnknownModel:
    """Fit `method` on every train row; threshold at the (1 - rate) quantile of its out-of-fold scores."""
    if method not in METHODS:
        raise ValueError(f"unknown-image method {method!r} is not one of {sorted(METHODS)}")
    if not 0 < rate < 1:
        raise ValueError(f"--unknown-rate must be between 0 and 1 (exclusive), not {rate}")
    scores = held_out_scores(features, labels, method, folds, seed)
    threshold = float(np.quantile(scores.double().numpy(), 1 - rate))
    return UnknownModel(method, METHODS[method].fit(features, labels), threshold, rate, folds)


DRIFT_FACTOR = 3  # flagged share above this many times --unknown-rate ...
DRIFT_MIN_IMAGES = 20  # ... over at least this many images: the images are not like the training set


def drift_warning(flagged: int, images: int, rate: float) -> str | None:
    """One line when far more images were flagged than the threshold was set to flag; None otherwise."""
    if images < DRIFT_MIN_IMAGES or flagged <= DRIFT_FACTOR * rate * images:
        return None
    return (
        f"drift: {flagged} of {images} images ({flagged / images:.1%}) flagged as unknown, against {rate:.1%} "
        "expected: these images are unlike the training set"
    )
