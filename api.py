"""The Python API for notebooks: extract, train a head, load it as a Classifier, predict paths, PIL images or arrays.

Every step the command line has is one function here, named alike (`extract`, `train_head`, `sweep`, `evaluate`,
`audit`, `export`, `embeddings`), taking the command's options as keyword arguments and returning the summary the
command prints. Nothing prints unless asked: pass `progress=True` (a line on stderr) or a callable
`progress(done, total)`. Errors are the typed exceptions `headstart` exports (DatasetError, StoreError, ...), the
ones the CLI turns into one-line messages.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas

    from headstart.features.extract import ExtractSummary
    from headstart.features.vectors.step import EmbeddingsSummary
    from headstart.heads.audit.result import AuditResult
    from headstart.heads.export.runner import ExportSummary
    from headstart.heads.fit import FitSummary
    from headstart.heads.predict.evaluation import Evaluation
    from headstart.heads.predict.predictor import Predictor
    from headstart.heads.predict.writer import Prediction
    from headstart.heads.sweep.step import SweepSummary

Progress = bool | Callable[[int, int], None]


def _on_progress(progress: Progress, label: str) -> Callable[[int, int], None] | None:
    """None, the caller's callback, or (progress=True) a counter rewritten in place on stderr."""
    if callable(progress):
        return progress
    if not progress:
        return None

    def show(done: int, total: int) -> None:
        sys.stderr.write(f"\r{label}: {done}/{total}" + ("\n" if done >= total else ""))
        sys.stderr.flush()

    return show


def _config(kind: type, options: dict[str, Any], **given: Any) -> Any:
    """kind(**given, **options), refusing an option kind does not have with the list of those it has."""
    known = {field.name for field in fields(kind)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(unknown)}; {kind.__name__} takes {', '.join(sorted(known))}")
    return kind(**given, **options)


def extract(
    data: str | os.PathLike = "hymenoptera_data",
    cache: str | os.PathLike = "cache",
    *,
    progress: Progress = False,
    **options: Any,
) -> ExtractSummary:
    """Run the frozen backbone over every image of data once and cache the features in cache/features.h5.

    options are ExtractConfig's (weights="imagenet"|"none"|FILE, precision="fp32"|"bf16", device, batch_size, ...).
    A second call computes only new or changed images."""
    from headstart.features.config import ExtractConfig
    from headstart.features.extract import extract_features

    config = _config(ExtractConfig, options, data=Path(data), cache=Path(cache))
    return extract_features(config, _on_progress(progress, "extract"))


def train_head(cache: str | os.PathLike = "cache", *, progress: Progress = False, **options: Any) -> FitSummary:
    """Train the head on cache/features.h5 and write head.pt, metrics.json and the plots beside it.

    options are TrainConfig's (epochs, lr, momentum, batch_size, seed, head="sgd"|"logreg", weight_decay,
    class_weight, c, threshold); progress is called once per epoch. Multi-label features train by their own recipe's
    epochs and lr where those are not given (heads/multilabel/recipe.py)."""
    from headstart.heads.config import TrainConfig
    from headstart.heads.fit import fit_head
    from headstart.heads.multilabel.recipe import RECIPE_OPTIONS, planned_epochs

    config = _config(TrainConfig, options)
    unset = [name for name in RECIPE_OPTIONS if name not in options]
    report = _on_progress(progress, "epoch")
    if not report:
        return fit_head(Path(cache), config, None, unset=unset)
    total = planned_epochs(Path(cache), config, unset)
    return fit_head(Path(cache), config, lambda epoch, _: report(epoch, total), unset=unset)


def sweep(cache: str | os.PathLike = "cache", *, progress: Progress = False, **options: Any) -> SweepSummary:
    """Choose the head's settings by k-fold cross-validation on train, refit the best, save it as train_head does.

    options are SweepConfig's (folds, grid=FILE, seed)."""
    from headstart.heads.config import SweepConfig
    from headstart.heads.sweep.step import sweep_heads

    return sweep_heads(Path(cache), _config(SweepConfig, options), _on_progress(progress, "sweep"))


def evaluate(
    folder: str | os.PathLike,
    out: str | os.PathLike,
    cache: str | os.PathLike = "cache",
    *,
    html: str | os.PathLike | None = None,
    labels: str | os.PathLike | None = None,
    progress: Progress = False,
    **options: Any,
) -> Evaluation:
    """Score the cache's head on folder (one sub-folder per class; with labels, a label table whose paths are relative
    to folder); write its mistakes to out (and a page to html). options are PredictConfig's (backbone, weights, ...)."""
    from headstart.heads.config import EvaluateTable, PredictConfig
    from headstart.heads.predict.evaluation import evaluate_head

    config = _config(PredictConfig, options)
    table = EvaluateTable(path=Path(labels)) if labels is not None else None
    return evaluate_head(folder, cache, out, config, _on_progress(progress, "evaluate"), html=html, table=table)


