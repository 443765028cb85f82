"""Images -> frozen ResNet18 -> cached 512-d features. Names load on first use, so importing stays light."""

from headstart import __version__
from headstart.features.lazy import lazy_names

_PUBLIC = {
    "Backbone": "backbone",
    "DeviceError": "backbone",
    "WeightsError": "backbone",
    "load_backbone": "backbone",
    "pick_device": "backbone",
    "EngineConfig": "config",
    "ExtractConfig": "config",
    "ExtractSummary": "extract",
    "extract_features": "extract",
    "DatasetError": "folder",
    "find_dataset": "folder",
    "find_images": "folder",
    "ImageDecodeError": "images",
    "CacheBusyError": "headstart.features.files.lock",
    "cache_lock": "headstart.features.files.lock",
    "PREPROCESSINGS": "provenance",
    "Preprocessing": "provenance",
    "WeightsIdentity": "provenance",
    "FeatureStore": "store",
    "FeaturesHeader": "store",
    "StoreError": "store",
    "build_engine": "engines",
}
__all__ = ["__version__", *_PUBLIC]

__getattr__ = lazy_names(__name__, _PUBLIC)
