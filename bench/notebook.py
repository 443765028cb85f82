"""The tutorial notebook's loop, as the baseline: the frozen backbone re-runs on every image every epoch."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from features import PREPROCESSINGS, load_backbone
from features.images import build_transform
from heads import LinearHead


def notebook_epochs(data: Path, epochs: int, device: torch.device, weights: str, workers: int,
                    batch_size: int = 32) -> list[float]:
    """Seconds per epoch of: ImageFolder -> backbone -> fc trained on train/, then evaluated on val/."""
    from torchvision.datasets import ImageFolder

    transform = build_transform(PREPROCESSINGS["imagenet"])
    loaders = {
        split: DataLoader(ImageFolder(str(data / split), transform=transform), batch_size=batch_size,
                          shuffle=split == "train", num_workers=workers, pin_memory=device.type == "cuda")
        for split in ("train", "val")
    }
    backbone = load_backbone(weights, device)
    head = LinearHead(512, 2).to(device)
    optimizer = torch.optim.SGD(head.parameters(), lr=0.001, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    seconds = []
    for _ in range(epochs):
        started = time.perf_counter()
        for inputs, labels in loaders["train"]:
            features = backbone.features(inputs).to(device).clone()  # an inference tensor cannot enter autograd
            optimizer.zero_grad()
            loss = criterion(head(features), labels.to(device))
            loss.backward()
            optimizer.step()
        with torch.inference_mode():
            for inputs, labels in loaders["val"]:
                criterion(head(backbone.features(inputs).to(device)), labels.to(device))
        seconds.append(time.perf_counter() - started)
    return seconds
