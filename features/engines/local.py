"""The local engine: decode images on a pool of threads and run the backbone in this process, in input order.

Threads, not DataLoader worker processes: Pillow releases the GIL while it decodes and resizes, so threads decode in
parallel, with no pickling of batches between processes and no forked children inheriting open files. On a CPU the
forward pass already uses every core, so a batch is decoded (on every core) and then run, in turn: decoding beside
the forward pass made both slower than taking turns (README, Benchmark). On a GPU the next batch decodes on the
CPU while the GPU runs this one.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from ..backbone import FEATURE_DIM, Backbone, pick_device
from ..folder import ImageEntry
from ..images import normalize_pixels, pixel_transform
from ..provenance import Preprocessing
from .batches import EmbeddedBatch, ProgressCallback, load_image

CPU_BATCH_SIZE = 8  # fastest of 4-64 for the folded fp32 and bf16 network on 2 cores (README, Benchmark)
GPU_BATCH_SIZE = 64
DECODE_GROUP = 32  # images decoded per turn: fewer, longer turns keep the threads busy; forward passes stay small

Decoded = list[tuple[torch.Tensor | None, object, str | None]]


def default_workers() -> int:
    """Decoding threads: as many as there are cores, at most 8, none (decode in this thread) on one core."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 0 if cores < 2 else min(8, cores)


def default_batch_size(device: torch.device) -> int:
    """Images per forward pass when the user gives none: small batches stay in a CPU's caches; a GPU wants work."""
    return CPU_BATCH_SIZE if device.type == "cpu" else GPU_BATCH_SIZE


class _Decoder:
    """Decodes groups of files on a pool of threads, or in the calling thread when there are none."""

    def __init__(self, threads: int, decode: Callable[[str], tuple]):
        self._decode = decode
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="headstart-decode") if threads else None

    def submit(self, group: list[ImageEntry]) -> Callable[[], Decoded]:
        """Start decoding group; the returned call waits for it and gives the results in order."""
        if self._pool is None:
            return lambda: [self._decode(entry.path) for entry in group]
        futures = [self._pool.submit(self._decode, entry.path) for entry in group]
        return lambda: [future.result() for future in futures]

    def close(self) -> None:
        """Drop what has not started; a thread busy with an image finishes that one image and ends."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


def _features(decoded: Decoded, backbone: Backbone, preprocessing: Preprocessing) -> torch.Tensor:
    """The features of the decoded images, in one forward pass."""
    tensors = [tensor for tensor, _, _ in decoded if tensor is not None]
    if not tensors:
        return torch.zeros(0, FEATURE_DIM)
    pixels = torch.stack(tensors).to(backbone.device, non_blocking=True)
    return backbone.features(normalize_pixels(pixels, preprocessing))


def _decoded_groups(decoder: _Decoder, groups: list[list[ImageEntry]], ahead: bool) -> Iterator[Decoded]:
    """Each group decoded, in order. ahead: the next group is decoding while the caller works on this one;
    otherwise it starts only when the caller asks for it."""
    pending = decoder.submit(groups[0]) if groups else None
    for index in range(len(groups)):
        decoded = pending()
        following = groups[index + 1] if index + 1 < len(groups) else None
        if ahead and following:
            pending = decoder.submit(following)
        yield decoded
        if not ahead and following:
            pending = decoder.submit(following)


@dataclass(frozen=True)
class LocalEngine:
    """Decoding threads (default: one per core, at most 8) and the backbone on device, in this process."""

    device: str = "auto"
    batch_size: int | None = None  # None: default_batch_size for the device
    workers: int | None = None

    @property
    def driver_device(self) -> torch.device:
        return pick_device(self.device)

    def describe(self) -> str:
        return str(self.driver_device)

    def embed(self, entries: list[ImageEntry], backbone: Backbone, preprocessing: Preprocessing,
              on_progress: ProgressCallback | None = None) -> Iterator[EmbeddedBatch]:
        """Yield the features of entries batch by batch, in the order given."""
        batch_size = self.batch_size or default_batch_size(backbone.device)
        size = max(batch_size, DECODE_GROUP)
        groups = [entries[start:start + size] for start in range(0, len(entries), size)]
        decode = functools.partial(load_image, transform=pixel_transform(preprocessing),
                                   draft_size=preprocessing.draft_size)
        decoder = _Decoder(default_workers() if self.workers is None else self.workers, decode)
        ahead = backbone.device.type != "cpu"  # a GPU computes while the CPU decodes; a CPU cannot do both
        done = 0
        try:
            for group, decoded in zip(groups, _decoded_groups(decoder, groups, ahead)):
                for start in range(0, len(group), batch_size):
                    batch = decoded[start:start + batch_size]
                    features = _features(batch, backbone, preprocessing)
                    done += len(batch)
                    if on_progress:
                        on_progress(done, len(entries))
                    yield EmbeddedBatch(group[start:start + batch_size], [stamp for _, stamp, _ in batch],
                                        [error for _, _, error in batch], features.numpy())
        finally:
            decoder.close()
