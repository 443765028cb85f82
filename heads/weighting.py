"""Class weights for the cross-entropy: "balanced" counts every class as much as the others on imbalanced folders."""

from __future__ import annotations

import torch

from headstart.heads.config import CLASS_WEIGHTS


def class_weights(labels: torch.Tensor, num_classes: int, kind: str) -> torch.Tensor | None:
    """None for "none"; for "balanced", rows / (classes x class count), scikit-learn's formula (float32, C)."""
    if kind == "none":
        return None
    if kind != "balanced":
        raise ValueError(f"class weighting must be one of {', '.join(CLASS_WEIGHTS)}, not {kind!r}")
    counts = torch.bincount(labels, minlength=num_classes).to(torch.float64)
    # A class absent from these rows is never a target, so its weight is never used; 0 keeps it finite.
    weights = torch.where(counts > 0, len(labels) / (num_classes * counts.clamp(min=1)), 0.0)
    return weights.to(torch.float32)
