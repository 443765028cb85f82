"""features/images.py: decoding any image to RGB, refusing broken ones, reading files, preprocessing."""

from __future__ import annotations

import hashlib
import io
import os
import warnings

import numpy as np
import pytest
import torch
from conftest import make_image
from PIL import Image
from torchvision import transforms
from torchvision.models import ResNet18_Weights

from headstart.features.images import (
    ImageDecodeError,
    build_transform,
    decode_image,
    normalize_pixels,
    pixel_transform,
    read_file,
)
from headstart.features.provenance import PREPROCESSINGS


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def noise(size=(40, 30), seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def solid(color, size=(16, 12)) -> Image.Image:
    return Image.new("RGB", size, color)


def decode_strictly(data: bytes, draft_size: int | None = None) -> Image.Image:
    """decode_image with every warning turned into an error, so a noisy decode fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return decode_image(data, draft_size)


# --- decode_image: every supported kind of pixel data comes out RGB --------------------------------------------


def test_grayscale_becomes_rgb_with_equal_channels():
    gray = Image.fromarray(np.arange(120, dtype=np.uint8).reshape(10, 12), mode="L")
    out = decode_strictly(encode(gray, "PNG"))
    assert out.mode == "RGB" and out.size == (12, 10)
    pixels = np.asarray(out)
    assert (pixels[..., 0] == np.asarray(gray)).all()
    assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()


def _palette_image() -> Image.Image:
    image = Image.new("P", (6, 4), 0)
    image.putpalette([200, 10, 20, 30, 180, 40, 50, 60, 170] + [0] * (256 * 3 - 9))
    for x in range(6):
        image.putpixel((x, 2), 1)
        image.putpixel((x, 3), 2)
    return image


@pytest.mark.parametrize(
    ("fmt", "transparency"),
    [
        ("PNG", None),
        ("GIF", None),
        ("PNG", 0),
        ("GIF", 0),
        ("PNG", b"\x00\x80\xff"),  # per-entry alpha: Pillow warns when such an image goes straight to RGB
    ],
)
def test_palette_images_become_rgb_with_their_palette_colours(fmt, transparency):
    options = {} if transparency is None else {"transparency": transparency}
    data = encode(_palette_image(), fmt, **options)
    assert Image.open(io.BytesIO(data)).mode == "P"
    out = decode_strictly(data)
    assert out.mode == "RGB" and out.size == (6, 4)
    assert out.getpixel((0, 0)) == (200, 10, 20)
    assert out.getpixel((3, 2)) == (30, 180, 40)
    assert out.getpixel((5, 3)) == (50, 60, 170)


def test_rgba_drops_alpha_and_keeps_colour():
    pixels = np.zeros((4, 5, 4), np.uint8)
    pixels[..., 0], pixels[..., 1], pixels[..., 2] = 10, 120, 230
    pixels[..., 3] = np.arange(20, dtype=np.uint8).reshape(4, 5) * 12
    out = decode_strictly(encode(Image.fromarray(pixels, mode="RGBA"), "PNG"))
    assert out.mode == "RGB"
    assert (np.asarray(out) == [10, 120, 230]).all()


def test_cmyk_jpeg_becomes_rgb():
    data = encode(Image.new("CMYK", (32, 24), (0, 255, 255, 0)), "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    out = decode_strictly(data)
    assert out.mode == "RGB" and out.size == (32, 24)
    red, green, blue = np.asarray(out, dtype=int).reshape(-1, 3).mean(axis=0)
    assert red > 240 and green < 15 and blue < 15


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_sixteen_bit_grey_is_scaled_not_clipped(fmt):
    values = np.full((10, 12), 32768, np.uint16)
    values[0, :] = 65535
    values[1, :] = 0
    data = encode(Image.fromarray(values), fmt)
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    out = np.asarray(decode_strictly(data))
    assert out.shape == (10, 12, 3)
    assert abs(int(out[5, 5, 0]) - 128) <= 1  # mid grey stays mid grey, never white
    assert (out[0] >= 254).all() and (out[1] <= 1).all()
    assert (out[..., 0] == out[..., 2]).all()


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (40, 30), (255, 0, 0))
    image.paste((0, 0, 255), (20, 0, 40, 30))  # left half red, right half blue
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    out = decode_strictly(encode(image, "JPEG", exif=exif.tobytes(), quality=95))
    assert out.size == (30, 40)
    top, bottom = out.getpixel((15, 5)), out.getpixel((15, 34))
    assert top[0] > 200 and top[2] < 60  # the left half is now on top
    assert bottom[2] > 200 and bottom[0] < 60


@pytest.mark.parametrize("fmt", ["GIF", "PNG"])
def test_animated_image_gives_its_first_frame(fmt):
    frames = [solid((255, 0, 0)), solid((0, 0, 255)), solid((0, 255, 0))]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 3
    out = decode_strictly(data)
    assert out.mode == "RGB" and out.size == (16, 12)
    assert out.getpixel((8, 6)) == (255, 0, 0)


def test_one_pixel_image_decodes_and_preprocesses():
    out = decode_strictly(encode(solid((7, 8, 9), (1, 1)), "PNG"))
    assert out.size == (1, 1) and out.getpixel((0, 0)) == (7, 8, 9)
    assert build_transform(PREPROCESSINGS["imagenet"])(out).shape == (3, 224, 224)


# --- decode_image: broken files raise ImageDecodeError with a reason --------------------------------------------


def test_truncated_jpeg_is_refused():
    data = encode(noise((64, 48)), "JPEG")
    with pytest.raises(ImageDecodeError, match="damaged image.*truncated"):
        decode_image(data[: len(data) // 2])


def test_text_named_jpg_is_refused(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a picture\n")
    data, _ = read_file(path)
    with pytest.raises(ImageDecodeError, match="not an image file"):
        decode_image(data)


def test_random_bytes_are_refused():
    rng = np.random.default_rng(3)
    with pytest.raises(ImageDecodeError, match="not an image file"):
        decode_image(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())


def test_png_header_with_garbage_after_it_is_refused():
    data = encode(noise((32, 32)), "PNG")
    rng = np.random.default_rng(4)
    damaged = data[:60] + rng.integers(0, 256, len(data) - 60, dtype=np.uint8).tobytes()
    with pytest.raises(ImageDecodeError, match="damaged image"):
        decode_image(damaged)


@pytest.mark.parametrize("size", [(40, 30), (100, 100)], ids=["warning-zone", "error-zone"])
def test_decompression_bomb_is_refused(monkeypatch, size):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    data = encode(solid((1, 2, 3), size), "PNG")
    with pytest.raises(ImageDecodeError, match="decompression bomb"):
        decode_image(data)


def test_large_jpeg_decodes_at_reduced_scale_with_draft():
    x = np.linspace(0, 255, 2000, dtype=np.uint8)
    y = np.linspace(0, 255, 1500, dtype=np.uint8)
    pixels = np.stack(np.broadcast_arrays(x[None, :], y[:, None], np.full((1500, 2000), 90, np.uint8)), axis=-1)
    data = encode(Image.fromarray(pixels), "JPEG", quality=85)

    full = decode_strictly(data)
    assert full.size == (2000, 1500)
    reduced = decode_strictly(data, draft_size=256)
    assert reduced.mode == "RGB"
    assert min(reduced.size) >= 2 * 256
    assert reduced.size[0] < 2000 and reduced.size[1] < 1500
    assert reduced.size[0] * 3 == reduced.size[1] * 4
    # the reduced decode is the same picture
    shrunk = np.asarray(full.resize(reduced.size, Image.Resampling.BILINEAR), dtype=float)
    assert np.abs(np.asarray(reduced, dtype=float) - shrunk).mean() < 4


def test_draft_does_not_shrink_below_what_the_resize_needs():
    data = encode(noise((600, 400)), "JPEG")
    assert decode_strictly(data, draft_size=256).size == (600, 400)


# --- read_file ------------------------------------------------------------------------------------------------


def test_read_file_gives_bytes_size_mtime_and_sha256(tmp_path):
    path = make_image(tmp_path / "a.jpg")
    data, stamp = read_file(path)
    raw = path.read_bytes()
    assert data == raw
    assert stamp.size == len(raw) == os.path.getsize(path)
    assert stamp.mtime_ns == os.stat(path).st_mtime_ns
    assert stamp.sha256 == hashlib.sha256(raw).hexdigest()


def test_read_file_refuses_an_empty_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageDecodeError, match="empty file"):
        read_file(path)


@pytest.mark.parametrize("kind, reason", [("missing", "cannot read: No such file"), ("folder", "not a regular file")])
def test_read_file_refuses_what_cannot_be_read(tmp_path, kind, reason):
    path = tmp_path / "x.jpg"
    if kind == "folder":
        path.mkdir()
    with pytest.raises(ImageDecodeError, match=reason):
        read_file(path)


# --- build_transform --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(300, 200), (97, 411), (256, 256), (40, 30)])
def test_imagenet_preprocessing_equals_torchvision_weights_transforms(size):
    image = noise(size, seed=size[0])
    ours = build_transform(PREPROCESSINGS["imagenet"])(image)
    reference = ResNet18_Weights.IMAGENET1K_V1.transforms()(image)
    assert ours.dtype == torch.float32 and ours.shape == (3, 224, 224)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-6)


@pytest.mark.parametrize("size", [(300, 200), (97, 411)])
def test_notebook_preprocessing_equals_the_tutorial_transform(size):
    image = noise(size, seed=7)
    ours = build_transform(PREPROCESSINGS["notebook"])(image)
    reference = transforms.Compose(
        [transforms.Resize((224, 224)), transforms.ToTensor(), transforms.Normalize([0.5] * 3, [0.5] * 3)]
    )(image)
    assert ours.shape == (3, 224, 224)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-6)


def test_preprocessing_descriptions_differ_and_draft_sizes():
    imagenet, notebook = PREPROCESSINGS["imagenet"], PREPROCESSINGS["notebook"]
    assert imagenet.describe() != notebook.describe()
    assert imagenet.describe()["mean"] == [0.485, 0.456, 0.406]
    assert (imagenet.draft_size, notebook.draft_size) == (256, 224)


def test_a_corrupt_exif_block_does_not_lose_the_image():
    image = solid((200, 0, 0), (40, 30))
    for exif in (b"Exif\x00\x00MM\x00*garbage", b"Exif\x00\x00" + b"\xff" * 40):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns about the EXIF; the pixels are fine
            out = decode_image(encode(image, "JPEG", exif=exif))
        assert out.size == (40, 30) and out.getpixel((20, 15))[0] > 180


def test_a_batch_normalised_at_once_is_bit_for_bit_torchvisions_per_image_transform():
    preprocessing = PREPROCESSINGS["imagenet"]
    images = [noise(size, seed=index) for index, size in enumerate([(300, 200), (97, 411), (640, 480)])]
    batch = normalize_pixels(torch.stack([pixel_transform(preprocessing)(image) for image in images]), preprocessing)
    reference = transforms.Compose(
        [
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(preprocessing.mean, preprocessing.std),
        ]
    )
    assert batch.dtype == torch.float32
    assert torch.equal(batch, torch.stack([reference(image) for image in images]))


def test_an_animated_gifs_first_frame_is_read_as_rgb():
    frames = [Image.new("RGB", (16, 12), color) for color in ((200, 10, 10), (10, 200, 10))]
    stream = io.BytesIO()
    frames[0].save(stream, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    image = decode_image(stream.getvalue())
    assert image.mode == "RGB" and image.size == (16, 12)
    assert image.getpixel((3, 3)) == Image.open(io.BytesIO(stream.getvalue())).convert("RGB").getpixel((3, 3))
    assert image.getpixel((3, 3))[0] > 150  # the first frame, not the second


@pytest.mark.parametrize(
    ("brand", "plugin"), [(b"heic", "pillow-heif"), (b"heix", "pillow-heif"), (b"mif1", "pillow-heif")]
)
def test_a_heic_photo_names_the_plugin_that_reads_it(brand, plugin):
    data = b"\x00\x00\x00\x18ftyp" + brand + b"\x00\x00\x00\x00mif1heic" + bytes(64)
    with pytest.raises(ImageDecodeError, match=f"^needs a plugin: .*pip install {plugin}"):
        decode_image(data)
