"""The whole classifier as one module: normalise -> frozen backbone -> trained head -> softmax (a multi-label head:
a sigmoid per label), for export."""

from __future__ import annotations

import torch
from torch import nn


class ExportedClassifier(nn.Module):
    """Images in [0, 1] (N x 3 x H x W, resized and cropped) -> class probabilities (N x C).

    bf16=True runs the backbone under bfloat16 autocast, as predict does for a bf16 head (Backbone.features);
    multi_label=True gives independent sigmoids, as predict does for a multi-label head.
    """

    mean: torch.Tensor  # buffers, registered in __init__
    std: torch.Tensor

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        mean: list[float],
        std: list[float],
        bf16: bool = False,
        multi_label: bool = False,
    ):
        super().__init__()
        self.multi_label = multi_label
        self.backbone = backbone
        self.head = head
        self.bf16 = bf16
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # The same arithmetic as torchvision's Normalize, so predict and the export see equal inputs.
        normalized = (images - self.mean) / self.std
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            features = self.backbone(normalized)
        logits = self.head(features.float())
        return torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=1)


def build_classifier(predictor, bf16: bool = False, plain: bool = False) -> ExportedClassifier:
    """The Predictor's own backbone (plain=True: rebuilt with torchvision's layers, for a state_dict of torchvision's
    builder) and head, on the CPU, behind its preprocessing's mean and std."""
    from headstart.features.backbone import plain_network

    preprocessing = predictor.preprocessing
    own = predictor.backbone
    backbone = plain_network(own.entry, own.identity.spec()) if plain else own.model
    checkpoint = predictor.checkpoint
    multi_label = checkpoint.multilabel is not None
    model = ExportedClassifier(
        backbone, checkpoint.head, list(preprocessing.mean), list(preprocessing.std), bf16, multi_label
    )
    return model.to("cpu", torch.float32).eval()
