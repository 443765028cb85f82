"""Cosine distance to the k-th nearest training feature: how far a feature is from what the backbone saw in training.

Fitted state (plain tensors, stored in head.pt): "bank", the L2-normalised train features (N x D), and
"k", a one-element tensor.
"""

from __future__ import annotations

import torch

NAME = "knn"
DEFAULT_K = 1


def fit(features: torch.Tensor, labels: torch.Tensor, k: int = DEFAULT_K) -> dict[str, torch.Tensor]:
    """Keep the normalised train features (labels are not needed: the distance ignores classes)."""
    return {"bank": torch.nn.functional.normalize(features.float(), dim=1), "k": torch.tensor([k])}


def score(state: dict[str, torch.Tensor], features: torch.Tensor) -> torch.Tensor:
    """1 - cosine similarity to the k-th nearest bank row, one per row; higher = less like the training set."""
    bank, k = state["bank"], min(int(state["k"][0]), len(state["bank"]))
    similarity = torch.nn.functional.normalize(features.float(), dim=1) @ bank.T
    return 1 - similarity.topk(k, dim=1).values[:, -1]
