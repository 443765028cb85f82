"""The linear head over cached features: training, its checkpoint, and prediction. Names load on first use."""

from importlib import import_module

_PUBLIC = {
    "HEAD_FILE": "checkpoint", "HeadCheckpoint": "checkpoint", "HeadFileError": "checkpoint",
    "load_head": "checkpoint", "save_head": "checkpoint", "METRICS_FILE": "fit", "FitSummary": "fit",
    "fit_head": "fit", "LinearHead": "linear", "PredictConfig": "config", "TrainConfig": "config",
    "Predictor": "predict", "Prediction": "predictions", "write_predictions": "predictions",
    "train_head": "train", "train_one_epoch": "train",
}
__all__ = list(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
