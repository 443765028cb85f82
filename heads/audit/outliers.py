"""Images far from every class: the unknown-image score of heads/trust (class-conditional Mahalanobis distance).

Train rows are scored out of fold (heads/folds.py's splits: no row by a model fitted on it, whose in-sample
distances would be smaller), the other splits by the model fitted on all train rows, so every score is
comparable with the train rows' quantile the cut-off comes from. Rows are scored in blocks: memory stays
bounded whatever the number of images.
"""

from __future__ import annotations

import numpy as np
import torch

from headstart.heads.trust import mahalanobis
from headstart.heads.trust.unknown import held_out_scores

BLOCK_ROWS = 4096


def outlier_score(
    features: np.ndarray, labels: np.ndarray, train: np.ndarray, folds: int = 5, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(score, nearest class) for every row; `train` indexes the rows the model is fitted on. Higher: farther."""
    features_t, labels_t = torch.from_numpy(features), torch.from_numpy(labels)
    state = mahalanobis.fit(features_t[train], labels_t[train])
    distances = torch.cat(
        [
            mahalanobis.class_distances(state, features_t[start : start + BLOCK_ROWS])
            for start in range(0, len(features), BLOCK_ROWS)
        ]
    )
    score, nearest = distances.min(1)
    score = score.float()
    score[torch.from_numpy(train)] = held_out_scores(features_t[train], labels_t[train], mahalanobis.NAME, folds, seed)
    return score.numpy(), nearest.numpy()
