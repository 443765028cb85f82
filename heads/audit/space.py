"""The spaces images are compared in: centred unit-length features (outliers), PCA-whitened ones (duplicates).

Whitening (Jégou & Chum, "Negative evidences and co-occurrences in image retrieval: the benefit of PCA and
whitening", ECCV 2012): the features are centred on the train mean, projected on the train rows' first
WHITEN_DIMS principal components and each component scaled to unit variance, so the directions that every
image of a class shares stop dominating the similarity. Measured by python -m bench.audit: re-encoded copies
are found more often than with centred features (docs/audit.md). Above WHITEN_SAMPLE_ROWS train rows the fit uses
a seeded sample of them (its cost stays bounded at a million rows; docs/features-out.md), and the rows are
transformed a block at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WHITEN_DIMS = 32  # measured against 16, 64 and 128: docs/audit.md
# Train rows the whitening is fitted on, at most: a seeded sample above it, so the fit's cost stays bounded at a
# million rows. Chosen by python -m bench.neighbours --parts whitening (docs/features-out.md).
WHITEN_SAMPLE_ROWS = 65_536
BLOCK_ROWS = 4096


def unit_length(rows: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length in place: their dot products are cosine similarities."""
    norms = np.sqrt(np.einsum("ij,ij->i", rows, rows))  # np.linalg.norm would square a temporary copy of every row
    rows /= np.maximum(norms, 1e-12)[:, None]
    return rows


def unit_rows(features: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Rows centred and scaled to unit length (float32): their dot products are cosine similarities.

    Centring matters: backbone features after a ReLU are all positive, so raw cosine similarities of unrelated
    images crowd near 1.
    """
    return unit_length(np.asarray(features, np.float32) - centre.astype(np.float32))


@dataclass(frozen=True)
class Whitening:
    """A fitted whitening: rows minus `centre`, times `projection` (dim x kept components, unit variance each)."""

    centre: np.ndarray  # float64 (dim,)
    projection: np.ndarray  # float32 (dim, kept)

    def transform(self, features: np.ndarray) -> np.ndarray:
        """Rows whitened and scaled to unit length (float32), BLOCK_ROWS at a time: no centred copy of every row."""
        whitened = np.empty((len(features), self.projection.shape[1]), np.float32)
        for start in range(0, len(features), BLOCK_ROWS):
            block = (features[start : start + BLOCK_ROWS] - self.centre).astype(np.float32)
            whitened[start : start + BLOCK_ROWS] = block @ self.projection
        return unit_length(whitened)


def fit_whitening(
    train_features: np.ndarray, dims: int = WHITEN_DIMS, sample_rows: int = WHITEN_SAMPLE_ROWS, seed: int = 0
) -> Whitening:
    """The train rows' first `dims` principal components, each scaled to unit variance; fitted on every train row
    up to sample_rows of them, above that on sample_rows drawn at random (seeded: the same rows give the same fit)."""
    count, dim = min(len(train_features), sample_rows), train_features.shape[1]
    if len(train_features) > sample_rows:  # the sample read a block at a time: no copy of it
        chosen = np.sort(np.random.default_rng(seed).choice(len(train_features), sample_rows, replace=False))
        blocks: list = [chosen[start : start + BLOCK_ROWS] for start in range(0, count, BLOCK_ROWS)]
        centre = sum(train_features[rows].sum(axis=0, dtype=np.float64) for rows in blocks) / count
    else:
        blocks = [slice(start, start + BLOCK_ROWS) for start in range(0, count, BLOCK_ROWS)]
        centre = train_features.mean(axis=0, dtype=np.float64)
    covariance = np.zeros((dim, dim))
    for rows in blocks:  # blocks: no float64 copy of every row
        block = train_features[rows].astype(np.float64) - centre
        covariance += block.T @ block
    covariance /= max(count - 1, 1)
    values, vectors = np.linalg.eigh(covariance)
    keep = min(dims, dim, max(count - 1, 1))
    values, vectors = values[::-1][:keep], vectors[:, ::-1][:, :keep]
    projection = (vectors / np.sqrt(np.maximum(values, values[0] * 1e-6 + 1e-12))).astype(np.float32)
    return Whitening(centre, projection)


def whiten(features: np.ndarray, train_features: np.ndarray, dims: int = WHITEN_DIMS) -> np.ndarray:
    """Rows projected on the train rows' first `dims` principal components, unit variance each, unit length."""
    return fit_whitening(train_features, dims).transform(features)
