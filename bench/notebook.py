"""The tutorial notebook's loop, as the baseline: the frozen backbone re-runs on every image every epoch.

Written as the notebook writes it (its "ConvNet as fixed feature extractor" section): a plain torchvision
resnet18 with every parameter frozen but the new fc, train() / eval() per phase, gradients enabled in the
train phase only. Its loss bookkeeping bug is left out: it changes no timing.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from headstart.features import PREPROCESSINGS
from headstart.features.backbone import resolve_weights
from headstart.features.images import build_transform


def notebook_epochs(
    data: Path, epochs: int, device: torch.device, weights: str, workers: int, batch_size: int = 32
) -> list[float]:
    """Seconds per epoch of: ImageFolder -> resnet18 with a trainable fc on train/, then evaluated on val/."""
    from torchvision.datasets import ImageFolder
    from torchvision.models import resnet18

    transform = build_transform(PREPROCESSINGS["imagenet"])
    loaders = {
        phase: DataLoader(
            ImageFolder(str(data / phase), transform=transform),
            batch_size=batch_size,
            shuffle=phase == "train",
            num_workers=workers,
            pin_memory=device.type == "cuda",
        )
        for phase in ("train", "val")
    }
    model = resnet18(weights=None)
    state, _ = resolve_weights(weights)
    if state is not None:
        model.load_state_dict(state, strict=False)
    for parameter in model.parameters():
        parameter.requires_grad = False
    model.fc = nn.Linear(model.fc.in_features, len(loaders["train"].dataset.classes))
    nn.init.xavier_uniform_(model.fc.weight)
    nn.init.zeros_(model.fc.bias)
    model = model.to(device)
    optimizer = torch.optim.SGD(model.fc.parameters(), lr=0.001, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    seconds = []
    for _ in range(epochs):
        started = time.perf_counter()
        for phase in ("train", "val"):
            model.train() if phase == "train" else model.eval()
            for inputs, labels in loaders[phase]:
                inputs, labels = inputs.to(device), labels.to(device)
                optimizer.zero_grad()
                with torch.set_grad_enabled(phase == "train"):
                    loss = criterion(model(inputs), labels)
                    if phase == "train":
                        loss.backward()
                        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - started)
    return seconds
