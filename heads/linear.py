"""The linear head: the replaced ResNet18 `fc`, initialised as the tutorial does."""

from __future__ import annotations

import torch
from torch import nn


class LinearHead(nn.Linear):
    """Linear(in_features, num_classes) with Xavier-uniform weight and zero bias."""

    def __init__(self, in_features: int = 512, num_classes: int = 2, generator: torch.Generator | None = None):
        super().__init__(in_features, num_classes)
        nn.init.xavier_uniform_(self.weight, generator=generator)
        nn.init.zeros_(self.bias)

    @property
    def head_args(self) -> dict:
        """What rebuilds this module: LinearHead(**head.head_args)."""
        return {"in_features": self.in_features, "num_classes": self.out_features}
