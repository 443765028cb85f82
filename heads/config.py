"""Options of the train-head and predict steps, importable without torch so the CLI's --help stays instant."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class PredictConfig:
    """Options of the predict step; weights=None means the weights the head records."""

    weights: str | None = None
    device: str = "auto"
    batch_size: int = 32
    workers: int | None = None
    engine: str = "local"  # or "ray": features.ray_engine
    address: str | None = None  # the Ray cluster to join; None: RAY_ADDRESS, or a local Ray
