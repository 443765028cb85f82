"""The trust part of train-head over a features file read a chunk at a time, for caches above the in-memory limit.

- The Mahalanobis model (class means, one shared Ledoit-Wolf covariance) is fitted on every train row in two passes
  over chunks: the class sums, then the centred rows' scatter and the sum of their |x|^4 (mahalanobis.shrink).
- Its threshold and the temperature come from out-of-fold scores and logits, as heads/trust/fit.py computes them,
  over seeded stratified samples of the train rows (each class keeps its share, and at least 2 rows): THRESHOLD_ROWS
  for the threshold, as many as the in-memory limit holds for the temperature (its fold heads would not match the
  saved head on fewer: bench/trust_sample.py, docs/scale.md); the k fold heads and models are what would not fit.
- Val's reliability and flagged share are accumulated a chunk at a time.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from headstart.features.chunks import ReadingPlan, iter_chunks, read_labels
from headstart.features.store import FeatureStore
from headstart.heads.config import TrainConfig
from headstart.heads.linear import LinearHead
from headstart.heads.train import _one_thread
from headstart.heads.trust import mahalanobis
from headstart.heads.trust.bins import Reliability
from headstart.heads.trust.calibration import (
    Calibration,
    binned_reliability,
    fit_temperature,
    fold_temperature,
    held_out_logits,
)
from headstart.heads.trust.config import TrustConfig
from headstart.heads.trust.fit import Trust, _too_few_rows, fold_trainer
from headstart.heads.trust.unknown import UnknownModel, held_out_scores

# The threshold's sample: bench/trust_sample.py measured its flagged shares against the whole train split's
# (docs/scale.md). Its five out-of-fold Mahalanobis fits (a float32 and a float64 copy of 4/5 of it) stay near
# 0.3 GiB at 512-d, whatever the rows. The temperature's sample stays as large as the limit: no smaller one gave the
# whole split's temperature there.
THRESHOLD_ROWS = 65_536


def fit_mahalanobis(store: FeatureStore, plan: ReadingPlan, num_classes: int) -> dict[str, torch.Tensor]:
    """mahalanobis.fit over the train split in two passes of chunks: the same means and precision within float64
    rounding (the sums are taken in another order)."""
    sums = torch.zeros(num_classes, plan.width, dtype=torch.float64)
    counts = torch.zeros(num_classes, dtype=torch.float64)
    for _, features, labels in iter_chunks(store, "train", plan.chunk_rows):
        targets = torch.from_numpy(labels)
        sums.index_add_(0, targets, torch.from_numpy(features).double())
        counts += torch.bincount(targets, minlength=num_classes).double()
    means = sums / counts[:, None]  # a class with no rows: NaN, which score() never picks
    scatter = torch.zeros(plan.width, plan.width, dtype=torch.float64)
    beta_sum, rows = 0.0, 0
    for _, features, labels in iter_chunks(store, "train", plan.chunk_rows):
        centered = torch.from_numpy(features).double() - means[torch.from_numpy(labels)]
        scatter += centered.T @ centered
        beta_sum += float(((centered**2).sum(1) ** 2).sum())
        rows += len(labels)
    covariance, _ = mahalanobis.shrink(scatter / rows, beta_sum, rows)
    precision = torch.cholesky_inverse(torch.linalg.cholesky(covariance))
    return {"means": means.float(), "precision": precision.float()}


def sample_rows(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Increasing row numbers of a seeded stratified sample of about `size` rows: each class keeps its share of
    the rows (rounded up) and at least 2 (or all it has)."""
    rng = np.random.default_rng(seed)
    fraction = min(1.0, size / max(1, len(labels)))
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        take = min(len(members), max(2, math.ceil(fraction * len(members))))
        chosen.append(rng.choice(members, take, replace=False))
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64)


