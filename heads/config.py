"""Options of the train-head, predict and evaluate steps, importable without torch so the CLI's --help stays instant."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from features.config import EngineConfig


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """The tutorial's recipe (head="sgd"), or scikit-learn's LogisticRegression (head="logreg"); each a CLI option."""

    epochs: int = 5
    lr: float = 0.001
    momentum: float = 0.9
    batch_size: int = 32
    seed: int = 0
    head: str = "sgd"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class PredictConfig(EngineConfig):
    """Options of the predict and evaluate steps; weights=None means the weights the head records."""

    weights: str | None = None
