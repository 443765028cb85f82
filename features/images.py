"""Decode an image file into RGB and turn it into the backbone's input tensor, for any preprocessing we support."""

from __future__ import annotations

import functools
import hashlib
import io
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from PIL import features as pil_features

from headstart.features.files.regular import UnsafeFileError, open_regular
from headstart.features.provenance import BICUBIC, Preprocessing

MAX_FILE_BYTES = 1 << 30  # more than any image Pillow would decode: its pixel limit is ~720 MB even as raw 16-bit RGBA
INT64 = (-(1 << 63), (1 << 63) - 1)
_HUFFMAN_FRAMES = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7}  # SOF markers of Huffman-coded JPEGs


class ImageDecodeError(Exception):
    """A file that is not a readable image; the message is the reason shown to the user."""


@dataclass(frozen=True)
class FileStamp:
    """What identifies a file's content for the incremental cache."""

    size: int
    mtime_ns: int
    sha256: str


def stored_mtime_ns(mtime_ns: int) -> int:
    """A modification time as the features file stores it (int64): past 2262 or before 1678 it is clamped, and the
    content hash tells such files apart."""
    return min(max(mtime_ns, INT64[0]), INT64[1])


def _jpeg_frame(data: bytes) -> int | None:
    """The JPEG's start-of-frame marker, which says how its pixels are coded."""
    position = 2
    while position + 4 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return marker
        position += 2 + int.from_bytes(data[position + 2 : position + 4], "big")
    return None


