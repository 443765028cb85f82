"""Decode an image file into RGB and turn it into the backbone's input tensor, for any preprocessing we support."""

from __future__ import annotations

import hashlib
import io
import os
from stat import S_ISREG
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .provenance import Preprocessing


class ImageDecodeError(Exception):
    """A file that is not a readable image; the message is the reason shown to the user."""


@dataclass(frozen=True)
class FileStamp:
    """What identifies a file's content for the incremental cache."""

    size: int
    mtime_ns: int
    sha256: str


def _sixteen_bit_to_rgb(image: Image.Image) -> Image.Image:
    """Scale 16-bit samples to 8 bits; Pillow's convert would clip them to white."""
    array = np.asarray(image, dtype=np.uint32)
    return Image.fromarray((array >> 8).astype(np.uint8), mode="L").convert("RGB")


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        return _sixteen_bit_to_rgb(image)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return image.convert("RGB")


def decode_image(data: bytes, draft_size: int | None = None) -> Image.Image:
    """RGB pixels of the first frame, EXIF orientation applied; damaged files raise ImageDecodeError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if draft_size and image.format == "JPEG":
                image.draft("RGB", (2 * draft_size, 2 * draft_size))
            image.load()
            image = ImageOps.exif_transpose(image)
            return _to_rgb(image)
    except UnidentifiedImageError:
        raise ImageDecodeError("not an image file (unrecognised format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageDecodeError(f"refused: too many pixels, possible decompression bomb ({error})") from None
    except (OSError, ValueError, SyntaxError, EOFError, TypeError) as error:
        raise ImageDecodeError(f"damaged image: {error}") from None


def read_file(path: str | os.PathLike) -> tuple[bytes, FileStamp]:
    """The file's bytes and stamp, read once so the hash and the decode see the same content."""
    try:
        # O_NONBLOCK: a named pipe called x.jpg must be refused, not waited on forever.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        stat = os.fstat(descriptor)
        if not S_ISREG(stat.st_mode):
            os.close(descriptor)
            raise ImageDecodeError("not a regular file")
        with os.fdopen(descriptor, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise ImageDecodeError(f"cannot read: {error.strerror or error}") from None
    if not data:
        raise ImageDecodeError("empty file (0 bytes)")
    return data, FileStamp(stat.st_size, stat.st_mtime_ns, hashlib.sha256(data).hexdigest())


def build_transform(preprocessing: Preprocessing, normalize: bool = True) -> Callable[[Image.Image], torch.Tensor]:
    """PIL image -> normalised float tensor (3 x H x W); normalize=False stops at [0, 1] (exported models normalise)."""
    from torchvision import transforms

    steps = [transforms.Resize(preprocessing.resize, antialias=True)]
    if preprocessing.crop:
        steps.append(transforms.CenterCrop(preprocessing.crop))
    steps.append(transforms.ToTensor())
    if normalize:
        steps.append(transforms.Normalize(preprocessing.mean, preprocessing.std))
    return transforms.Compose(steps)
