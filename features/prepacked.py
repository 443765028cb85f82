"""The folded ResNet18 as oneDNN convolutions whose bf16 weights are cast and reordered once: bf16 on a CPU.

Under autocast every forward pass casts each weight to bf16 and oneDNN reorders it into its blocked layout again,
and each layer's output goes back to a plain tensor; at the small batches a CPU runs that is a noticeable share of the
pass. Here both happen once, when the network is built,
and the activations stay in oneDNN's layout from the first convolution to the last. Same network, same bf16
arithmetic, a faster extract (docs/benchmark.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from torchvision.models import ResNet


def prepacking_available() -> bool:
    """oneDNN is built in and this CPU has bf16 instructions; without them oneDNN would emulate bf16, slowly."""
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


@dataclass(frozen=True)
class _PackedConv:
    """A convolution with its weights in oneDNN's blocked bf16 layout."""

    weight: torch.Tensor
    bias: torch.Tensor | None
    padding: list[int]
    stride: list[int]
    dilation: list[int]
    groups: int

    @classmethod
    def of(cls, conv: nn.Conv2d) -> _PackedConv:
        if isinstance(conv.padding, str):  # torchvision's ResNet18 pads by numbers; oneDNN takes nothing else
            raise ValueError(f"prepacking needs numeric padding, not padding={conv.padding!r}")
        padding, stride, dilation = list(conv.padding), list(conv.stride), list(conv.dilation)
        weight = conv.weight.detach().to(torch.bfloat16).to_mkldnn()
        weight = torch._C._nn.mkldnn_reorder_conv2d_weight(weight, padding, stride, dilation, conv.groups)
        # the bias stays fp32, as torch.utils.mkldnn keeps it: oneDNN adds it before rounding the output to bf16
        bias = conv.bias.detach().float().to_mkldnn() if conv.bias is not None else None
        return cls(weight, bias, padding, stride, dilation, conv.groups)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.mkldnn_convolution(
            x, self.weight, self.bias, self.padding, self.stride, self.dilation, self.groups
        )


def _folded_away(module: nn.Module | None) -> bool:
    return module is None or isinstance(module, nn.Identity)


class PrepackedResNet:
    """torchvision's ResNet18 forward (BasicBlocks, fc an Identity) on a BatchNorm-folded model, in bf16 through
    oneDNN; returns float32 avgpool features."""

    def __init__(self, model: ResNet):
        blocks = [block for layer in (model.layer1, model.layer2, model.layer3, model.layer4) for block in layer]
        norms = [model.bn1] + [getattr(block, name) for block in blocks for name in ("bn1", "bn2")]
        norms += [block.downsample[1] for block in blocks if block.downsample is not None]
        if not all(_folded_away(norm) for norm in norms) or not isinstance(model.fc, nn.Identity):
            raise ValueError("prepacking needs the folded ResNet18 with fc an Identity")
        self.stem = _PackedConv.of(model.conv1)
        self.blocks = [
            (
                _PackedConv.of(block.conv1),
                _PackedConv.of(block.conv2),
                _PackedConv.of(block.downsample[0]) if block.downsample is not None else None,
            )
            for block in blocks
        ]

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            x = batch.contiguous().to_mkldnn(torch.bfloat16)
            x = torch.max_pool2d(torch.relu_(self.stem(x)), kernel_size=3, stride=2, padding=1)
            for first, second, downsample in self.blocks:
                shortcut = downsample(x) if downsample is not None else x
                x = torch.relu_(second(torch.relu_(first(x))).add_(shortcut))
            return x.to_dense().float().mean(dim=(2, 3))