# ISO media brands (bytes 8-12, after "ftyp" at 4-8) of the still-image formats Pillow reads only through a plugin.
_PLUGIN_BRANDS = {
    **dict.fromkeys(
        (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"), ("a HEIC/HEIF", "pillow-heif")
    ),
    **dict.fromkeys((b"avif", b"avis"), ("an AVIF", "pillow-avif-plugin")),
}


def _unrecognised(data: bytes) -> ImageDecodeError:
    """The error for bytes Pillow does not recognise: a HEIC or AVIF photo names the plugin that reads it."""
    if data[4:8] == b"ftyp" and data[8:12] in _PLUGIN_BRANDS:
        kind, plugin = _PLUGIN_BRANDS[data[8:12]]
        if plugin == "pillow-avif-plugin" and pil_features.check_module("avif"):  # Pillow >= 11.3 reads AVIF itself
            return ImageDecodeError("damaged image: an AVIF file this Pillow's AVIF support cannot decode")
        return ImageDecodeError(
            f"needs a plugin: {kind} image, which this Pillow reads only with the {plugin} plugin "
            f"(pip install {plugin}); or convert it to JPEG or PNG"
        )
    return ImageDecodeError("not an image file (unrecognised format)")


def _too_short(image: Image.Image, data: bytes) -> bool:
    """True for a Huffman-coded JPEG too small to hold the pixels its header claims. libjpeg fills what is missing
    with grey and Pillow reports nothing, so this is how a truncated JPEG is told from a real one: every 8x8 block
    costs at least one bit, even at the coarsest chroma subsampling (4x, so a 32x32 luma area per block counted)."""
    width, height = image.size
    blocks = -(-width // 32) * -(-height // 32)
    return _jpeg_frame(data) in _HUFFMAN_FRAMES and len(data) * 8 < blocks


def _sixteen_bitto_rgb(image: Image.Image) -> Image.Image:
    """Scale 16-bit samples to 8 bits; Pillow's convert would clip them to white."""
    array = np.asarray(image, dtype=np.uint32)
    return Image.fromarray((array >> 8).astype(np.uint8), mode="L").convert("RGB")


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB pixels of any mode, as decoding makes them (16-bit scaled, palette transparency kept as Pillow does)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        return _sixteen_bitto_rgb(image)
    if image.mode == "RGB":
        return image  # convert would copy it
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return image.convert("RGB")


def decode_image(data: bytes, draft_size: int | None = None) -> Image.Image:
    """RGB pixels of the first frame (an animated GIF's first frame), EXIF orientation applied; damaged files and
    formats Pillow cannot read raise ImageDecodeError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format == "JPEG" and _too_short(image, data):
                raise ImageDecodeError(
                    f"truncated image: {len(data)} bytes cannot hold the {image.size[0]}x"
                    f"{image.size[1]} pixels its header claims"
                )
            if draft_size and image.format == "JPEG":
                image.draft("RGB", (2 * draft_size, 2 * draft_size))
            image.load()
            ImageOps.exif_transpose(image, in_place=True)  # in place: no copy of the pixels when there is no tag
            return to_rgb(image)
    except UnidentifiedImageError:
        raise _unrecognised(data) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageDecodeError(f"refused: too many pixels, possible decompression bomb ({error})") from None
    except (OSError, ValueError, SyntaxError, EOFError, TypeError) as error:
        raise ImageDecodeError(f"damaged image: {error}") from None


def read_file(path: str | os.PathLike) -> tuple[bytes, FileStamp]:
    """The file's bytes and stamp, read once so the hash and the decode see the same content; memory is bounded
    whatever the file's size, and a named pipe called x.jpg is refused, not waited on."""
    try:
        descriptor = open_regular(path)
    except UnsafeFileError:
        raise ImageDecodeError("not a regular file") from None
    except OSError as error:
        raise ImageDecodeError(f"cannot read: {error.strerror or error}") from None
    with os.fdopen(descriptor, "rb") as handle:
        stat = os.fstat(descriptor)
        if stat.st_size > MAX_FILE_BYTES:
            raise ImageDecodeError(f"too large to be an image ({stat.st_size} bytes; the limit is {MAX_FILE_BYTES})")
        try:
            data = handle.read(MAX_FILE_BYTES + 1)  # bounded even if the file grows after the stat
        except OSError as error:
            raise ImageDecodeError(f"cannot read: {error.strerror or error}") from None
    if not data:
        raise ImageDecodeError("empty file (0 bytes)")
    if len(data) > MAX_FILE_BYTES:
        raise ImageDecodeError(f"too large to be an image (over {MAX_FILE_BYTES} bytes)")
    return data, FileStamp(stat.st_size, stored_mtime_ns(stat.st_mtime_ns), hashlib.sha256(data).hexdigest())


def pixel_transform(preprocessing: Preprocessing) -> Callable[[Image.Image], torch.Tensor]:
    """PIL image -> uint8 tensor (3 x H x W), resized and cropped by torchvision itself; normalize_pixels finishes
    it. Decoding threads stop here: a quarter of the bytes of floats, and the float work is done once per batch."""
    from torchvision import transforms

    mode = transforms.InterpolationMode
    interpolation = mode.BICUBIC if preprocessing.interpolation == BICUBIC else mode.BILINEAR
    steps = [transforms.Resize(preprocessing.resize, interpolation=interpolation, antialias=True)]
    if preprocessing.crop:
        steps.append(transforms.CenterCrop(preprocessing.crop))
    steps.append(transforms.PILToTensor())
    return transforms.Compose(steps)


def normalize_pixels(pixels: torch.Tensor, preprocessing: Preprocessing | None = None) -> torch.Tensor:
    """uint8 pixels (3 x H x W, or a batch of them) -> floats in [0, 1], then normalised with preprocessing's mean
    and std unless it is None. The same float operations as torchvision's ToTensor + Normalize in the same order,
    so every value is bit for bit theirs, whether one image or a batch goes through."""
    scaled = pixels.to(torch.get_default_dtype()).div(255)
    if preprocessing is None:
        return scaled
    mean = torch.tensor(preprocessing.mean, dtype=scaled.dtype, device=scaled.device).view(-1, 1, 1)
    std = torch.tensor(preprocessing.std, dtype=scaled.dtype, device=scaled.device).view(-1, 1, 1)
    return scaled.sub_(mean).div_(std)


def build_transform(preprocessing: Preprocessing, normalize: bool = True) -> Callable[[Image.Image], torch.Tensor]:
    """PIL image -> normalised float tensor (3 x H x W); normalize=False stops at [0, 1] (exported models normalise)."""
    from torchvision import transforms

    finish = functools.partial(normalize_pixels, preprocessing=preprocessing if normalize else None)
    return transforms.Compose([pixel_transform(preprocessing), finish])
