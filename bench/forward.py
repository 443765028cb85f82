"""The backbone's forward pass alone, on already-decoded tensors: torchvision's plain eager ResNet18 (the ceiling
extract and predict are measured against), the folded network headstart runs, bf16, and torch.compile."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from headstart.features import PREPROCESSINGS, find_dataset, load_backbone
from headstart.features.backbone import resolve_weights
from headstart.features.images import build_transform, decode_image, read_file

Forward = Callable[[torch.Tensor], torch.Tensor]


def decoded(paths: list[Path]) -> torch.Tensor:
    """Image files decoded and preprocessed as extract does, stacked."""
    preprocessing = PREPROCESSINGS["imagenet"]
    transform = build_transform(preprocessing)
    return torch.stack([transform(decode_image(read_file(path)[0], preprocessing.draft_size)) for path in paths])


def decoded_batch(data: Path, batch_size: int = 32) -> torch.Tensor:
    """batch_size val images of data, decoded and preprocessed (repeated if val is smaller)."""
    entries = find_dataset(data).splits["val"]
    return decoded([entry.path for entry in (entries * (batch_size // len(entries) + 1))[:batch_size]])


def eager_forward(weights: str, device: torch.device, precision: str = "fp32") -> Forward:
    """torchvision's resnet18 as it comes (BatchNorm unfolded), eval, channels_last: the baseline forward pass."""
    from torchvision.models import resnet18

    state, _ = resolve_weights(weights)
    model = resnet18(weights=None)
    model.fc = nn.Identity()
    if state is not None:
        model.load_state_dict(state)
    model = model.eval().to(device, memory_format=torch.channels_last)

    def forward(batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(device, memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=precision == "bf16"):
            return model(batch).float().cpu()  # .cpu() waits for a GPU, as Backbone.features does

    return forward


def folded_forward(weights: str, device: torch.device, precision: str = "fp32", compile: bool = False) -> Forward:
    """What extract and predict run: the Backbone (BatchNorm folded), optionally compiled."""
    return load_backbone(weights, device, precision, compile=compile).features


def images_per_second(forward: Forward, batch: torch.Tensor, repeats: int = 8) -> float:
    """Median images/s over repeats, after one warm-up pass."""
    forward(batch)
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        forward(batch)
        seconds.append(time.perf_counter() - started)
    return len(batch) / float(np.median(seconds))


def interleaved(forwards: dict[str, Forward], batch: torch.Tensor, rounds: int = 3, repeats: int = 4) -> dict:
    """images/s of each forward, measured in alternating rounds so that load drifts hit all of them alike."""
    for forward in forwards.values():
        forward(batch)
    rates: dict[str, list[float]] = {name: [] for name in forwards}
    for _ in range(rounds):
        for name, forward in forwards.items():
            rates[name].append(images_per_second(forward, batch, repeats))
    return {name: float(np.median(values)) for name, values in rates.items()}


def compile_break_even(weights: str, device: torch.device, batch: torch.Tensor, precision: str = "fp32") -> dict:
    """torch.compile's one-off cost (its first call, with torch's on-disk cache as it stands) and its speed against
    the folded eager network: the image count from which --compile pays back."""
    compiled = folded_forward(weights, device, precision, compile=True)
    started = time.perf_counter()
    compiled(batch)
    first_call = time.perf_counter() - started
    rates = interleaved({"folded": folded_forward(weights, device, precision), "compiled": compiled}, batch)
    per_image_saving = 1 / rates["folded"] - 1 / rates["compiled"]
    compile_s = first_call - len(batch) / rates["compiled"]
    return {
        "compile_s": compile_s,
        "folded_img_s": rates["folded"],
        "compiled_img_s": rates["compiled"],
        "break_even_images": compile_s / per_image_saving if per_image_saving > 0 else None,
    }
