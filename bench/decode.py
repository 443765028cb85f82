"""What decoding costs and what the faster decoders would change: CPU ms per image of each way to turn a JPEG into
the backbone's input, and how far each moves the features from the way headstart decodes (PIL, draft mode).

    python -m bench.decode [--data DIR]      # prints; python -m bench includes these figures

Kept only if faster end to end AND within the 1e-4 feature tolerance of torchvision's own pipeline.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from headstart.features import PREPROCESSINGS, find_dataset, load_backbone
from headstart.features.images import build_transform, decode_image, read_file

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = ROOT.parent / "shared" / "data" / "hymenoptera_data"
TOLERANCE = 1e-4


def decoders() -> dict[str, Callable[[bytes], torch.Tensor]]:
    """JPEG bytes -> normalised 3 x 224 x 224 tensor, three ways."""
    from torchvision.io import ImageReadMode, decode_jpeg
    from torchvision.transforms.v2 import functional as F

    preprocessing = PREPROCESSINGS["imagenet"]
    transform = build_transform(preprocessing)
    mean, std = torch.tensor(preprocessing.mean).view(3, 1, 1), torch.tensor(preprocessing.std).view(3, 1, 1)

    def jpeg_pixels(data: bytes) -> torch.Tensor:
        return decode_jpeg(
            torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB, apply_exif_orientation=True
        )

    def decode_jpeg_tensor_resize(data: bytes) -> torch.Tensor:
        image = F.center_crop(F.resize(jpeg_pixels(data), preprocessing.resize, antialias=True), preprocessing.crop)
        return (image.float().div(255) - mean) / std

    return {
        "pil_draft": lambda data: transform(decode_image(data, preprocessing.draft_size)),  # headstart's
        "decode_jpeg_pil_resize": lambda data: transform(Image.fromarray(jpeg_pixels(data).permute(1, 2, 0).numpy())),
        "decode_jpeg_tensor_resize": decode_jpeg_tensor_resize,
    }


def run(data: Path = REAL_DATA, images: int = 200, rounds: int = 3, weights: str = "none") -> dict:
    """CPU ms/img of each decoder (one thread, median of interleaved rounds) and its features' max abs difference
    from headstart's decoding, through the folded backbone."""
    entries = [entry for split in find_dataset(data).splits.values() for entry in split][:images]
    blobs = [read_file(entry.path)[0] for entry in entries]
    ways = decoders()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a decoding worker's view: one core
    try:
        times: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(rounds):
            for name, decode in ways.items():
                started = time.process_time()
                for blob in blobs:
                    decode(blob)
                times[name].append(1000 * (time.process_time() - started) / len(blobs))
    finally:
        torch.set_num_threads(threads)
    backbone = load_backbone(weights, torch.device("cpu"))
    reference = backbone.features(torch.stack([ways["pil_draft"](blob) for blob in blobs[:64]]))
    figures = {}
    for name, decode in ways.items():
        features = backbone.features(torch.stack([decode(blob) for blob in blobs[:64]]))
        difference = float((features - reference).abs().max())
        figures[name] = {
            "cpu_ms_per_image": float(np.median(times[name])),
            "feature_max_abs_diff": difference,
            "within_tolerance": difference <= TOLERANCE,
        }
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.decode", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REAL_DATA)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.data), indent=2))


if __name__ == "__main__":
    main()
