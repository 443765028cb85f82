"""What `headstart backbones` shows: every registry entry with its width, input size, GFLOPs, preprocessing, default
weights, and whether those weights are already in torchvision's cache on this machine; then the `timm:MODEL` form,
and whether timm (the `.[timm]` extra) is installed to take it."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec

from headstart.features.backbones.network import weights_cached, weights_path
from headstart.features.backbones.registry import ENTRIES, FOLD_NONE, SOURCE_TIMM, TIMM_PREFIX, BackboneEntry

TIMM_FORM = f"{TIMM_PREFIX}MODEL"
TIMM_INSTALL = "pip install 'headstart[timm]'"  # features/backbones/timm_models.py's hint, without importing torch


def describe_backbones() -> list[dict]:
    """One plain dict (JSON-ready) per registry entry, in the registry's order, then the timm form's."""
    return [*(_describe_entry(entry) for entry in ENTRIES.values()), describe_timm()]


def _describe_entry(entry: BackboneEntry) -> dict:
    preprocessing = entry.preprocessing.describe()
    del preprocessing["name"]
    return {
        "name": entry.name,
        "source": entry.source,
        "installed": True,
        "width": entry.width,
        "input_size": entry.crop,
        "gflops": entry.gflops,
        "preprocessing": preprocessing,
        "weights": entry.weights,
        "weights_cached": weights_cached(entry),
        "weights_file": str(weights_path(entry)),
        "fold": entry.fold,
        "bf16": entry.bf16,
    }


def _timm_version() -> str | None:
    if find_spec("timm") is None:
        return None
    try:
        return version("timm")
    except PackageNotFoundError:
        return "unknown version"


def describe_timm() -> dict:
    """`--backbone timm:MODEL`: any model timm creates, width and preprocessing its own (read when it is named), and
    whether timm is installed here (None: `install` says how)."""
    installed = _timm_version()
    return {
        "name": TIMM_FORM,
        "source": SOURCE_TIMM,
        "installed": installed is not None,
        "timm_version": installed,
        "install": None if installed else TIMM_INSTALL,
        "width": None,  # the model's num_features
        "input_size": None,
        "gflops": None,
        "preprocessing": "timm's data config of MODEL (resolve_model_data_config)",
        "weights": "MODEL's default pretrained tag, from timm's cache (never downloaded)",
        "weights_cached": None,
        "weights_file": None,
        "fold": FOLD_NONE,
        "bf16": "autocast",
    }
