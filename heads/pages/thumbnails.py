"""Small JPEG thumbnails for the HTML reports, made once and cached by content hash (the features' own key).

CACHE/thumbnails/<size>/<sha256[:2]>/<sha256>.jpg: a changed file has a new hash, so a stale thumbnail is
never shown; a file that cannot be read has no thumbnail and the report shows its path as text.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from headstart.features.files.atomic import atomic_write
from headstart.features.files.cachedir import THUMBNAILS_DIR
from headstart.features.images import ImageDecodeError, decode_image, read_file
from headstart.features.untrusted import SHA256


def thumbnail(image_path: Path, sha256: str | None, cache: Path, size: int = 128) -> bytes | None:
    """The JPEG thumbnail (longest side `size`) of image_path, from the cache when its hash is known there."""
    if sha256 is not None and not SHA256.fullmatch(sha256):
        sha256 = None  # a file name is built from it: only a digest is believed, never a path
    if sha256:
        cached = cache / THUMBNAILS_DIR / str(size) / sha256[:2] / f"{sha256}.jpg"
        if cached.is_file():
            return cached.read_bytes()
    try:
        data, _ = read_file(image_path)
        image = decode_image(data, draft_size=size)
    except ImageDecodeError:
        return None
    if sha256 is None or hashlib.sha256(data).hexdigest() != sha256:
        sha256 = hashlib.sha256(data).hexdigest()  # changed since extract: key it by what was read
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    encoded = buffer.getvalue()
    target = cache / THUMBNAILS_DIR / str(size) / sha256[:2] / f"{sha256}.jpg"
    with atomic_write(target, result=False) as out:  # a cache, not a result: an interrupt message never names it
        out.write(encoded)
    return encoded
