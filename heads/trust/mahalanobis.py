"""Class-conditional Mahalanobis distance with one shared covariance: how far a feature is from every class's mean.

Fitted state (plain tensors, stored in head.pt): "means" (C x D), "precision" (D x D), the inverse of the
shared within-class covariance shrunk towards a scaled identity by the Ledoit-Wolf formula (a head trains on
a few hundred rows of 512-d features, too few for the plain covariance to be invertible). Features are used
as they are, not L2-normalised: their norm tells unknown images apart too (bench/trust.py: raw features
separated them better, docs/trust.md).
"""

from __future__ import annotations

import torch

NAME = "mahalanobis"
BLOCK_BYTES = 64 << 20  # one block of class_distances' differences (rows x classes x width, float64)


def ledoit_wolf(centered: torch.Tensor) -> tuple[torch.Tensor, float]:
    """The shrunk covariance of zero-mean rows and its shrinkage (as scikit-learn's ledoit_wolf computes them).

    scikit-learn's two D x D products reduce to the covariance itself: sum((X*X)^T (X*X)) is the sum over rows
    of |x|^4, and sum((X^T X)^2) / n^2 is the sum of the squared covariance.
    """
    rows = centered.shape[0]
    return shrink(centered.T @ centered / rows, float(fourth_powers(centered).sum()), rows)


