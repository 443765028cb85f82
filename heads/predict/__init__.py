"""Using a trained head: predict (files -> predictions CSV/JSONL) and evaluate (a labelled folder -> scores)."""

from importlib import import_module

_PUBLIC = {
    "Evaluation": "evaluation", "evaluate_folder": "evaluation", "evaluate_head": "evaluation",
    "Predictor": "predictor", "PredictSummary": "runner", "predict_files": "runner", "FORMATS": "writer",
    "Prediction": "writer", "write_predictions": "writer",
}
__all__ = list(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
