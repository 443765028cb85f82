"""Options of the extract step, importable without torch so the CLI's --help stays instant."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ExtractConfig:
    """Options of the extract step; the CLI's defaults come from here."""

    data: Path = Path("hymenoptera_data")
    cache: Path = Path("cache")
    weights: str = "imagenet"
    preprocess: str = "imagenet"
    device: str = "auto"
    batch_size: int = 32
    workers: int | None = None
    precision: str = "fp32"
    engine: str = "local"  # or "ray": features.ray_engine
    address: str | None = None  # the Ray cluster to join; None: RAY_ADDRESS, or a local Ray
