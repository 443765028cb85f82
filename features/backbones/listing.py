"""What `headstart backbones` shows: every registry entry with its width, input size, GFLOPs, default weights, and
whether those weights are already in torchvision's cache on this machine."""

from __future__ import annotations

from headstart.features.backbones.network import weights_cached, weights_path
from headstart.features.backbones.registry import ENTRIES


def describe_backbones() -> list[dict]:
    """One plain dict (JSON-ready) per registry entry, in the registry's order."""
    return [
        {
            "name": entry.name,
            "width": entry.width,
            "input_size": entry.crop,
            "gflops": entry.gflops,
            "weights": entry.weights,
            "weights_cached": weights_cached(entry),
            "weights_file": str(weights_path(entry)),
            "fold": entry.fold,
            "bf16": entry.bf16,
        }
        for entry in ENTRIES.values()
    ]
