"""What every engine shares: the batch it yields, the engine's contract (and where a cluster's workers write their
rows), and the one way a file becomes a tensor."""

from __future__ import annotations

import os
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from headstart.features.backbone import Backbone
from headstart.features.folder import ImageEntry
from headstart.features.images import FileStamp, ImageDecodeError, decode_image, read_file
from headstart.features.provenance import Preprocessing

ProgressCallback = Callable[[int, int], None]


@dataclass
class EmbeddedBatch:
    """A batch of entries: per entry a stamp or an error; features for the entries without error, in order."""

    entries: list[ImageEntry]
    stamps: list[FileStamp | None]
    errors: list[str | None]
    features: np.ndarray


@dataclass
class ShardReport:
    """What the shards did in one extract: kept from earlier runs, discarded, written now, bytes the driver got."""

    resumed: int = 0  # shards of earlier runs whose rows this run reused
    discarded: int = 0  # files in the shards folder that did not check (or had no manifest entry)
    written: int = 0  # shards the workers wrote in this run
    driver_bytes: int = 0  # bytes the pipeline sent back to the driver (manifest entries and row indices)
    feature_bytes: int = 0  # of those, bytes of feature rows (float arrays): the design says 0


@dataclass(frozen=True)
class ShardTarget:
    """Where and how a worker writes its block: the shards folder, the features header, this run's id; and per
    entry of the engine's list, its split (the shard's group)."""

    folder: str
    header: dict
    run: str
    splits: tuple[str, ...]
    report: ShardReport = field(default_factory=ShardReport, compare=False)


class Engine(Protocol):
    """Runs the backbone over entries, yielding EmbeddedBatches in input order; extract and predict take one."""

    @property
    def batch_size(self) -> int | None:
        """Images per forward pass; None: the engine picks one for the device."""

    @property
    def driver_device(self) -> torch.device:
        """Where this process builds the backbone."""

    def describe(self) -> str:
        """Where the backbone runs, for the user."""

    def embed(
        self,
        entries: list[ImageEntry],
        backbone: Backbone,
        preprocessing: Preprocessing,
        on_progress: ProgressCallback | None = None,
        shards: ShardTarget | None = None,
    ) -> Generator[EmbeddedBatch, None, None]:
        """The features of entries batch by batch, in the order given; closing the iterator stops the work.
        shards: where a cluster's workers write the rows themselves (extract); an engine computing here ignores it."""


def load_image(
    path: str | os.PathLike, transform: Callable, draft_size: int | None
) -> tuple[torch.Tensor | None, FileStamp | None, str | None]:
    """(tensor, stamp, None) for a good file, (None, None, reason) for a bad one; both engines decode through here."""
    try:
        data, stamp = read_file(path)
        return transform(decode_image(data, draft_size)), stamp, None
    except ImageDecodeError as error:
        return None, None, str(error)
    except (OSError, ValueError, RuntimeError) as error:  # pixels Pillow decoded but torchvision cannot use
        return None, None, f"cannot preprocess image: {error}"
