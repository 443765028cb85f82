"""Images -> frozen ResNet18 -> cached 512-d features. Names load on first use, so importing stays light."""

from .lazy import lazy_names

__version__ = "0.1.0"

_PUBLIC = {
    "Backbone": "backbone", "DeviceError": "backbone", "WeightsError": "backbone", "load_backbone": "backbone",
    "pick_device": "backbone",
    "EngineConfig": "config", "ExtractConfig": "config", "ExtractSummary": "extract", "extract_features": "extract",
    "DatasetError": "folder", "find_dataset": "folder", "find_images": "folder", "ImageDecodeError": "images",
    "CacheBusyError": "lock", "cache_lock": "lock", "PREPROCESSINGS": "provenance", "Preprocessing": "provenance",
    "WeightsIdentity": "provenance", "FEATURES_FILE": "store", "FeatureStore": "store", "FeaturesHeader": "store",
    "StoreError": "store", "build_engine": "engines",
}
__all__ = ["__version__", *_PUBLIC]

__getattr__ = lazy_names(__name__, _PUBLIC)
