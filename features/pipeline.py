"""Decode images in DataLoader workers and run them through the backbone in batches, in input order.

The same code serves extract and predict, so both see identical pixels and identical features.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from typing import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from .backbone import FEATURE_DIM, Backbone, pick_device
from .folder import ImageEntry
from .images import FileStamp, ImageDecodeError, Preprocessing, build_transform, decode_image, read_file

ProgressCallback = Callable[[int, int], None]
ENGINES = ("local", "ray")


def default_workers() -> int:
    """Decoding workers: as many as there are cores, at most 8, none where there is only one core."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 0 if cores < 2 else min(8, cores)


@dataclass
class EmbeddedBatch:
    """A batch of entries: per entry a stamp or an error; features for the entries without error, in order."""

    entries: list[ImageEntry]
    stamps: list[FileStamp | None]
    errors: list[str | None]
    features: np.ndarray


class _DecodedImages(TorchDataset):
    """Reads and preprocesses one file per item; a bad file becomes an error string, never an exception."""

    def __init__(self, entries: list[ImageEntry], preprocessing: Preprocessing):
        self.entries = entries
        self.transform = build_transform(preprocessing)
        self.draft_size = preprocessing.draft_size

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int):
        return index, *load_image(self.entries[index].path, self.transform, self.draft_size)


def load_image(path: str | os.PathLike, transform: Callable,
               draft_size: int | None) -> tuple[torch.Tensor | None, FileStamp | None, str | None]:
    """(tensor, stamp, None) for a good file, (None, None, reason) for a bad one; both engines decode through here."""
    try:
        data, stamp = read_file(path)
        return transform(decode_image(data, draft_size)), stamp, None
    except ImageDecodeError as error:
        return None, None, str(error)
    except (OSError, ValueError, RuntimeError) as error:  # pixels Pillow decoded but torchvision cannot use
        return None, None, f"cannot preprocess image: {error}"


def _collate(items):
    indices = [item[0] for item in items]
    tensors = [item[1] for item in items if item[1] is not None]
    batch = torch.stack(tensors) if tensors else None
    return indices, batch, [item[2] for item in items], [item[3] for item in items]


def embed_images(
    entries: list[ImageEntry],
    backbone: Backbone,
    preprocessing: Preprocessing,
    batch_size: int = 32,
    workers: int | None = None,
    on_progress: ProgressCallback | None = None,
) -> Iterator[EmbeddedBatch]:
    """Yield the features of entries batch by batch, in the order given."""
    if not entries:
        return
    workers = default_workers() if workers is None else workers
    loader = DataLoader(
        _DecodedImages(entries, preprocessing),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=_collate,
        pin_memory=backbone.device.type == "cuda",
        prefetch_factor=4 if workers else None,
    )
    done = 0
    for indices, batch, stamps, errors in loader:
        features = backbone.features(batch) if batch is not None else torch.zeros(0, FEATURE_DIM)
        done += len(indices)
        if on_progress:
            on_progress(done, len(entries))
        yield EmbeddedBatch([entries[i] for i in indices], stamps, errors, features.numpy())


# embed_images' signature: (entries, backbone, preprocessing, batch_size, workers, on_progress) -> EmbeddedBatches
Embedder = Callable[..., Iterator[EmbeddedBatch]]


def driver_device(engine: str, device: str) -> torch.device:
    """Where this process builds the backbone: the chosen device locally; the CPU under Ray, whose actors pick theirs."""
    return pick_device(device if engine == "local" else "cpu")


def choose_embedder(engine: str = "local", device: str = "auto", address: str | None = None) -> Embedder:
    """embed_images for engine "local"; for "ray", a function with its contract that runs on a Ray cluster."""
    if engine == "local":
        return embed_images
    if engine != "ray":
        raise ValueError(f"unknown engine {engine!r} (use one of {', '.join(ENGINES)})")
    try:
        from . import ray_engine
    except ImportError:  # Ray is an optional extra; the local engine never imports it
        raise ValueError("--engine ray needs Ray: pip install -e '.[ray]'") from None
    return partial(ray_engine.embed_images, device=device, address=address)
