"""Check an exported file against headstart's own predict path on real images before it is kept."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import numpy as np

from headstart.features import FeatureStore, StoreError, find_images
from headstart.features.engines.batches import load_image
from headstart.features.files.cachedir import features_file
from headstart.features.folder import ImageEntry
from headstart.features.images import build_transform
from headstart.heads.export.metadata import ExportError

# The largest difference in any probability allowed between the export and predict: fp32 heads agree to
# float rounding; a bf16 head's predict runs the backbone in bfloat16, which ONNX and torchvision exports cannot.
TOLERANCES = {"fp32": 1e-4, "bf16": 1e-3}
_SPLITS = ("val", "test", "train")


def _spread(entries: list[ImageEntry], sample: int) -> list[ImageEntry]:
    """At most `sample` entries spread evenly over the list (so every class of a sorted split is present)."""
    if len(entries) <= sample:
        return entries
    return [entries[index * len(entries) // sample] for index in range(sample)]


def _cache_images(features: Path) -> list[ImageEntry]:
    """The images of the first split of val, test, train that the features file records."""
    with FeatureStore(features) as store:
        split = next(name for name in _SPLITS if name in store.splits)
        root = Path(store.header.data_root)
        paths = store.stamps(split)[0]
    return [ImageEntry(root / path, path) for path in paths if (root / path).is_file()]


def verification_images(cache: Path, images: Path | None, sample: int, backbone: str) -> list[ImageEntry]:
    """The images to verify on: those given, else the val images the cache's features of backbone (the head's) were
    extracted from."""
    features = cache / features_file(backbone)
    if images is not None:
        entries, where = find_images([images]), str(images)
    else:
        try:
            entries = _cache_images(features)
        except (StoreError, StopIteration):
            entries = []
        where = f"the images {features} records"
    if not entries:
        raise ExportError(f"no images to verify the export on in {where}: pass a folder of images with --images")
    return _spread(entries, sample)


def model_inputs(entries: list[ImageEntry], preprocessing) -> tuple[list[ImageEntry], np.ndarray]:
    """The readable entries and their pixels as the exported models take them: N x 3 x H x W float32 in [0, 1]."""
    transform = build_transform(preprocessing, normalize=False)
    readable, tensors = [], []
    for entry in entries:
        tensor, _, _ = load_image(entry.path, transform, preprocessing.draft_size)
        if tensor is not None:  # None: the file could not be read or preprocessed
            readable.append(entry)
            tensors.append(tensor.numpy())
    if not readable:
        raise ExportError("none of the images to verify the export on could be read; pass others with --images")
    return readable, np.stack(tensors)


def predicted(predictor, entries: list[ImageEntry]) -> np.ndarray:
    """Probabilities from headstart's predict path (N x C)."""
    with closing(predictor.predict(entries)) as predictions:
        rows = list(predictions)
    failed = [row for row in rows if row.probabilities is None]
    if failed:  # read a moment ago by model_inputs: the file changed in between
        raise ExportError(f"predict could not read {failed[0].path} ({failed[0].error}): export again")
    return np.stack([row.probabilities for row in rows])


def largest_difference(
    run: Callable[[np.ndarray], np.ndarray], inputs: np.ndarray, expected: np.ndarray, batch_size: int = 16
) -> float:
    """The largest absolute difference between the export's probabilities and predict's, over every image."""
    largest = 0.0
    for start in range(0, len(inputs), batch_size):
        got = run(inputs[start : start + batch_size])
        want = expected[start : start + batch_size]
        if got.shape != want.shape:
            raise ExportError(f"the exported model returned shape {got.shape} for a batch where {want.shape} was due")
        largest = max(largest, float(np.abs(got.astype(np.float64) - want).max()))
    return largest


def check(difference: float, tolerance: float, images: int, path: str | os.PathLike, hint: str = "") -> None:
    """Refuse an export whose probabilities differ from predict's by more than the tolerance."""
    if not difference <= tolerance:  # NaN fails too
        raise ExportError(
            f"the export differs from predict by {difference:.3g} in probability (over {images} "
            f"images; tolerance {tolerance:g}): {path} was not written{hint}"
        )