def audit(cache: str | os.PathLike = "cache", *, progress: Progress = False, **options: Any) -> AuditResult:
    """Audit the cached features: likely wrong labels, duplicates and leakage, outliers; writes cache/audit/.

    options are AuditConfig's (folds, score, near_threshold, report_rows, ...)."""
    from headstart.heads.audit.config import AuditConfig
    from headstart.heads.audit.run import audit_cache

    report = _on_progress(progress, "audit")
    on_progress = (lambda stage, done, total: report(done, total)) if report else None
    return audit_cache(_config(AuditConfig, options, cache=Path(cache)), on_progress)


def export(
    out: str | os.PathLike, cache: str | os.PathLike = "cache", *, format: str = "torchscript", **options: Any
) -> ExportSummary:
    """Write backbone, head and softmax as one file (torchscript, onnx or torchvision), verified against predict."""
    from headstart.heads.export.config import ExportConfig
    from headstart.heads.export.runner import export_head

    return export_head(_config(ExportConfig, options, out=Path(out), cache=Path(cache), format=format))


def embeddings(
    out: str | os.PathLike, cache: str | os.PathLike = "cache", *, format: str = "parquet", progress: Progress = False
) -> EmbeddingsSummary:
    """Write every cached row (path, split, label, sha256, the features) to out: Parquet (needs pyarrow) or .npy
    with OUT.csv and OUT.json beside it; the features file's header (backbone, weights, preprocessing) goes in its
    metadata."""
    from headstart.features.vectors.config import EmbeddingsConfig
    from headstart.features.vectors.step import write_embeddings

    config = EmbeddingsConfig(out=Path(out), cache=Path(cache), format=format)
    return write_embeddings(config, _on_progress(progress, "embeddings"))


@dataclass(frozen=True)
class Result:
    """One image's prediction. label is None (and error says why) when the image could not be read."""

    source: str  # the file's path, or "<image N>" for an in-memory image at position N of the list given
    label: str | None
    confidence: float | None
    probabilities: dict[str, float]
    ood_score: float | None = None  # None: the head has no unknown-image model
    unknown: bool | None = None  # ood_score above the head's threshold: unlike the training images
    error: str | None = None


class Predictions(list[Result]):
    """Classifier.predict's results, in the order of the images; to_pandas() for a DataFrame."""

    def to_pandas(self) -> pandas.DataFrame:
        """One row per image (source, label, confidence, ood_score, unknown, error, then prob_<class>); needs pandas."""
        try:
            import pandas
        except ImportError:
            raise ImportError("to_pandas() needs pandas (not a dependency of headstart): pip install pandas") from None
        rows = [
            {
                **{name: getattr(result, name) for name in ("source", "label", "confidence", "ood_score", "unknown")},
                "error": result.error,
                **{f"prob_{name}": value for name, value in result.probabilities.items()},
            }
            for result in self
        ]
        return pandas.DataFrame(rows)


Image = Any  # a path (str or os.PathLike), a PIL image, or a numpy array (H x W or H x W x 3|4, uint8)


class Classifier:
    """A trained head with the backbone and preprocessing its features came from; load() it, then predict()."""

    def __init__(self, predictor: Predictor):
        self._predictor = predictor

    @classmethod
    def load(
        cls,
        cache_or_head_file: str | os.PathLike = "cache",
        *,
        weights: str | None = None,
        device: str = "auto",
        backbone: str | None = None,
    ) -> Classifier:
        """The head in a cache folder (its head.pt) or a head file; weights default to those the head records, and a
        backbone named must be the one it records."""
        from headstart.features.files.cachedir import HEAD_FILE
        from headstart.heads.config import PredictConfig
        from headstart.heads.predict.predictor import Predictor

        path = Path(cache_or_head_file)
        head_file = path / HEAD_FILE if path.is_dir() else path
        return cls(
            Predictor.load(head_file, PredictConfig(weights=weights, device=device, workers=0, backbone=backbone))
        )

    @property
    def classes(self) -> list[str]:
        return list(self._predictor.classes)

    def predict(self, images: Image | Iterable[Image], *, progress: Progress = False) -> Predictions:
        """Predictions for paths (files, or folders searched for images), PIL images or numpy arrays, in order."""
        from headstart.heads.predict.pixels import predict_items

        items = [images] if isinstance(images, (str, os.PathLike)) or not _iterable(images) else list(images)
        found = predict_items(self._predictor, items, _on_progress(progress, "predict"))
        return Predictions(self._result(source, prediction) for source, prediction in found)

    def _result(self, source: str, prediction: Prediction) -> Result:
        classes = self._predictor.classes
        if prediction.probabilities is None:
            return Result(source, None, None, {}, error=prediction.error)
        best = int(prediction.ranked(1)[0])
        values: np.ndarray = prediction.probabilities
        return Result(
            source,
            classes[best],
            float(values[best]),
            {name: float(value) for name, value in zip(classes, values)},
            prediction.ood_score,
            prediction.unknown,
        )


def _iterable(value: object) -> bool:
    """A list of images, as opposed to one image (a numpy array is one image, though numpy arrays iterate)."""
    if hasattr(value, "__array_interface__") or hasattr(value, "getpixel"):
        return False
    return isinstance(value, Iterable)
