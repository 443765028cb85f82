"""Options of the export step, importable without torch so the CLI's --help stays instant."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

EXPORT_FORMATS = ("torchscript", "onnx", "torchvision")


@dataclass(frozen=True, kw_only=True)
class ExportConfig:
    """Where the head is, what to write, and which images to verify the written file on."""

    out: Path
    format: str = "torchscript"
    cache: Path = Path("cache")
    images: Path | None = None  # verify on these images; None: the val images the cache was extracted from
    sample: int = 64  # at most this many verification images, spread evenly
    weights: str | None = None  # None: the weights the head records (as predict)
    backbone: str | None = None  # None: the head's; a name: the head must record that one
