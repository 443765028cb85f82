"""Prediction for the Python API's mixed inputs: paths (files or folders) go through predict's engine, in-memory
PIL images and numpy arrays through the same resize, crop and normalisation, in the order given."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from PIL import Image

from headstart.features.folder import find_images
from headstart.features.images import normalize_pixels, pixel_transform, to_rgb
from headstart.heads.predict.predictor import Predictor
from headstart.heads.predict.writer import Prediction

MEMORY_BATCH = 16


def as_pil(item: Any, index: int) -> Image.Image:
    """An in-memory image as RGB pixels: a PIL image, or a uint8 array H x W (grey), H x W x 3 (RGB), H x W x 4."""
    if isinstance(item, Image.Image):
        return to_rgb(item)
    array = np.asarray(item)
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise ValueError(
            f"image {index}: a {array.dtype} array of shape {array.shape} is not an image: give uint8 pixels "
            "H x W (grey) or H x W x 3 (RGB) or H x W x 4 (RGBA), a PIL image, or a path"
        )
    return to_rgb(Image.fromarray(array[..., 0] if array.ndim == 3 and array.shape[2] == 1 else array))


def _memory_predictions(predictor: Predictor, images: list[Image.Image]) -> Iterator[Prediction]:
    transform = pixel_transform(predictor.preprocessing)
    for start in range(0, len(images), MEMORY_BATCH):
        pixels = torch.stack([transform(image) for image in images[start : start + MEMORY_BATCH]])
        features = predictor.backbone.features(normalize_pixels(pixels, predictor.preprocessing))
        for probabilities, _, score, unknown in predictor.score(features):
            yield Prediction("", probabilities, None, score, unknown)


def predict_items(
    predictor: Predictor, items: list[Any], on_progress: Callable[[int, int], None] | None = None
) -> list[tuple[str, Prediction]]:
    """(source, prediction) per image in the order of items; a folder gives one per image found in it."""
    slots: list[tuple[int, list[str] | int]] = []  # (position in items, its file names or its in-memory index)
    paths: list[str | os.PathLike] = []
    memory: list[Image.Image] = []
    for index, item in enumerate(items):
        if isinstance(item, (str, os.PathLike)):
            names = [entry.name for entry in find_images([item])]
            slots.append((index, names))
            paths.extend(names)
        else:
            slots.append((index, len(memory)))
            memory.append(as_pil(item, index))
    entries = find_images(paths) if paths else []
    by_name = {prediction.path: prediction for prediction in predictor.predict(entries, on_progress)}
    in_memory = list(_memory_predictions(predictor, memory))
    found: list[tuple[str, Prediction]] = []
    for index, where in slots:
        if isinstance(where, list):
            found.extend((name, by_name[name]) for name in where)
        else:
            found.append((f"<image {index}>", in_memory[where]))
    return found
