"""The spaces images are compared in: centred unit-length features (outliers), PCA-whitened ones (duplicates).

Whitening (Jégou & Chum, "Negative evidences and co-occurrences in image retrieval: the benefit of PCA and
whitening", ECCV 2012): the features are centred on the train mean, projected on the train rows' first
WHITEN_DIMS principal components and each component scaled to unit variance, so the directions that every
image of a class shares stop dominating the similarity. Measured by python -m bench.audit: re-encoded copies
are found more often than with centred features (docs/audit.md).
"""

from __future__ import annotations

import numpy as np

WHITEN_DIMS = 32  # measured against 16, 64 and 128: docs/audit.md
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


def whiten(features: np.ndarray, train_features: np.ndarray, dims: int = WHITEN_DIMS) -> np.ndarray:
    """Rows projected on the train rows' first `dims` principal components, unit variance each, unit length."""
    centre = train_features.mean(axis=0, dtype=np.float64)
    covariance = np.zeros((train_features.shape[1],) * 2)
    for start in range(0, len(train_features), BLOCK_ROWS):  # blocks: no float64 copy of every row
        block = train_features[start : start + BLOCK_ROWS].astype(np.float64) - centre
        covariance += block.T @ block
    covariance /= max(len(train_features) - 1, 1)
    values, vectors = np.linalg.eigh(covariance)
    keep = min(dims, train_features.shape[1], max(len(train_features) - 1, 1))
    values, vectors = values[::-1][:keep], vectors[:, ::-1][:, :keep]
    projection = (vectors / np.sqrt(np.maximum(values, values[0] * 1e-6 + 1e-12))).astype(np.float32)
    whitened = np.empty((len(features), keep), np.float32)
    for start in range(0, len(features), BLOCK_ROWS):  # blocks: no centred copy of every row
        block = (features[start : start + BLOCK_ROWS] - centre).astype(np.float32)
        whitened[start : start + BLOCK_ROWS] = block @ projection
    return unit_length(whitened)
