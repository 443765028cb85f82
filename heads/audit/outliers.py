"""Images far from every class: the one scoring function the audit ranks outliers by (swap it here).

For now the distance to the nearest class centroid of the train rows, in the space of features centred on the
train mean and scaled to unit length: 1 - cosine similarity, so 0 is on a centroid's direction, 2 opposite to it.
"""

from __future__ import annotations

import numpy as np

from .space import unit_rows


def outlier_score(train_features: np.ndarray, train_labels: np.ndarray, features: np.ndarray,
                  num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(score, nearest class) for each row of `features`; higher scores are farther from every class."""
    centre = train_features.mean(axis=0)
    train_unit = unit_rows(train_features, centre)
    centroids = np.stack([train_unit[train_labels == k].mean(axis=0) if np.any(train_labels == k)
                          else np.zeros(train_unit.shape[1], np.float32) for k in range(num_classes)])
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    similarity = unit_rows(features, centre) @ centroids.T
    return 1.0 - similarity.max(axis=1), similarity.argmax(axis=1)
