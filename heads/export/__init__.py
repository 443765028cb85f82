"""Export a trained head as a whole classifier (TorchScript, ONNX or a torchvision state_dict), verified against
predict. Names load on first use, so the CLI's --help imports no torch."""

from headstart.features.lazy import lazy_names

_PUBLIC = {
    "EXPORT_FORMATS": "config",
    "ExportConfig": "config",
    "ExportError": "metadata",
    "ExportMetadata": "metadata",
    "ExportSummary": "runner",
    "export_head": "runner",
    "caller_example": "examples",
}
__all__ = list(_PUBLIC)

__getattr__ = lazy_names(__name__, _PUBLIC)
