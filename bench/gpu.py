"""GPU figures in one run: the forward ceiling, extract and predict img/s and their ratios, fp32 and bf16, with
decoding on the CPU (the local engine's worker processes) and, measured alone, on the GPU (torchvision.io.decode_jpeg).

    python -m bench.gpu [--images 8000] [--batch-size 64]     # on a CUDA machine; bench/gpu.sh wraps it
    python -m bench.gpu --dry-run                            # the same steps on the CPU, tiny: checks the script

The images are hard links to 1000 generated 500x375 JPEGs (bench.scale's linked_dataset): decoding costs the same.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from bench.forward import decoded, decoded_batch, eager_forward, folded_forward, interleaved
from bench.run import generate_images
from bench.scale import linked_dataset
from headstart.features import PREPROCESSINGS, ExtractConfig, extract_features, find_images
from headstart.features.engines.local import LocalEngine, default_workers
from headstart.features.files.cachedir import HEAD_FILE
from headstart.heads import PredictConfig, Predictor, TrainConfig, fit_head, write_predictions

ROOT = Path(__file__).resolve().parents[1]


class _NoBackbone:
    """Stands in for the backbone so the pipeline's own decoding alone sets the pace."""

    def __init__(self, device: torch.device):
        self.device = device

    def features(self, batch: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(batch), 512)


def cpu_decode_img_s(data: Path, device: torch.device, batch_size: int, workers: int | None) -> float:
    """The engine's decoding alone (its workers, stacking, normalising, the copy to the device)."""
    entries = find_images([data])
    started = time.perf_counter()
    engine = LocalEngine(device=device.type, batch_size=batch_size, workers=workers)
    for _ in engine.embed(entries, _NoBackbone(device), PREPROCESSINGS["imagenet"]):
        pass
    return len(entries) / (time.perf_counter() - started)


def worker_counts(workers: int | None) -> list[int]:
    """Decoding worker counts to compare (processes beside a GPU, threads beside a CPU backbone): the default, and
    what the machine's cores allow around it."""
    cores = len(os.sched_getaffinity(0))
    return sorted({workers or default_workers(), *(n for n in (4, 8, 16) if n <= cores)})


def gpu_decode(data: Path, device: torch.device, batch_size: int, weights: str) -> dict:
    """decode_jpeg on the device, resize/crop/normalise there; img/s, and how far its features are from the CPU's."""
    from torchvision.io import ImageReadMode, decode_jpeg
    from torchvision.transforms.v2 import functional as F

    preprocessing = PREPROCESSINGS["imagenet"]
    mean = torch.tensor(preprocessing.mean, device=device).view(3, 1, 1)
    std = torch.tensor(preprocessing.std, device=device).view(3, 1, 1)
    paths = [entry.path for entry in find_images([data])]

    def preprocess(group: list[Path]) -> torch.Tensor:
        encoded = [torch.frombuffer(bytearray(Path(path).read_bytes()), dtype=torch.uint8) for path in group]
        images = decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device)
        return torch.stack(
            [
                (
                    F.center_crop(F.resize(image, preprocessing.resize, antialias=True), preprocessing.crop)
                    .float()
                    .div(255)
                    - mean
                )
                / std
                for image in images
            ]
        )

    preprocess(paths[:batch_size])
    started = time.perf_counter()
    for start in range(0, len(paths), batch_size):
        preprocess(paths[start : start + batch_size])
    if device.type == "cuda":
        torch.cuda.synchronize()
    rate = len(paths) / (time.perf_counter() - started)
    forward = folded_forward(weights, device)
    on_gpu = forward(preprocess(paths[:batch_size]))
    on_cpu = forward(decoded(paths[:batch_size]))
    return {"gpu_decode_img_s": rate, "gpu_decode_feature_max_abs_diff": float((on_gpu - on_cpu).abs().max())}


def seeded_weights(work: Path) -> str:
    """A seeded ResNet18 state_dict file: torchvision's eager network and headstart's folded one then hold the same
    weights, so their features can be compared (with "none" each eager network would draw its own)."""
    from torchvision.models import resnet18

    torch.manual_seed(0)
    path = work / "resnet18-seeded.pth"
    torch.save(resnet18().state_dict(), path)
    return str(path)


