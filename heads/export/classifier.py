"""The whole classifier as one module: normalise -> frozen ResNet18 -> trained head -> softmax, for export."""

from __future__ import annotations

import torch
from torch import nn


class ExportedClassifier(nn.Module):
    """Images in [0, 1] (N x 3 x H x W, resized and cropped) -> class probabilities (N x C)."""

    def __init__(self, backbone: nn.Module, head: nn.Module, mean: list[float], std: list[float]):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # The same arithmetic as torchvision's Normalize, so predict and the export see equal inputs.
        return torch.softmax(self.head(self.backbone((images - self.mean) / self.std)), dim=1)


def build_classifier(predictor) -> ExportedClassifier:
    """The Predictor's own backbone and head (on the CPU, fp32) behind its preprocessing's mean and std."""
    preprocessing = predictor.preprocessing
    model = ExportedClassifier(predictor.backbone.model, predictor.checkpoint.head, list(preprocessing.mean),
                               list(preprocessing.std))
    return model.to("cpu", torch.float32).eval()
