"""One module per export format, each with files(out), write(classifier, metadata, paths), load(paths) -> run,
OPSET (the ONNX opset, or None), BF16 (whether it can compute a bf16 head's backbone in bfloat16) and
PLAIN_BACKBONE (whether it needs torchvision's own layers rather than predict's network)."""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

from headstart.heads.export.config import EXPORT_FORMATS
from headstart.heads.export.metadata import ExportError

_MODULES = {"torchscript": "to_torchscript", "onnx": "to_onnx", "torchvision": "to_torchvision"}
_OPTIONAL = {"onnx", "onnxruntime", "onnxscript"}  # the `.[export]` extra


def exporter_for(name: str) -> ModuleType:
    """The format's module; an unknown name or a missing optional package is an ExportError saying what to do."""
    if name not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {name!r} (use one of {', '.join(EXPORT_FORMATS)})")
    try:
        return import_module(f".{_MODULES[name]}", __package__)
    except ImportError as error:
        if (error.name or "").split(".")[0] not in _OPTIONAL:
            raise
        raise ExportError(
            f"--format {name} needs onnx, onnxscript and onnxruntime ({error.name} is missing): "
            "pip install -e '.[export]'"
        ) from None
