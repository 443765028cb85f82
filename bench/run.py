"""Measure extract, train-head and predict against the backbone's own speed and the notebook loop, in one run.

    python -m bench [--data DIR] [--generated 4000] [--scale 40000] [--no-compile] [--weights none]

Every forward-pass figure is against torchvision's own eager ResNet18 (BatchNorm unfolded), the network extract ran
before BatchNorm folding: the targets ask extract to beat that ceiling, not just approach it.

Every comparison is a ratio of two figures taken in this run, on this machine: absolute timings on shared
machines are noise, ratios are what the targets in docs/benchmark.md are stated in. Cold extracts and predict are the
median of three runs; the forward ceilings are measured before and after them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench import decode, measure_and_save, startup
from bench.forward import compile_break_even, decoded_batch, eager_forward, folded_forward, interleaved
from bench.notebook import notebook_epochs
from headstart.features import ExtractConfig, FeatureStore, extract_features, find_dataset, find_images, pick_device
from headstart.features.engines.local import default_batch_size, default_workers
from headstart.features.files.cachedir import FEATURES_FILE, HEAD_FILE
from headstart.heads import PredictConfig, Predictor, TrainConfig, fit_head, train_sgd, write_predictions

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


def median_seconds(step: Callable[[int], object], runs: int = 3) -> float:
    """Median seconds of step(run) over runs (each cold extract gets its own cache): one run is noise here."""
    return float(np.median([timed(step, run)[1] for run in range(runs)]))


def count_images(data: Path) -> int:
    return sum(len(entries) for entries in find_dataset(data).splits.values())


def extract_in_subprocess(data: Path, cache: Path, weights: str, predict_to: Path | None = None) -> dict:
    """A cold extract (or, with predict_to, a predict with cache's head) in a fresh process, so its peak memory is
    its own."""
    predict = ["--predict", str(predict_to)] if predict_to else []
    output = subprocess.run(
        [sys.executable, "-m", "bench.extract_rss", str(data), str(cache), weights, *predict],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def bf16_agreement(bf16_cache: Path, weights: str, fp32_cache: Path) -> dict:
    """Cosine similarity of bf16 to fp32 features, and how often the fp32-trained head gives the same label."""
    with FeatureStore(fp32_cache / FEATURES_FILE) as fp32, FeatureStore(bf16_cache / FEATURES_FILE) as bf16:
        a, b = fp32.read("val").features, bf16.read("val").features
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    head = Predictor.load(fp32_cache / HEAD_FILE, PredictConfig(weights=weights)).checkpoint.head
    with torch.inference_mode():
        same = (head(torch.from_numpy(a)).argmax(1) == head(torch.from_numpy(b)).argmax(1)).float().mean()
    return {"cosine_min": float(cosine.min()), "cosine_mean": float(cosine.mean()), "same_label": float(same)}


def ceilings(data: Path, weights: str, device: torch.device, precisions: tuple[str, ...]) -> dict[str, float]:
    """images/s of the forward pass alone, eager and folded, per precision, measured interleaved."""
    forwards = {
        f"{kind}_{precision}": make(weights, device, precision)
        for precision in precisions
        for kind, make in (("eager", eager_forward), ("folded", folded_forward))
    }
    rates = interleaved(forwards, decoded_batch(data))
    # The ceiling is batch 32, the batch extract ran before; it now runs smaller batches: eager at that size too.
    size = default_batch_size(device)
    rates["eager_fp32_same_batch"] = interleaved({"eager": forwards["eager_fp32"]}, decoded_batch(data, size))["eager"]
    return rates


def run(data: Path, generated: int, weights: str, work: Path, scale: int = 0, compile_figures: bool = True) -> dict:
    device = pick_device("auto")
    workers = default_workers()
    figures: dict = {
        "device": str(device),
        "cpu_threads": torch.get_num_threads(),
        "workers": workers,
        "weights": weights,
        "real_images": count_images(data),
        "generated_images": generated,
    }

    def say(key: str, value, unit: str = "") -> None:
        figures[key] = value
        shown = f"{value:.3f}" if isinstance(value, float) else value
        print(f"{key:<40} {shown} {unit}", flush=True)

    bf16_ok = device.type == "cuda" or torch.ops.mkldnn._is_mkldnn_bf16_supported()
    precisions = ("fp32", "bf16") if bf16_ok else ("fp32",)
    ceilings_before = ceilings(data, weights, device, precisions)
    cache = work / "cache-real"
    cold = median_seconds(
        lambda run: extract_features(ExtractConfig(data=data, cache=cache / str(run), weights=weights))
    )
    cache = cache / "0"
    say("extract_cold_s", cold, "s")
    say("extract_cold_img_s", figures["real_images"] / cold, "img/s")
    _, warm = timed(extract_features, ExtractConfig(data=data, cache=cache, weights=weights))
    say("extract_warm_s", warm, "s")
    fit_head(cache, TrainConfig(epochs=5))  # the head predict needs; also pays train-head's one-off imports
    predictor = Predictor.load(cache / HEAD_FILE, PredictConfig(weights=weights))
    entries = find_images([data])
    predict_s = median_seconds(
        lambda _: write_predictions(work / "preds.csv", predictor.classes, predictor.predict(entries))
    )
    say("predict_img_s", len(entries) / predict_s, "img/s")

    _, train50 = timed(fit_head, cache, TrainConfig(epochs=50))
    say("train_head_50_s", train50, "s")
    _, train5 = timed(fit_head, cache, TrainConfig(epochs=5))
    say("train_head_5_s", train5, "s")
    say("train_head_5_training_only_s", training_only(cache, TrainConfig(epochs=5)), "s")

    if bf16_ok:
        bf16_cold = median_seconds(
            lambda run: extract_features(
                ExtractConfig(data=data, cache=work / "cache-bf16" / str(run), weights=weights, precision="bf16")
            )
        )
        say("extract_bf16_cold_img_s", figures["real_images"] / bf16_cold, "img/s")
        figures["bf16"] = bf16_agreement(work / "cache-bf16" / "0", weights, cache)
        print(f"{'bf16 agreement':<40} {figures['bf16']}")

    # The ceilings are measured on both sides of the end-to-end runs: shared machines drift.
    ceilings_after = ceilings(data, weights, device, precisions)
    for name in ceilings_before:
        say(f"ceiling_{name}_img_s", (ceilings_before[name] + ceilings_after[name]) / 2, "img/s")
    figures["ceiling_fp32_img_s"] = figures["ceiling_eager_fp32_img_s"]
    figures["startup"] = startup.run(data, cache, weights)
    for name, value in figures["startup"].items():
        say(name, value, "s")
    figures["decode"] = decode.run(data, weights=weights)
    for name, value in figures["decode"].items():
        print(f"{'decode ' + name:<40} {value}")
    if compile_figures:
        figures["compile"] = compile_break_even(weights, device, decoded_batch(data))
        print(f"{'compile':<40} {figures['compile']}")
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

    if scale:
        from bench import scale as scale_bench  # bench.scale reuses this module's helpers

        figures["scale"] = scale_bench.run(scale, sorted({400, 4000, 40000, scale}), work / "scale", weights)
        print(f"{'scale':<40} {json.dumps(figures['scale'])}")

    ceiling = figures["ceiling_fp32_img_s"]
    ratios = {
        "extract_vs_eager_fp32_ceiling (>= 1.05)": figures["extract_cold_img_s"] / ceiling,
        "predict_vs_eager_fp32_ceiling (>= 1.05)": figures["predict_img_s"] / ceiling,
        "extract_vs_eager_fp32_at_extracts_batch_size": figures["extract_cold_img_s"]
        / figures["ceiling_eager_fp32_same_batch_img_s"],
        "folded_fp32_vs_eager_fp32": figures["ceiling_folded_fp32_img_s"] / ceiling,
        "train_head_process_minus_import_torch_s (<= 1.0)": figures["startup"]["train_head_minus_import_torch_s"],
        "warm_extract_process_minus_import_torch_s": figures["startup"]["extract_warm_minus_import_torch_s"],
        "info_process_minus_import_torch_s": figures["startup"]["info_minus_import_torch_s"],
        "train_head_5_vs_extract (<= 0.02)": train5 / cold,
        "train_head_5_training_only_vs_extract": figures["train_head_5_training_only_s"] / cold,
        "speedup_vs_notebook_5_epochs (>= 5)": 5 * per_epoch / (cold + train5),
        "speedup_vs_notebook_50_epochs (>= 40)": 50 * per_epoch / (cold + train50),
        "warm_vs_cold_extract (<= 0.05)": warm / cold,
    }
    if generated:
        ratios["generated_extract_vs_ceiling (>= 0.85)"] = figures["generated_extract_cold_img_s"] / ceiling
        ratios["generated_warm_vs_cold (<= 0.05)"] = (
            figures["generated_extract_warm_s"] / figures["generated_extract_cold_s"]
        )
        ratios["peak_rss_large_vs_small (<= 1.3)"] = (
            figures["extract_peak_rss_large_mib"] / figures["extract_peak_rss_small_mib"]
        )
        ratios["peak_growth_large_vs_small"] = (
            figures["extract_peak_growth_large_mib"] / figures["extract_peak_growth_small_mib"]
        )
    if bf16_ok:
        ratios["extract_bf16_vs_eager_fp32_ceiling (>= 1.9)"] = figures["extract_bf16_cold_img_s"] / ceiling
        ratios["eager_bf16_vs_eager_fp32"] = figures["ceiling_eager_bf16_img_s"] / ceiling
        ratios["folded_bf16_vs_eager_fp32"] = figures["ceiling_folded_bf16_img_s"] / ceiling
    if scale:
        ratios |= figures["scale"]["ratios"]
    figures["ratios"] = ratios
    print("\nratios (target)")
    for name, value in ratios.items():
        print(f"  {name:<45} {value:.3f}")
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REAL_DATA, help="ImageFolder dataset (default: %(default)s)")
    parser.add_argument("--generated", type=int, default=4000, help="images in the generated folder (0 skips it)")
    parser.add_argument(
        "--scale",
        type=int,
        default=0,
        help="also extract this many images (python -m bench.scale), against 400; e.g. 40000",
    )
    parser.add_argument(
        "--no-compile",
        dest="compile_figures",
        action="store_false",
        help="skip the torch.compile break-even (its first compile takes 20-50 s here)",
    )
    parser.add_argument("--weights", default="none", help="imagenet, none or a file; speed does not depend on it")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "bench.json")
    args = parser.parse_args(argv)
    measure_and_save(
        "headstart-bench-",
        args.out,
        lambda work: run(args.data, args.generated, args.weights, work, args.scale, args.compile_figures),
    )
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
