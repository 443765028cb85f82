"""The linear head over cached features: training, its checkpoint, and using it (predict/). Names load on first use."""

from headstart.features.lazy import lazy_names

_PUBLIC = {
    "HeadCheckpoint": "checkpoint",
    "HeadFileError": "checkpoint",
    "load_head": "checkpoint",
    "save_head": "checkpoint",
    "FitSummary": "fit",
    "fit_head": "fit",
    "LinearHead": "linear",
    "PredictConfig": "config",
    "TrainConfig": "config",
    "Predictor": "predict.predictor",
    "Prediction": "predict.writer",
    "write_predictions": "predict.writer",
    "predict_files": "predict.runner",
    "evaluate_head": "predict.evaluation",
    "train_sgd": "train",
    "train_one_epoch": "train",
    "SweepConfig": "config",
    "sweep_heads": "sweep",
}
__all__ = list(_PUBLIC)

__getattr__ = lazy_names(__name__, _PUBLIC)