def read_sample(store: FeatureStore, plan: ReadingPlan, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The features and labels of the train rows numbered `rows` (increasing), read a chunk at a time into arrays
    of the sample's size (gathering chunks' pieces and concatenating them held the sample twice)."""
    keep = np.zeros(store.count("train"), bool)
    keep[rows] = True
    features = np.empty((len(rows), plan.width), np.float32)
    labels = np.empty(len(rows), np.int64)
    filled = 0
    for start, chunk_features, chunk_labels in iter_chunks(store, "train", plan.chunk_rows):
        mask = keep[start : start + len(chunk_labels)]
        taken = int(mask.sum())
        features[filled : filled + taken] = chunk_features[mask]
        labels[filled : filled + taken] = chunk_labels[mask]
        filled += taken
    return torch.from_numpy(features[:filled]), torch.from_numpy(labels[:filled])


def val_reliabilities(
    heads: list[LinearHead], store: FeatureStore, plan: ReadingPlan, unknown: UnknownModel | None = None
) -> tuple[list[Reliability | None], float | None]:
    """Val's reliability under each head, and the share of val rows `unknown` flags, a chunk at a time."""
    if "val" not in store.splits or not store.count("val"):
        return [None] * len(heads), None
    confidence: list[list[torch.Tensor]] = [[] for _ in heads]
    correct: list[list[torch.Tensor]] = [[] for _ in heads]
    flagged, seen = 0, 0
    with torch.inference_mode():
        for _, features, labels in iter_chunks(store, "val", plan.chunk_rows):
            x, y = torch.from_numpy(features), torch.from_numpy(labels)
            for index, head in enumerate(heads):
                top, predicted = torch.softmax(head(x), 1).double().max(1)
                confidence[index].append(top)
                correct[index].append((predicted == y).double())
            flagged += int(unknown.flag(x).sum()) if unknown is not None else 0
            seen += len(y)
    reliabilities = [binned_reliability(torch.cat(top), torch.cat(right)) for top, right in zip(confidence, correct)]
    return list(reliabilities), flagged / seen if unknown is not None else None


def sample_threshold(sample: tuple[torch.Tensor, torch.Tensor], config: TrustConfig, seed: int) -> tuple[float, int]:
    """The unknown threshold from the sample's out-of-fold Mahalanobis scores, and the fold count."""
    folds = min(config.folds, len(sample[1]))
    scores = held_out_scores(*sample, method=mahalanobis.NAME, folds=folds, seed=seed)
    return float(np.quantile(scores.double().numpy(), 1 - config.unknown_rate)), folds


def sample_temperature(
    sample: tuple[torch.Tensor, torch.Tensor], num_classes: int, train_config: TrainConfig, config: TrustConfig
) -> float:
    """The temperature from the sample's out-of-fold logits of heads trained by `train_config` on the other folds."""
    folds = min(config.folds, len(sample[1]))
    trainer = fold_trainer(train_config, num_classes, len(sample[1]))
    return fit_temperature(held_out_logits(*sample, trainer, folds, train_config.seed), sample[1])


def fit_trust_streamed(
    head: LinearHead, store: FeatureStore, plan: ReadingPlan, train_config: TrainConfig, config: TrustConfig
) -> Trust:
    """heads/trust/fit.py's fit_trust for a cache read a chunk at a time (Mahalanobis only: knn keeps every row)."""
    with _one_thread():
        labels = read_labels(store, "train")
        skipped = _too_few_rows(torch.from_numpy(labels), head.out_features)
        if skipped:
            return Trust(head, None, None, None, val_reliabilities([head], store, plan)[0][0], skipped)
        rows = sample_rows(labels, min(plan.limit_rows, THRESHOLD_ROWS), train_config.seed)
        threshold, folds = sample_threshold(read_sample(store, plan, rows), config, train_config.seed)
        state = fit_mahalanobis(store, plan, head.out_features)
        unknown = UnknownModel(mahalanobis.NAME, state, threshold, config.unknown_rate, folds)
        if not config.calibrate:
            (before,), flagged = val_reliabilities([head], store, plan, unknown)
            return Trust(head, None, unknown, flagged, before)
        sample = read_sample(store, plan, sample_rows(labels, plan.limit_rows, train_config.seed))
        temperature = sample_temperature(sample, head.out_features, train_config, config)
        folded = fold_temperature(head, temperature)
        (before, after), flagged = val_reliabilities([head, folded], store, plan, unknown)
        ece_before, ece_after = (reliability.ece if reliability else None for reliability in (before, after))
        calibration = Calibration(temperature, folded, head, folds, ece_before, ece_after, before, after)
        return Trust(folded, calibration, unknown, flagged, before)
