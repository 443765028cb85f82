"""bench.decode's candidates: the ones it reports within tolerance give today's pixels exactly; the others do not."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from bench import decode
from headstart.features.images import normalize_pixels

pytest.importorskip("simplejpeg")


def _jpeg(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(_pixels(width, height)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _pixels(width: int, height: int) -> np.ndarray:
    torch.manual_seed(0)
    coarse = torch.randint(0, 256, (height // 16, width // 16, 3), dtype=torch.uint8).numpy()
    return np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC))


def test_draft_scale_is_pillows() -> None:
    for width, height in ((500, 375), (1024, 768), (3000, 4000), (4000, 3000), (9000, 9000)):
        image = Image.open(io.BytesIO(_jpeg(width, height)))
        image.draft("RGB", (512, 512))
        scale = decode._draft_scale(width, height, 256)
        assert image.size == (-(-width // scale), -(-height // scale))


def test_exact_candidates_match_today_on_real_and_large_images() -> None:
    if not decode.REAL_DATA.is_dir():
        pytest.skip(f"{decode.REAL_DATA} is not here")
    blobs, _ = decode.real_jpegs(decode.REAL_DATA)
    photos = [blobs[0], blobs[1], _jpeg(1024, 768), _jpeg(2000, 1500)]
    ways = decode.decoders()
    for blob in photos:
        today = ways["pil_draft (today)"](blob)
        for name in ("simplejpeg scaled + PIL resize", "pil_draft + resize(reducing_gap=3)"):
            assert torch.equal(ways[name](blob), today), name
    moved = normalize_pixels(ways["pil_draft + reduce()"](photos[3]), decode.PREPROCESSING)
    assert (moved - normalize_pixels(ways["pil_draft (today)"](photos[3]), decode.PREPROCESSING)).abs().max() > 1e-2
