"""Options of the extract step and of running the backbone, importable without torch so --help stays instant."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from headstart.features.backbones.registry import DEFAULT_BACKBONE


@dataclass(frozen=True, kw_only=True)
class EngineConfig:
    """How and where the backbone runs; extract and predict share these options (features.engines.build_engine)."""

    device: str = "auto"
    batch_size: int | None = None  # None: 8 on a CPU (16 in bf16), 64 on a GPU (local engine), 32 per Ray actor
    workers: int | None = None  # local engine: decoding threads (CPU) or processes (GPU); None: one per core, <= 32
    engine: str = "local"  # or "ray"
    address: str | None = None  # the Ray cluster to join; None: RAY_ADDRESS, or a local Ray
    compile: bool = False  # torch.compile the (folded) backbone: pays back on large folders only (docs/benchmark.md)


@dataclass(frozen=True, kw_only=True)
class ExtractConfig(EngineConfig):
    """Options of the extract step; the CLI's defaults come from here."""

    data: Path = Path("hymenoptera_data")
    cache: Path = Path("cache")
    backbone: str = DEFAULT_BACKBONE  # a name in features/backbones/registry.py
    weights: str = "imagenet"
    preprocess: str = "imagenet"
    precision: str = "fp32"
    runtime: str = "torch"  # or "onnxruntime": the folded fp32 network in an onnxruntime CPU session (runtime.py)
    # A folder of class folders without train/ is split by content (features/sources/rule.py); None: 0.2 val, 0 test.
    val_fraction: float | None = None
    test_fraction: float | None = None
    split_seed: int = 0
    multi_label: bool = False  # the same content in several class folders is one image with several labels
    # A label table (features/sources/tables.py): its paths relative to `data`, its columns by name; --strict makes
    # a row naming a missing or unreadable file fatal instead of a listed skip. None: `data` is a folder.
    labels: Path | None = None
    path_column: str = "path"
    label_column: str = "label"
    split_column: str | None = None  # None: the column `split` when the table has it
    strict: bool = False
    exclude: Path | None = None  # an ignore list (features/sources/exclude.py): images left out, not moved
    pool: tuple[Path, ...] = ()  # folders of unlabeled images inside `data`, cached in the `pool` split
