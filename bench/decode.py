"""What decoding costs and what the faster decoders would change: CPU ms per image of each way to turn a JPEG into
the backbone's input, and how far each moves the input tensor and the features from the way headstart decodes.

    python -m bench.decode [--data DIR] [--large N]   # bench/results/decode.json; python -m bench includes it
    python -m bench.decode --whole-process            # extract fp32/bf16 against a forward-only script, timed
                                                      # from outside (bench/whole_process.py), into the same file

CPU time (time.process_time) of one thread, median of interleaved rounds: on a shared machine the other
processes' load moves wall time far more than a single thread's CPU time. Kept as the default only if faster AND
within the 1e-4 feature tolerance of today's decoding (docs/benchmark.md, "Decoding").
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from headstart.features import PREPROCESSINGS, find_dataset, load_backbone
from headstart.features.images import decode_image, normalize_pixels, pixel_transform, read_file

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = ROOT.parent / "shared" / "data" / "hymenoptera_data"
OUT = ROOT / "bench" / "results" / "decode.json"
TOLERANCE = 1e-4
PHONE_SIZES = ((3000, 4000), (4000, 3000), (3024, 4032), (2268, 4032))  # 12 Mpx portrait and landscape, 9 Mpx
PREPROCESSING = PREPROCESSINGS["imagenet"]
Decoder = Callable[[bytes], torch.Tensor]


def _target(size: tuple[int, int], resize: int) -> tuple[int, int]:
    """The (width, height) torchvision's Resize(resize) gives: the short side resize, the long side truncated."""
    width, height = size
    if width <= height:
        return resize, int(resize * height / width)
    return int(resize * width / height), resize


