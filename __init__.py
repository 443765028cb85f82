"""headstart: cache a frozen backbone's features once, train a head over them in seconds, predict folders to CSV.

The Python API (docs/python-api.md): `extract`, `train_head`, `sweep`, `evaluate`, `audit`, `export`, `embeddings`, and
`Classifier.load(cache).predict(images)`. Names load on first use, so `import headstart` imports no torch. Every
error a step raises on bad input is one of the exceptions below, with a message naming the file and the fix.
"""

__version__ = "0.1.0"  # before any import: every module takes the version from here

from headstart.features.lazy import lazy_names  # noqa: E402

_PUBLIC = {
    **dict.fromkeys(("extract", "train_head", "sweep", "evaluate", "audit", "export", "embeddings"), "headstart.api"),
    **dict.fromkeys(("Classifier", "Result", "Predictions"), "headstart.api"),
    # errors: the library's typed exceptions, which the CLI prints as one line
    "DatasetError": "headstart.features.folder",
    "StoreError": "headstart.features.store",
    "WeightsError": "headstart.features.backbone",
    "DeviceError": "headstart.features.backbone",
    "DownloadError": "headstart.features.download",
    "HeadFileError": "headstart.heads.checkpoint",
    "ExportError": "headstart.heads.export.metadata",
    "EmbeddingsError": "headstart.features.vectors.formats",
    "CacheBusyError": "headstart.features.files.lock",
    "UnsafeFileError": "headstart.features.files.regular",
}
__all__ = ["__version__", *_PUBLIC]

__getattr__ = lazy_names(__name__, _PUBLIC)
