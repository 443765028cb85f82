"""Options of the train-head, predict and evaluate steps, importable without torch so the CLI's --help stays instant."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from headstart.features.config import EngineConfig

CLASS_WEIGHTS = ("none", "balanced")  # TrainConfig.class_weight: heads.weighting


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """The tutorial's recipe (head="sgd"), or scikit-learn's LogisticRegression (head="logreg"); each a CLI option."""

    epochs: int = 5
    lr: float = 0.001
    momentum: float = 0.9
    batch_size: int = 32
    seed: int = 0
    head: str = "sgd"
    weight_decay: float = 0.0  # L2, applied as torch.optim.SGD applies it (to the weight and the bias)
    class_weight: str = "none"  # or "balanced": heads.weighting
    c: float = 1.0  # logreg's inverse regularisation strength (scikit-learn's C)
    threshold: float | None = None  # multi-label: one fixed threshold for every label; None: best out-of-fold F1

    def to_dict(self) -> dict:
        """Plain values; `threshold` only when set (a single-label head's record stays as it was)."""
        values = asdict(self)
        if values["threshold"] is None:
            del values["threshold"]
        return values


@dataclass(frozen=True, kw_only=True)
class PredictConfig(EngineConfig):
    """Options of the predict and evaluate steps; weights=None means the weights the head records, backbone=None
    whichever backbone it records (a name: the head must record that one)."""

    weights: str | None = None
    backbone: str | None = None


@dataclass(frozen=True, kw_only=True)
class EvaluateTable:
    """evaluate --labels: a label table (features/sources/tables.py) naming the images to score and their classes,
    its paths relative to the folder evaluate is given; --strict makes a row naming a missing file fatal."""

    path: Path
    path_column: str = "path"
    label_column: str = "label"
    strict: bool = False


@dataclass(frozen=True, kw_only=True)
class SweepConfig:
    """Options of the sweep step: k-fold cross-validation of a grid of TrainConfigs (heads.sweep)."""

    folds: int = 5
    grid: str | None = None  # a .toml or .json grid file; None: heads.sweep.grid's default grid
    seed: int = 0  # the folds' and every head's
    backbone: str | None = None  # whose features, when the cache holds several backbones'
