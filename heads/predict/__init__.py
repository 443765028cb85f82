"""Using a trained head: predict (files -> predictions CSV/JSONL) and evaluate (a labelled folder -> scores)."""

from headstart.features.lazy import lazy_names

_PUBLIC = {
    "Evaluation": "evaluation",
    "evaluate_folder": "evaluation",
    "evaluate_head": "evaluation",
    "Predictor": "predictor",
    "PredictSummary": "runner",
    "predict_files": "runner",
    "FORMATS": "writer",
    "Prediction": "writer",
    "write_predictions": "writer",
}
__all__ = list(_PUBLIC)

__getattr__ = lazy_names(__name__, _PUBLIC)
