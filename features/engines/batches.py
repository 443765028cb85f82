"""What every engine shares: the batch it yields, the engine's contract, and the one way a file becomes a tensor."""

from __future__ import annotations

import os
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

from headstart.features.backbone import Backbone
from headstart.features.folder import ImageEntry
from headstart.features.images import FileStamp, ImageDecodeError, decode_image, read_file
from headstart.features.provenance import Preprocessing

if TYPE_CHECKING:
    from headstart.features.engines.shards import ShardTarget

ProgressCallback = Callable[[int, int], None]


@dataclass
class EmbeddedBatch:
    """A batch of entries: per entry a stamp or an error; features for the entries without error, in order."""

    entries: list[ImageEntry]
    stamps: list[FileStamp | None]
    errors: list[str | None]
    features: np.ndarray


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
