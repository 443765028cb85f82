"""The predict step: rebuild the backbone and preprocessing a head was trained on, then label images."""

from __future__ import annotations

import os
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from features import PREPROCESSINGS, Backbone, WeightsError, WeightsIdentity, embed_images, load_backbone
from features.folder import ImageEntry
from features.images import Preprocessing
from features.pipeline import Embedder, ProgressCallback, choose_embedder, driver_device

from .config import PredictConfig
from .checkpoint import HeadCheckpoint, load_head
from .predictions import Prediction


def _recorded_weights(recorded: WeightsIdentity) -> str:
    """The --weights value that rebuilds the backbone a head records."""
    if recorded.kind == "file" and not Path(recorded.name).is_file():
        raise WeightsError(
            f"the head was trained on features from weights file {recorded.name}, which is gone: "
            "pass the same weights with --weights FILE"
        )
    return recorded.spec()


def _preprocessing_of(checkpoint: HeadCheckpoint) -> Preprocessing:
    for preprocessing in PREPROCESSINGS.values():
        if preprocessing.describe() == checkpoint.preprocessing:
            return preprocessing
    raise WeightsError(f"the head records a preprocessing this headstart does not know: {checkpoint.preprocessing}")


@dataclass
class Predictor:
    """A head with the backbone and preprocessing its features came from."""

    checkpoint: HeadCheckpoint
    backbone: Backbone
    preprocessing: Preprocessing
    config: PredictConfig
    embed: Embedder = embed_images

    @classmethod
    def load(cls, head_file: str | os.PathLike, config: PredictConfig = PredictConfig()) -> "Predictor":
        embed = choose_embedder(config.engine, config.device, config.address)
        checkpoint = load_head(head_file)
        recorded = WeightsIdentity.from_dict(checkpoint.weights)
        spec = config.weights or _recorded_weights(recorded)
        backbone = load_backbone(spec, driver_device(config.engine, config.device), checkpoint.precision)
        if not backbone.identity.same_weights(recorded):
            raise WeightsError(
                f"--weights {spec} ({backbone.identity.describe()}) is not what the head was trained on "
                f"({recorded.describe()}): use those weights, or re-run extract and train-head with these"
            )
        return cls(checkpoint, backbone, _preprocessing_of(checkpoint), config, embed)

    @property
    def classes(self) -> list[str]:
        return self.checkpoint.classes

    def predict(self, entries: list[ImageEntry], on_progress: ProgressCallback | None = None) -> Iterator[Prediction]:
        """One Prediction per entry, in the order given."""
        head = self.checkpoint.head
        # closing: when the consumer stops early, the decoding workers (or the Ray pipeline) stop with it.
        with closing(self.embed(entries, self.backbone, self.preprocessing, self.config.batch_size,
                                self.config.workers, on_progress)) as batches:
            for batch in batches:
                with torch.inference_mode():
                    probabilities = iter(torch.softmax(head(torch.from_numpy(batch.features)), dim=1).numpy())
                for entry, error in zip(batch.entries, batch.errors):
                    yield Prediction(entry.name, None, error) if error else Prediction(entry.name, next(probabilities))
