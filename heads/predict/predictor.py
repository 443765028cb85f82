"""A trained head with the backbone, preprocessing and engine its features came from: images in, predictions out."""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import torch

from headstart.features import Backbone, WeightsError, WeightsIdentity, build_engine, load_backbone
from headstart.features.engines.batches import Engine, ProgressCallback
from headstart.features.files.cachedir import check_head_backbone
from headstart.features.folder import ImageEntry
from headstart.features.provenance import Preprocessing, RecordError
from headstart.heads.checkpoint import HeadCheckpoint, HeadFileError, load_head
from headstart.heads.config import PredictConfig
from headstart.heads.predict.writer import Prediction


def _recorded_weights(recorded: WeightsIdentity) -> str:
    """The --weights value that rebuilds the backbone a head records."""
    if recorded.kind == "file" and not Path(recorded.name).is_file():
        raise WeightsError(
            f"the head was trained on features from weights file {recorded.name}, which is gone: "
            "pass the same weights with --weights FILE"
        )
    return recorded.spec()


def _preprocessing_of(head_file: str | os.PathLike, checkpoint: HeadCheckpoint) -> Preprocessing:
    try:
        return Preprocessing.from_description(checkpoint.preprocessing)
    except RecordError as error:
        raise HeadFileError(f"{head_file} records {error}") from None


@dataclass
class Predictor:
    """A head with the backbone and preprocessing its features came from, and the engine that runs the backbone."""

    checkpoint: HeadCheckpoint
    backbone: Backbone
    preprocessing: Preprocessing
    engine: Engine

    @classmethod
    def load(
        cls,
        head_file: str | os.PathLike,
        config: PredictConfig = PredictConfig(),
        on_warning: Callable[[str], None] | None = None,
    ) -> Predictor:
        """Rebuild what head_file records; weights other than those it was trained on are refused."""
        engine = build_engine(config)
        checkpoint = load_head(head_file)
        check_head_backbone(head_file, checkpoint.backbone, config.backbone)
        recorded = WeightsIdentity.from_dict(checkpoint.weights)
        spec = config.weights or _recorded_weights(recorded)
        backbone = load_backbone(
            spec,
            engine.driver_device,
            checkpoint.precision,
            compile=config.compile,
            on_warning=on_warning,
            backbone=checkpoint.backbone,
        )
        if backbone.width != checkpoint.head.in_features:
            raise HeadFileError(
                f"{head_file} takes {checkpoint.head.in_features}-d features, but its backbone {checkpoint.backbone} "
                f"computes {backbone.width}-d ones: re-run train-head"
            )
        if not backbone.identity.same_weights(recorded):
            raise WeightsError(
                f"--weights {spec} ({backbone.identity.describe()}) is not what the head was trained on "
                f"({recorded.describe()}): use those weights, or re-run extract and train-head with these"
            )
        return cls(checkpoint, backbone, _preprocessing_of(head_file, checkpoint), engine)

    @property
    def classes(self) -> list[str]:
        return self.checkpoint.classes

    @property
    def unknown_rate(self) -> float | None:
        """The share of in-distribution images the head's threshold flags; None: it has no unknown-image model."""
        return self.checkpoint.unknown.rate if self.checkpoint.unknown else None

    def predict(
        self, entries: list[ImageEntry], on_progress: ProgressCallback | None = None
    ) -> Generator[Prediction, None, None]:
        """One Prediction per entry, in the order given; ood_score and unknown too when the head has a model."""
        # closing: when the consumer stops early, the decoding workers (or the Ray pipeline) stop with it.
        with closing(self.engine.embed(entries, self.backbone, self.preprocessing, on_progress)) as batches:
            for batch in batches:
                scored = self.score(torch.from_numpy(batch.features))
                for entry, error, stamp in zip(batch.entries, batch.errors, batch.stamps):
                    if error:
                        yield Prediction(entry.name, None, error)
                    else:
                        probabilities, _, ood_score, unknown = next(scored)
                        digest = stamp.sha256 if stamp else None
                        yield Prediction(entry.name, probabilities, None, ood_score, unknown, sha256=digest)

    def score(self, features: torch.Tensor) -> Iterator[tuple]:
        """(probabilities, None, ood_score, unknown) per row of a batch's readable images."""
        unknown = self.checkpoint.unknown
        with torch.inference_mode():
            logits = self.checkpoint.head(features)
            # a multi-label head's outputs are independent sigmoids (heads/multilabel/)
            multi = self.checkpoint.multilabel is not None
            probabilities = (torch.sigmoid(logits) if multi else torch.softmax(logits, dim=1)).numpy()
            scores = unknown.score(features).tolist() if unknown else [None] * len(features)
        for row, score in zip(probabilities, scores):
            yield row, None, score, None if unknown is None else score > unknown.threshold
