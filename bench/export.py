"""Throughput of the exported classifier (TorchScript, ONNX in onnxruntime on the CPU) against headstart's own
forward pass, on the same batches in one run, and the files' sizes.

    python -m bench.export [--rounds 5] [--batch-size 32] [--out bench/results/export.json]

A head is trained on generated images (`--weights none`: speed does not depend on the weights' values) and
exported in both formats, each verified against predict as `export` does. Every round times one batch of each
of the three, interleaved, so load from other processes falls on all three alike; the figures are medians.
headstart's forward pass is predict's: normalise, the frozen backbone (channels_last), the head, softmax.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from bench import measure_and_save
from bench.run import generate_images
from headstart.features import ExtractConfig, extract_features
from headstart.features.files.cachedir import HEAD_FILE
from headstart.features.folder import ImageEntry
from headstart.heads import PredictConfig, Predictor, TrainConfig, fit_head
from headstart.heads.export import ExportConfig, export_head
from headstart.heads.export.formats import exporter_for
from headstart.heads.export.verify import model_inputs

ROOT = Path(__file__).resolve().parents[1]
FORMATS = ("torchscript", "onnx")


def _headstart_forward(predictor: Predictor):
    """predict's forward pass on [0, 1] pixels: the same normalisation, backbone and head as headstart runs."""
    preprocessing = predictor.preprocessing
    mean = torch.tensor(preprocessing.mean).view(1, 3, 1, 1)
    std = torch.tensor(preprocessing.std).view(1, 3, 1, 1)
    head = predictor.checkpoint.head

    def run(images: np.ndarray) -> np.ndarray:
        features = predictor.backbone.features((torch.from_numpy(images) - mean) / std)
        with torch.inference_mode():
            return torch.softmax(head(features), dim=1).numpy()

    return run


def run(work: Path, rounds: int = 5, batch_size: int = 32, images: int = 100) -> dict:
    """Export both formats from a freshly trained head and time them against headstart's forward pass."""
    data = generate_images(work / "data", images)
    cache = work / "cache"
    extract_features(ExtractConfig(data=data, cache=cache, weights="none", workers=0))
    fit_head(cache, TrainConfig(epochs=5))
    predictor = Predictor.load(cache / HEAD_FILE, PredictConfig(device="cpu", workers=0))
    entries = [ImageEntry(path, str(path)) for path in sorted(data.rglob("*.jpg"))[:batch_size]]
    _, batch = model_inputs(entries, predictor.preprocessing)

    figures: dict = {
        "cpu_threads": torch.get_num_threads(),
        "batch_size": len(batch),
        "rounds": rounds,
        "torch": torch.__version__,
    }
    runners = {"headstart": _headstart_forward(predictor)}
    for name in FORMATS:
        out = work / f"classifier.{name}"
        summary = export_head(ExportConfig(out=out, format=name, cache=cache))
        figures[f"{name}_export_s"] = summary.seconds
        figures[f"{name}_max_difference"] = summary.difference
        figures[f"{name}_bytes"] = summary.sizes[0]
        runners[name] = exporter_for(name).load([out])
    import onnxruntime

    figures["onnxruntime"] = onnxruntime.__version__
    for runner in runners.values():  # warm-up: first calls allocate and pick kernels
        runner(batch)
    seconds: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, runner in runners.items():
            started = time.perf_counter()
            runner(batch)
            seconds[name].append(time.perf_counter() - started)
    for name, times in seconds.items():
        figures[f"{name}_img_s"] = len(batch) / float(np.median(times))
    for name in FORMATS:
        figures[f"{name}_vs_headstart"] = figures[f"{name}_img_s"] / figures["headstart_img_s"]
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.export", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed batches per model (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per batch (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "export.json")
    args = parser.parse_args(argv)
    figures = measure_and_save(
        "headstart-bench-export-", args.out, lambda work: run(work, args.rounds, args.batch_size)
    )
    for key, value in figures.items():
        print(f"{key:<32} {value:.4g}" if isinstance(value, float) else f"{key:<32} {value}")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