def fourth_powers(centered: torch.Tensor) -> torch.Tensor:
    """|x|^4 of each row, a block of rows at a time: no squared copy of every row (the same bits, row by row)."""
    norms = torch.empty(centered.shape[0], dtype=centered.dtype)
    block = max(1, BLOCK_BYTES // (8 * max(1, centered.shape[1])))
    for start in range(0, centered.shape[0], block):
        norms[start : start + block] = (centered[start : start + block] ** 2).sum(1) ** 2
    return norms


def shrink(covariance: torch.Tensor, beta_sum: float, rows: int) -> tuple[torch.Tensor, float]:
    """ledoit_wolf's result from the covariance of zero-mean rows, the sum over rows of |x|^4 and the row count: the
    three things a pass over chunks can accumulate."""
    dims = covariance.shape[0]
    trace = float(torch.trace(covariance))
    mu = trace / dims
    delta_sum = float((covariance**2).sum())
    beta = (beta_sum / rows - delta_sum) / (dims * rows)
    delta = (delta_sum - 2 * mu * trace + dims * mu**2) / dims
    shrinkage = 0.0 if beta == 0 else min(beta, delta) / delta
    shrunk = (1 - shrinkage) * covariance + shrinkage * mu * torch.eye(dims, dtype=covariance.dtype)
    return shrunk, shrinkage


def fit(features: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-class means and the shrunk shared precision matrix of the train features."""
    features = features.to(torch.float64, copy=True)  # centred in place below: never the caller's tensor
    counts = torch.bincount(labels).double()
    # A class with no rows (possible in a fold of a tiny split) gets a NaN mean, which score() never picks.
    means = torch.zeros(len(counts), features.shape[1], dtype=features.dtype).index_add_(0, labels, features)
    means /= counts[:, None]
    block = max(1, BLOCK_BYTES // (8 * max(1, features.shape[1])))
    for start in range(0, len(features), block):  # centred in place: no second and third float64 copy of the rows
        features[start : start + block] -= means[labels[start : start + block]]
    covariance, _ = ledoit_wolf(features)
    # Shrinkage keeps the covariance positive definite: Cholesky inverts it in half the time of a general inverse.
    precision = torch.cholesky_inverse(torch.linalg.cholesky(covariance))
    return {"means": means.float(), "precision": precision.float()}


def score(state: dict[str, torch.Tensor], features: torch.Tensor) -> torch.Tensor:
    """Squared Mahalanobis distance to the nearest class mean, one per row; higher = less like the training set.

    The same float32 bits as class_distances(state, features).min(1) gives, at a fraction of its cost: with
    P = L L^T, the distances come from one D x D product a row (whitened_scores), not one per class; a row whose
    whitened distance lies within the two computations' rounding bound of a float32 rounding boundary (about 3% of
    the rows on generated data, every row when the precision is far from well conditioned) is recomputed by
    class_distances, so the bits never depend on the bound being tight, only on it being a bound."""
    fast = whitened_scores(state, features)
    if fast is None:
        return class_distances(state, features).min(1).values.float()
    distances, margin = fast
    low, high = (distances - margin).float(), (distances + margin).float()
    scores = distances.float()
    unsure = torch.nonzero(low != high).flatten()
    if len(unsure):
        scores[unsure] = class_distances(state, features[unsure]).min(1).values.float()
    return scores


def whitened_scores(state: dict[str, torch.Tensor], features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Each row's nearest-class distance as |(x - c) L - (m - c) L|^2 (float64; c the mean of the class means, so
    the rows' offset adds no rounding), and a bound on how far class_distances' minimum can be from it: per class,
    the standard bounds of D-term dot products on this computation and on (x - m) P (x - m), added and doubled
    (they are first order). None when the stored precision (float32) does not factor."""
    means, precision = state["means"].double(), state["precision"].double()
    factor, info = torch.linalg.cholesky_ex(precision)
    if int(info) != 0:
        return None
    dims = precision.shape[0]
    gamma = (dims + 2) * 2.0**-53 / (1 - (dims + 2) * 2.0**-53)
    known = ~torch.isnan(means).any(1)
    centre = means[known].mean(0) if bool(known.any()) else torch.zeros(dims, dtype=torch.float64)
    means = means - centre
    whitened_means, mean_norms = means @ factor, means.norm(dim=1)
    factor_norm, precision_norm = float(factor.norm()), float(precision.norm())
    block = max(1, BLOCK_BYTES // (8 * max(1, dims)))
    distances = torch.empty(features.shape[0], dtype=torch.float64)
    margin = torch.empty(features.shape[0], dtype=torch.float64)
    whitened_norms = whitened_means.norm(dim=1)
    for start in range(0, features.shape[0], block):
        rows = features[start : start + block].double() - centre
        whitened = rows @ factor
        norms, whitened_row_norms = rows.norm(dim=1)[:, None], whitened.norm(dim=1)[:, None]
        # |z - zm|^2 expanded: one product for every class; its cancellation is in the bound below
        fast = (whitened_row_norms**2 - 2 * whitened @ whitened_means.T + whitened_norms[None, :] ** 2).clamp(min=0)
        error = gamma * (norms + mean_norms[None, :]) * factor_norm  # of the whitened difference's length
        squared = norms**2 - 2 * rows @ means.T + mean_norms[None, :] ** 2  # |x - m|^2, then a safe upper bound
        squared = squared.clamp(min=0) * (1 + 1e-6) + 1e-6 * (norms**2 + mean_norms[None, :] ** 2)
        bound = 2 * (
            2 * fast.sqrt() * error
            + error**2  # the whitened rows' and means' rounding
            + 2 * gamma * (whitened_row_norms + whitened_norms[None, :]) ** 2  # the expansion's
            + gamma * squared * factor_norm**2  # L L^T is P within Cholesky's rounding
            + 2 * gamma * squared * precision_norm  # class_distances'
        )
        fast, bound = fast.nan_to_num(nan=torch.inf), bound.nan_to_num(nan=0.0)
        nearest = fast.min(1).values
        low, high = (fast - bound).min(1).values, (fast + bound).min(1).values
        distances[start : start + block] = nearest
        margin[start : start + block] = torch.maximum(nearest - low, high - nearest)
    return distances, margin


def class_distances(state: dict[str, torch.Tensor], features: torch.Tensor) -> torch.Tensor:
    """(N, C) squared Mahalanobis distances to each class mean (inf for a class with no rows)."""
    means, precision = state["means"].double(), state["precision"].double()
    # Rows a block at a time: the differences are rows x classes x width float64, three times over (at 40,000
    # held-out rows of 10 classes and 512-d, 4.9 GB); each row's distances are computed alike, so the result is
    # the same. (x - mean) P (x - mean) per class, not its expansion: raw features have norms near 50, and the
    # expanded terms would cancel to a small difference of large numbers.
    block = max(1, BLOCK_BYTES // (8 * max(1, means.numel())))
    distances = torch.empty(features.shape[0], means.shape[0], dtype=torch.float64)
    for start in range(0, features.shape[0], block):
        differences = features[start : start + block, None, :].double() - means[None, :, :]
        distances[start : start + block] = ((differences @ precision) * differences).sum(-1)
    return distances.nan_to_num(nan=torch.inf)