def run(
    images: int,
    batch_size: int,
    device: torch.device,
    work: Path,
    weights: str = "none",
    workers: int | None = None,
    rounds: int = 3,
) -> dict:
    weights = seeded_weights(work) if weights == "none" else weights
    data = linked_dataset(generate_images(work / "base", min(images, 1000)), work / "data", images)
    figures: dict = {
        "device": str(device),
        "images": images,
        "batch_size": batch_size,
        "weights": weights,
        "cpu_cores": len(os.sched_getaffinity(0)),
        "decode_workers": workers or default_workers(),
    }
    if device.type == "cuda":
        figures["gpu"] = torch.cuda.get_device_name(device)
    batch = decoded_batch(data, batch_size)
    precisions = (
        ("fp32", "bf16") if device.type == "cuda" or torch.ops.mkldnn._is_mkldnn_bf16_supported() else ("fp32",)
    )
    forwards = {
        f"{kind}_{precision}": make(weights, device, precision)
        for precision in precisions
        for kind, make in (("eager", eager_forward), ("folded", folded_forward))
    }
    figures["ceiling_img_s"] = interleaved(forwards, batch, rounds=rounds)
    reference = eager_forward(weights, torch.device("cpu"))(batch)  # torchvision's eager network on the CPU
    figures["vs_cpu_eager_feature_max_abs_diff"] = {
        name: float((forward(batch) - reference).abs().max()) for name, forward in forwards.items()
    }
    figures["folded_img_s_by_batch"] = {
        f"{precision}_{size}": interleaved(
            {"folded": forwards[f"folded_{precision}"]}, decoded_batch(data, size), rounds=1
        )["folded"]
        for precision in precisions
        for size in (32, 64, 128, 256)
    }
    figures["cpu_decode_img_s_by_workers"] = {
        count: cpu_decode_img_s(data, device, batch_size, count) for count in worker_counts(workers)
    }
    figures["cpu_decode_img_s"] = figures["cpu_decode_img_s_by_workers"][workers or default_workers()]
    eager = figures["ceiling_img_s"]["eager_fp32"]
    ratios: dict = {}
    for precision in precisions:
        cache = work / f"cache-{precision}"
        config = ExtractConfig(
            data=data,
            cache=cache,
            weights=weights,
            device=device.type,
            batch_size=batch_size,
            workers=workers,
            precision=precision,
        )
        first = extract_features(config)  # also pays for CUDA's start and cuDNN's first choices
        extract_img_s = images / extract_features(replace(config, cache=work / f"again-{precision}")).seconds
        figures[f"extract_{precision}_first_img_s"] = images / first.seconds
        fit_head(cache, TrainConfig())
        predictor = Predictor.load(
            cache / HEAD_FILE,
            PredictConfig(weights=weights, device=device.type, batch_size=batch_size, workers=workers),
        )
        entries = find_images([data])
        started = time.perf_counter()
        write_predictions(work / f"preds-{precision}.csv", predictor.classes, predictor.predict(entries))
        predict_img_s = len(entries) / (time.perf_counter() - started)
        figures[f"extract_{precision}_img_s"], figures[f"predict_{precision}_img_s"] = extract_img_s, predict_img_s
        ceiling = figures["ceiling_img_s"][f"folded_{precision}"]
        ratios |= {
            f"extract_{precision}_vs_eager_fp32": extract_img_s / eager,
            f"predict_{precision}_vs_eager_fp32": predict_img_s / eager,
            f"extract_{precision}_vs_folded_{precision}": extract_img_s / ceiling,
            f"folded_{precision}_vs_eager_fp32": ceiling / eager,
        }
    try:
        figures |= gpu_decode(data, device, batch_size, weights)
        ratios["gpu_decode_vs_cpu_decode"] = figures["gpu_decode_img_s"] / figures["cpu_decode_img_s"]
    except (RuntimeError, NotImplementedError) as error:  # decode_jpeg on this device may be missing
        figures["gpu_decode_error"] = str(error).splitlines()[0]
    figures["ratios"] = ratios
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8000, help="500x375 JPEGs to extract and predict")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None, help="decoding workers (default: one per core, <= 32)")
    parser.add_argument("--dry-run", action="store_true", help="run every step on the CPU with 64 images")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gpu.json")
    args = parser.parse_args(argv)
    if args.dry_run:
        device, images, rounds = torch.device("cpu"), 64, 1
    elif not torch.cuda.is_available():
        parser.error("no CUDA device here: run on a GPU machine, or use --dry-run to check the script on the CPU")
    else:
        device, images, rounds = torch.device("cuda"), args.images, 3
    work = Path(tempfile.mkdtemp(prefix="headstart-gpu-"))
    try:
        figures = run(images, args.batch_size, device, work, workers=args.workers, rounds=rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures, indent=2))
    out = args.out.with_name("gpu-dry-run.json") if args.dry_run else args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