def _draft_scale(width: int, height: int, draft_size: int) -> int:
    """The reduction Pillow's JpegImageFile.draft picks for a request of twice draft_size: 8, 4, 2 or 1."""
    wanted = min(width // (2 * draft_size), height // (2 * draft_size))
    return next((scale for scale in (8, 4, 2) if wanted >= scale), 1)


def _simplejpeg_pixels(data: bytes) -> np.ndarray:
    """libjpeg-turbo's scaled decode (simplejpeg) at the same reduction as Pillow's draft mode."""
    import simplejpeg

    height, width, _, _ = simplejpeg.decode_jpeg_header(data)
    scale = _draft_scale(width, height, PREPROCESSING.draft_size)
    return simplejpeg.decode_jpeg(data, "RGB", min_height=-(-height // scale), min_width=-(-width // scale))


def _tensor_finish(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 3 x H x W -> resized (bilinear, antialias) and cropped on the tensor, as torchvision v2 does."""
    from torchvision.transforms.v2 import functional as F

    resized = F.resize(pixels, PREPROCESSING.resize, antialias=True)
    return F.center_crop(resized, PREPROCESSING.crop)


def _pil_finish(image: Image.Image) -> torch.Tensor:
    """A PIL image already at its resized size -> the centre crop as a uint8 tensor."""
    from torchvision.transforms.v2 import functional as F

    return F.pil_to_tensor(F.center_crop(image, PREPROCESSING.crop))


def decoders() -> dict[str, Decoder]:
    """JPEG bytes -> the uint8 3 x 224 x 224 input (normalize_pixels finishes every one alike), each candidate way."""
    from torchvision.io import ImageReadMode, decode_jpeg

    transform = pixel_transform(PREPROCESSING)
    draft = PREPROCESSING.draft_size

    def draft_then_reduce(data: bytes) -> torch.Tensor:
        image = decode_image(data, draft)
        width, height = _target(image.size, PREPROCESSING.resize)
        factor = min(image.size[0] // width, image.size[1] // height)
        return transform(image.reduce(factor) if factor >= 2 else image)

    def draft_reducing_gap(data: bytes) -> torch.Tensor:
        image = decode_image(data, draft)
        return _pil_finish(image.resize(_target(image.size, PREPROCESSING.resize), Image.BILINEAR, reducing_gap=3.0))

    def jpeg_pixels(data: bytes) -> torch.Tensor:
        raw = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        return decode_jpeg(raw, mode=ImageReadMode.RGB, apply_exif_orientation=True)

    ways: dict[str, Decoder] = {
        "pil_draft (today)": lambda data: transform(decode_image(data, draft)),
        "pil_draft + reduce()": draft_then_reduce,
        "pil_draft + resize(reducing_gap=3)": draft_reducing_gap,
        "torchvision decode_jpeg + tensor resize": lambda data: _tensor_finish(jpeg_pixels(data)),
    }
    if importlib.util.find_spec("simplejpeg"):  # pip install -e '.[bench]'
        ways["simplejpeg scaled + PIL resize"] = lambda data: transform(Image.fromarray(_simplejpeg_pixels(data)))
        ways["simplejpeg scaled + tensor resize"] = lambda data: _tensor_finish(
            torch.from_numpy(_simplejpeg_pixels(data)).permute(2, 0, 1)
        )
    return ways


def cpu_ms_per_image(ways: dict[str, Decoder], blobs: Sequence[bytes], rounds: int) -> dict[str, float]:
    """One thread's CPU ms per image of each way: median of rounds, the ways interleaved within each round."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a decoding worker's view: one core
    times: dict[str, list[float]] = {name: [] for name in ways}
    try:
        for _ in range(rounds):
            for name, decode in ways.items():
                spent = 0.0
                for blob in blobs:  # a generated photo is read from disk here: only the decode is timed
                    started = time.process_time()
                    decode(blob)
                    spent += time.process_time() - started
                times[name].append(1000 * spent / len(blobs))
    finally:
        torch.set_num_threads(threads)
    return {name: float(np.median(values)) for name, values in times.items()}


def differences(ways: dict[str, Decoder], blobs: Sequence[bytes], weights: str) -> dict[str, dict[str, float]]:
    """Each way's largest abs difference from today's: of the normalised input tensor and of resnet18's features."""
    backbone = load_backbone(weights, torch.device("cpu"))
    reference_inputs = torch.stack([normalize_pixels(ways["pil_draft (today)"](blob), PREPROCESSING) for blob in blobs])
    reference = backbone.features(reference_inputs)
    found = {}
    for name, decode in ways.items():
        inputs = torch.stack([normalize_pixels(decode(blob), PREPROCESSING) for blob in blobs])
        found[name] = {
            "input_max_abs_diff": float((inputs - reference_inputs).abs().max()),
            "feature_max_abs_diff": float((backbone.features(inputs) - reference).abs().max()),
        }
    return found


def measure(blobs: Sequence[bytes], rounds: int, weights: str, compared: int = 64) -> list[dict]:
    """A table row per way: CPU ms per image on blobs, and its differences on the first `compared` of them."""
    ways = decoders()
    times = cpu_ms_per_image(ways, blobs, rounds)
    moved = differences(ways, [blobs[index] for index in range(min(compared, len(blobs)))], weights)
    baseline = times["pil_draft (today)"]
    return [
        {
            "decoder": name,
            "cpu_ms_per_image": times[name],
            "vs_today": baseline / times[name],
            **moved[name],
            "within_tolerance": moved[name]["feature_max_abs_diff"] <= TOLERANCE,
        }
        for name in ways
    ]


def real_jpegs(data: Path) -> tuple[list[bytes], int]:
    """The bytes of every JPEG of the dataset, and how many other files were left out (hymenoptera holds a GIF)."""
    blobs = [read_file(entry.path)[0] for split in find_dataset(data).splits.values() for entry in split]
    jpegs = [blob for blob in blobs if blob[:3] == b"\xff\xd8\xff"]
    return jpegs, len(blobs) - len(jpegs)


def phone_photo(index: int, seed: int = 0) -> bytes:
    """A textured phone-sized JPEG (quality 92, 4:2:0 as cameras write them): smooth shapes from upscaled noise
    plus sensor-like grain, so the file is megabytes as a real photo's is, not a flat colour's few kilobytes."""
    rng = np.random.default_rng((seed, index))
    width, height = PHONE_SIZES[index % len(PHONE_SIZES)]
    coarse = rng.integers(0, 256, (height // 64, width // 64, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize((width, height), Image.BICUBIC)
    grain = rng.integers(-12, 13, (256, 256, 1), dtype=np.int16)
    tiled = np.tile(grain, (-(-height // 256), -(-width // 256), 3))[:height, :width]
    pixels = np.asarray(image, dtype=np.int16) + tiled
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


class PhotoFolder(Sequence[bytes]):
    """count generated phone photos written into folder once, read back one at a time (4,000 do not fit memory)."""

    def __init__(self, folder: Path, count: int) -> None:
        self.paths = [folder / f"photo-{index:05d}.jpg" for index in range(count)]
        for index, path in enumerate(self.paths):
            path.write_bytes(phone_photo(index))

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index):  # type: ignore[no-untyped-def,override]
        return self.paths[index].read_bytes()

    def mean_bytes(self) -> float:
        return float(np.mean([path.stat().st_size for path in self.paths]))


def run(data: Path = REAL_DATA, large: int = 0, rounds: int = 3, weights: str = "none") -> dict:
    """The table on the dataset's JPEGs and, with large > 0, on that many generated phone-sized photos."""
    blobs, skipped = real_jpegs(data)
    figures: dict = {
        "cpu": "time.process_time of one thread, median of interleaved rounds",
        "weights": f"{weights} (random init, seed 0: the ImageNet weights are not available here)"
        if weights == "none"
        else weights,
        "load_average_at_start": list(os.getloadavg()),
        "real": {"data": str(data), "jpegs": len(blobs), "other_files_left_out": skipped, "rounds": rounds},
    }
    figures["real"]["decoders"] = measure(blobs, rounds, weights)
    if large:
        folder = Path(tempfile.mkdtemp(prefix="headstart-decode-"))
        try:
            photos = PhotoFolder(folder, large)
            figures["large"] = {
                "photos": large,
                "sizes": [list(size) for size in PHONE_SIZES],
                "mean_bytes": photos.mean_bytes(),
                "rounds": rounds,
                "decoders": measure(photos, rounds, weights, compared=32),
            }
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    figures["load_average_at_end"] = list(os.getloadavg())
    return figures


def _save(figures: dict, out: Path) -> None:
    """Merge figures into out's JSON (the per-image and whole-process parts are measured apart)."""
    saved = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else {}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(saved | figures, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.decode", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REAL_DATA)
    parser.add_argument("--large", type=int, default=200, help="generated phone-sized photos (the issue: 4000)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--weights", default="none")
    parser.add_argument("--whole-process", action="store_true", help="only the whole-process timing of extract")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if args.whole_process:
        from bench.whole_process import run as whole_process

        figures = {"whole_process": whole_process(args.data, args.rounds)}
    else:
        figures = run(args.data, args.large, args.rounds, args.weights)
    _save(figures, args.out)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
