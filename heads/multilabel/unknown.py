"""Unknown-image scoring for a multi-label head: which rows a distance is measured from, and its threshold.

A multi-label row has no one class, so the class-conditional Mahalanobis distance of single-label heads
(heads/trust/mahalanobis.py) needs groups to take means over. FORMS names the groupings bench/multilabel_trust.py
measures (AUROC of held-out unknown rows against held-out known ones, docs/multi-label.md):

    label-means    one group per label (its positive rows; a row with two labels is in both) and one for the rows
                   with no label; the covariance is pooled over (row, group) pairs
    lowest-label   one group per row's lowest label, one for the rows with no label (the folds' strata)
    one-gaussian   every row one group: a single mean and covariance
    knn            cosine distance to the nearest train row (heads/trust/knn.py; groups play no part)

The model is stored as a single-label head's is (heads/trust/unknown.py: method "mahalanobis" or "knn", its state,
threshold, rate and folds), with a Mahalanobis model's `means` holding one row per non-empty group (at most classes
+ 1). The threshold is the (1 - rate) quantile of out-of-fold scores over train, folds stratified by lowest label.
"""

from __future__ import annotations

import numpy as np
import torch

from headstart.heads.kfold import out_of_fold, stratified_folds
from headstart.heads.trust import knn, mahalanobis
from headstart.heads.trust.unknown import UnknownModel

FORMS = ("label-means", "lowest-label", "one-gaussian", "knn")
DEFAULT_FORM = "one-gaussian"


def _groups(features: torch.Tensor, targets: torch.Tensor, form: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, group ids 0..G-1 without gaps) to fit a Mahalanobis model on, for `form`."""
    marked = targets > 0.5
    none = ~marked.any(1)
    if form == "one-gaussian":
        return features, torch.zeros(len(features), dtype=torch.int64)
    if form == "lowest-label":
        groups = torch.where(none, targets.shape[1], marked.float().argmax(1))
    elif form == "label-means":
        rows, labels = torch.nonzero(marked, as_tuple=True)
        empty = torch.nonzero(none).flatten()
        features = torch.cat([features[rows], features[empty]])
        groups = torch.cat([labels, torch.full((len(empty),), targets.shape[1], dtype=torch.int64)])
    else:
        raise ValueError(f"multi-label unknown-image form must be one of {', '.join(FORMS)}, not {form!r}")
    return features, torch.unique(groups, return_inverse=True)[1]


def fit_state(features: torch.Tensor, targets: torch.Tensor, form: str) -> tuple[str, dict[str, torch.Tensor]]:
    """The method name (heads/trust/unknown.py's) and its fitted state, for `form`."""
    if form == "knn":
        return knn.NAME, knn.fit(features, targets.argmax(1))
    return mahalanobis.NAME, mahalanobis.fit(*_groups(features, targets, form))


def _score(method: str, state: dict[str, torch.Tensor], features: torch.Tensor) -> torch.Tensor:
    return (knn if method == knn.NAME else mahalanobis).score(state, features)


def held_out_scores(features: torch.Tensor, targets: torch.Tensor, form: str, folds: int, seed: int) -> torch.Tensor:
    """Every train row's score from a model fitted on the other folds (folds stratified by lowest label)."""
    strata = torch.where(targets.any(1), targets.argmax(1), targets.shape[1]).numpy()

    def fit_and_score(x: torch.Tensor, y: torch.Tensor, held: torch.Tensor) -> torch.Tensor:
        return _score(*fit_state(x, y, form), held)

    return out_of_fold(features, targets, stratified_folds(strata, folds, seed), fit_and_score)


def fit_unknown_multilabel(
    features: torch.Tensor, targets: torch.Tensor, form: str, rate: float, folds: int, seed: int
) -> UnknownModel:
    """Fit `form` on every train row; threshold at the (1 - rate) quantile of its out-of-fold scores."""
    if not 0 < rate < 1:
        raise ValueError(f"--unknown-rate must be between 0 and 1 (exclusive), not {rate}")
    scores = held_out_scores(features, targets, form, folds, seed)
    threshold = float(np.quantile(scores.double().numpy(), 1 - rate))
    method, state = fit_state(features, targets, form)
    return UnknownModel(method, state, threshold, rate, folds)
