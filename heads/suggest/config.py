"""The suggest step's options and its strategies' names, importable without numpy or torch so --help stays instant."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from headstart.features.config import EngineConfig

STRATEGIES = ("margin", "combined", "entropy", "diversity", "unknown", "random")
DEFAULT_STRATEGY = "margin"  # measured by python -m bench.suggest (docs/label-loop.md)


@dataclass(frozen=True, kw_only=True)
class SuggestConfig(EngineConfig):
    """Which images to rank (the cache's pool, or folders run through the features' backbone), how, and the outputs."""

    folders: tuple[Path, ...] = ()  # (): the cache's pool split
    cache: Path = Path("cache")
    head: Path | None = None  # None: CACHE/head.pt
    backbone: str | None = None  # which backbone's features, when the cache holds several
    n: int = 50
    strategy: str = DEFAULT_STRATEGY
    seed: int = 0  # the random strategy's order
    out: Path = Path("suggestions.csv")  # '-': stdout
    html: Path | None = None
    thumb_size: int = 160
