"""Fold each frozen BatchNorm into the convolution before it: the same features from fewer, cheaper layers.

The backbone never trains, so every BatchNorm is a constant per-channel scale and shift that can be
multiplied into the preceding convolution's weight and bias. ResNet18 has 20 such pairs; folding them
runs faster on a CPU, fp32 and bf16 alike, and moves the features by float rounding only (docs/benchmark.md).
"""

from __future__ import annotations

import torch
from torch import nn


def _folded(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> nn.Conv2d:
    """One convolution computing norm(conv(x)) in eval mode; the arithmetic is done in float64, then rounded once."""
    mean, variance = norm.running_mean, norm.running_var
    if mean is None or variance is None:  # _fold_children folds only the norms that track running statistics
        raise ValueError("only a BatchNorm with running statistics can be folded")
    scale = norm.weight.double() / torch.sqrt(variance.double() + norm.eps)
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
    # skip_init: no random initialisation (every value is overwritten), so the global RNG is left alone.
    folded = nn.utils.skip_init(
        nn.Conv2d,
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        bias=True,
        padding_mode=conv.padding_mode,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )
    with torch.no_grad():
        folded.weight.copy_(conv.weight.double() * scale.reshape(-1, 1, 1, 1))
        folded.bias.copy_((bias - mean.double()) * scale + norm.bias.double())
    folded.requires_grad_(conv.weight.requires_grad)
    return folded.eval()


def _fold_children(module: nn.Module) -> int:
    """Fold the conv -> BatchNorm pairs directly under module; torchvision's ResNet names them convN/bnN or
    puts them in a Sequential (downsample)."""
    folded = 0
    children = dict(module.named_children())
    pairs = [(f"conv{name[2:]}", name) for name in children if name.startswith("bn")]
    if isinstance(module, nn.Sequential):
        names = list(children)
        pairs += list(zip(names, names[1:]))
    for conv_name, norm_name in pairs:
        conv, norm = children.get(conv_name), children.get(norm_name)
        if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d) and norm.track_running_stats:
            setattr(module, conv_name, _folded(conv, norm))
            setattr(module, norm_name, nn.Identity())
            folded += 1
    return folded


def fold_batchnorm(model: nn.Module) -> int:
    """Fold, in place, every BatchNorm of an eval-mode network into its convolution; returns how many were folded."""
    if model.training:
        raise ValueError("BatchNorm can only be folded in eval mode: its batch statistics change in training")
    return sum(_fold_children(module) for module in list(model.modules()))
