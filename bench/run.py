"""Measure extract, train-head and predict against the backbone's own speed and the notebook loop, in one run.

    python -m bench [--data DIR] [--generated 4000] [--weights none] [--out bench/results/bench.json]

Every comparison is a ratio of two figures taken in this run, on this machine: absolute timings on shared
machines are noise, ratios are what the targets in the README are stated in.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.notebook import notebook_epochs
from features import (FEATURES_FILE, PREPROCESSINGS, ExtractConfig, FeatureStore, extract_features, find_dataset, find_images,
                      load_backbone, pick_device)
from features.images import build_transform, decode_image, read_file
from features.engines.local import default_workers
from heads import HEAD_FILE, PredictConfig, Predictor, TrainConfig, fit_head, train_sgd, write_predictions

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = ROOT.parent / "shared" / "data" / "hymenoptera_data"


def generate_images(root: Path, count: int, seed: int = 0) -> Path:
    """count photo-sized JPEGs (500x375, smooth colour fields plus noise) split 80/20 into train/val, 2 classes."""
    rng = np.random.default_rng(seed)
    for index in range(count):
        split = "train" if index % 5 else "val"
        coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((500, 375), Image.BILINEAR)
        noise = rng.integers(-20, 20, (375, 500, 3))
        pixels = np.clip(np.asarray(image, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
        path = root / split / ("a" if index % 2 else "b") / f"img_{index:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path, quality=90)
    return root


def forward_ceiling(data: Path, weights: str, device: torch.device, precision: str, batch_size: int = 32,
                    batches: int = 16) -> float:
    """Images/s of the backbone alone on already-decoded, preprocessed tensors (median over batches)."""
    preprocessing = PREPROCESSINGS["imagenet"]
    transform = build_transform(preprocessing)
    entries = find_dataset(data).splits["val"][:batch_size]
    batch = torch.stack([transform(decode_image(read_file(e.path)[0], preprocessing.draft_size)) for e in entries])
    backbone = load_backbone(weights, device, precision)
    backbone.features(batch)
    seconds = [timed(backbone.features, batch)[1] for _ in range(batches)]
    return len(batch) / float(np.median(seconds))


def training_only(cache: Path, config: TrainConfig) -> float:
    """Seconds of the SGD loop itself on the in-memory features, without reading, reporting or plotting."""
    with FeatureStore(cache / FEATURES_FILE) as store:
        train, val = store.read("train"), store.read("val")
        classes = len(store.header.classes)
    tensors = [(torch.from_numpy(rows.features), torch.from_numpy(rows.labels)) for rows in (train, val)]
    _, seconds = timed(train_sgd, tensors[0], tensors[1], classes, config)
    return seconds


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def count_images(data: Path) -> int:
    return sum(len(entries) for entries in find_dataset(data).splits.values())


def extract_in_subprocess(data: Path, cache: Path, weights: str) -> dict:
    """A cold extract in a fresh process, so its peak memory is its own."""
    output = subprocess.run([sys.executable, "-m", "bench.extract_rss", str(data), str(cache), weights],
                            cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def bf16_agreement(data: Path, work: Path, weights: str, fp32_cache: Path) -> dict:
    """Cosine similarity of bf16 to fp32 features, and how often the fp32-trained head gives the same label."""
    bf16_cache = work / "cache-bf16"
    extract_features(ExtractConfig(data=data, cache=bf16_cache, weights=weights, precision="bf16"))
    with FeatureStore(fp32_cache / FEATURES_FILE) as fp32, FeatureStore(bf16_cache / FEATURES_FILE) as bf16:
        a, b = fp32.read("val").features, bf16.read("val").features
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    head = Predictor.load(fp32_cache / HEAD_FILE, PredictConfig(weights=weights)).checkpoint.head
    with torch.inference_mode():
        same = (head(torch.from_numpy(a)).argmax(1) == head(torch.from_numpy(b)).argmax(1)).float().mean()
    return {"cosine_min": float(cosine.min()), "cosine_mean": float(cosine.mean()), "same_label": float(same)}


def run(data: Path, generated: int, weights: str, work: Path) -> dict:
    device = pick_device("auto")
    workers = default_workers()
    figures: dict = {"device": str(device), "cpu_threads": torch.get_num_threads(), "workers": workers,
                     "weights": weights, "real_images": count_images(data), "generated_images": generated}

    def say(key: str, value, unit: str = "") -> None:
        figures[key] = value
        shown = f"{value:.3f}" if isinstance(value, float) else value
        print(f"{key:<40} {shown} {unit}", flush=True)

    ceiling_before = forward_ceiling(data, weights, device, "fp32")
    cache = work / "cache-real"
    summary, cold = timed(extract_features, ExtractConfig(data=data, cache=cache, weights=weights))
    say("extract_cold_s", cold, "s")
    say("extract_cold_img_s", figures["real_images"] / cold, "img/s")
    _, warm = timed(extract_features, ExtractConfig(data=data, cache=cache, weights=weights))
    say("extract_warm_s", warm, "s")
    fit_head(cache, TrainConfig(epochs=5))  # the head predict needs; also pays train-head's one-off imports
    predictor = Predictor.load(cache / HEAD_FILE, PredictConfig(weights=weights))
    entries = find_images([data])
    _, predict_s = timed(write_predictions, work / "preds.csv", predictor.classes, predictor.predict(entries))
    say("predict_img_s", len(entries) / predict_s, "img/s")

    _, train50 = timed(fit_head, cache, TrainConfig(epochs=50))
    say("train_head_50_s", train50, "s")
    _, train5 = timed(fit_head, cache, TrainConfig(epochs=5))
    say("train_head_5_s", train5, "s")
    say("train_head_5_training_only_s", training_only(cache, TrainConfig(epochs=5)), "s")

    # The ceiling is measured on both sides of the end-to-end runs: shared machines drift.
    say("ceiling_fp32_img_s", (ceiling_before + forward_ceiling(data, weights, device, "fp32")) / 2, "img/s")
    epochs = notebook_epochs(data, 3, device, weights, workers)
    per_epoch = float(np.mean(epochs))
    say("notebook_epoch_s", per_epoch, "s")

    if generated:
        small, large = work / "gen-small", work / "gen-large"
        generate_images(small, generated // 10)
        generate_images(large, generated)
        small_run = extract_in_subprocess(small, work / "cache-small", weights)
        large_run = extract_in_subprocess(large, work / "cache-large", weights)
        say("generated_extract_cold_img_s", large_run["images"] / large_run["seconds"], "img/s")
        _, large_warm = timed(extract_features, ExtractConfig(data=large, cache=work / "cache-large", weights=weights))
        say("generated_extract_warm_s", large_warm, "s")
        say("extract_peak_rss_small_mib", small_run["peak_rss_mib"], "MiB")
        say("extract_peak_rss_large_mib", large_run["peak_rss_mib"], "MiB")
        say("extract_peak_growth_small_mib", small_run["peak_growth_mib"], "MiB over the imports")
        say("extract_peak_growth_large_mib", large_run["peak_growth_mib"], "MiB over the imports")
        figures["generated_extract_cold_s"] = large_run["seconds"]

    bf16_ok = device.type == "cuda" or torch.ops.mkldnn._is_mkldnn_bf16_supported()
    if bf16_ok:
        say("ceiling_bf16_img_s", forward_ceiling(data, weights, device, "bf16"), "img/s")
        figures["bf16"] = bf16_agreement(data, work, weights, cache)
        print(f"{'bf16 agreement':<40} {figures['bf16']}")

    ceiling = figures["ceiling_fp32_img_s"]
    ratios = {
        "extract_vs_ceiling (>= 0.85)": figures["extract_cold_img_s"] / ceiling,
        "predict_vs_ceiling (>= 0.85)": figures["predict_img_s"] / ceiling,
        "train_head_5_vs_extract (<= 0.02)": train5 / cold,
        "train_head_5_training_only_vs_extract": figures["train_head_5_training_only_s"] / cold,
        "speedup_vs_notebook_5_epochs (>= 5)": 5 * per_epoch / (cold + train5),
        "speedup_vs_notebook_50_epochs (>= 40)": 50 * per_epoch / (cold + train50),
        "warm_vs_cold_extract (<= 0.05)": warm / cold,
    }
    if generated:
        ratios["generated_extract_vs_ceiling (>= 0.85)"] = figures["generated_extract_cold_img_s"] / ceiling
        ratios["generated_warm_vs_cold (<= 0.05)"] = figures["generated_extract_warm_s"] / figures[
            "generated_extract_cold_s"]
        ratios["peak_rss_large_vs_small (<= 1.3)"] = (figures["extract_peak_rss_large_mib"]
                                                      / figures["extract_peak_rss_small_mib"])
        ratios["peak_growth_large_vs_small"] = (figures["extract_peak_growth_large_mib"]
                                                / figures["extract_peak_growth_small_mib"])
    if bf16_ok:
        ratios["bf16_speedup_vs_fp32"] = figures["ceiling_bf16_img_s"] / ceiling
    figures["ratios"] = ratios
    print("\nratios (target)")
    for name, value in ratios.items():
        print(f"  {name:<45} {value:.3f}")
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REAL_DATA, help="ImageFolder dataset (default: %(default)s)")
    parser.add_argument("--generated", type=int, default=4000, help="images in the generated folder (0 skips it)")
    parser.add_argument("--weights", default="none", help="imagenet, none or a file; speed does not depend on it")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "bench.json")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="headstart-bench-"))
    try:
        figures = run(args.data, args.generated, args.weights, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
