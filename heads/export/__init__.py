"""Export a trained head as a whole classifier (TorchScript, ONNX or a torchvision state_dict), verified against
predict. Names load on first use, so the CLI's --help imports no torch."""

from importlib import import_module

_PUBLIC = {
    "EXPORT_FORMATS": "config", "ExportConfig": "config", "ExportError": "metadata", "ExportMetadata": "metadata",
    "ExportSummary": "runner", "export_head": "runner", "caller_example": "examples",
}
__all__ = list(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
