"""Engines run the frozen backbone over image files: local (this process) or ray (a Ray cluster); built once here."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from headstart.features.config import EngineConfig
    from headstart.features.engines.batches import Engine

__all__ = ["ENGINES", "build_engine"]

ENGINES = ("local", "ray")


def build_engine(config: EngineConfig) -> Engine:
    """The engine config.engine names, with its device, batch size and workers; the one place that reads the name."""
    if config.engine == "local":
        from headstart.features.engines.local import LocalEngine

        return LocalEngine(device=config.device, batch_size=config.batch_size, workers=config.workers)
    if config.engine != "ray":
        raise ValueError(f"unknown engine {config.engine!r} (use one of {', '.join(ENGINES)})")
    try:
        from headstart.features.engines.ray import RayEngine
    except ImportError:  # Ray is an optional extra; the local engine never imports it
        raise ValueError("--engine ray needs Ray: pip install -e '.[ray]'") from None
    return RayEngine(device=config.device, batch_size=config.batch_size or RayEngine.batch_size, address=config.address)
