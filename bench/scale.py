"""Extract and predict at scale: throughput and peak memory of N images against 400, and how the scan, the
incremental-cache check, a warm extract and features.h5 grow with the number of files.

    python -m bench.scale [--scale 40000] [--growth 400,4000,40000]     # writes bench/results/scale.json
    python -m bench.scale --rows 200000,2000000    # bench/scale_rows.py: steps over generated feature rows

The N images are hard links to 400 generated 500x375 JPEGs (decoding costs the same; the disk holds 400). The
growth figures need no backbone: the cache is seeded with zero features through the real writer, so the warm
extract that follows takes the real path (scan, cache check, rewrite) at any file count in seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from bench import measure_and_save, scale_rows
from bench.run import extract_in_subprocess, generate_images, timed
from headstart.features import ExtractConfig, extract_features, find_dataset
from headstart.features.backbones.registry import DEFAULT_BACKBONE, backbone_entry
from headstart.features.engines.batches import EmbeddedBatch
from headstart.features.files.cachedir import FEATURES_FILE
from headstart.features.images import read_file
from headstart.features.reuse import PreviousRows
from headstart.features.store import FeatureStore
from headstart.heads import TrainConfig, fit_head

ROOT = Path(__file__).resolve().parents[1]
BASE_IMAGES = 400


def linked_dataset(base: Path, root: Path, count: int) -> Path:
    """count images under root, hard links to base's (same split/class layout, cycling over base's files)."""
    sources = sorted(base.rglob("*.jpg"), key=lambda path: path.name)  # generation order: splits and classes mixed
    for index in range(count):
        source = sources[index % len(sources)]
        target = root / source.relative_to(base).parent / f"{source.stem}_{index:06d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(source, target)
    return root


@dataclass(frozen=True)
class _ZeroEngine:
    """An engine that stamps each file as the real ones do and returns zero features: seeds a cache without a
    backbone, so the cache checks and warm extracts that follow are real."""

    batch_size: int = 256

    @property
    def driver_device(self) -> torch.device:
        return torch.device("cpu")

    def describe(self) -> str:
        return "zero features (bench seeding)"

    def embed(self, entries, backbone, preprocessing, on_progress=None, shards=None) -> Iterator[EmbeddedBatch]:
        for start in range(0, len(entries), self.batch_size):
            chunk = entries[start : start + self.batch_size]
            stamps = [read_file(entry.path)[1] for entry in chunk]
            yield EmbeddedBatch(
                chunk,
                stamps,
                [None] * len(chunk),
                np.zeros((len(chunk), backbone_entry(DEFAULT_BACKBONE).width), np.float32),
            )


def growth_at(base: Path, work: Path, count: int, weights: str) -> dict:
    """Seconds of the scan, of the cache check and of a whole warm extract, and features.h5's size, at count files."""
    data, cache = linked_dataset(base, work / f"data-{count}", count), work / f"cache-{count}"
    config = ExtractConfig(data=data, cache=cache, weights=weights)
    with mock.patch("headstart.features.extract.build_engine", lambda _: _ZeroEngine()):
        extract_features(config)
    dataset, scan_s = timed(find_dataset, data)
    with FeatureStore(cache / FEATURES_FILE) as store:
        header = store.header
    started = time.perf_counter()
    with closing(PreviousRows(cache / FEATURES_FILE, header)) as previous:
        plan = previous.plan(dataset.splits)
    check_s = time.perf_counter() - started
    assert not plan.todo, "the seeded cache should cover every file"
    summary, warm_s = timed(extract_features, config)
    figures = {
        "files": count,
        "scan_s": scan_s,
        "cache_check_s": check_s,
        "warm_extract_s": warm_s,
        "features_h5_mib": (cache / FEATURES_FILE).stat().st_size / 2**20,
    }
    shutil.rmtree(data)
    shutil.rmtree(cache)
    return figures


def _rate(step: dict) -> float:
    return step["images"] / step["seconds"]


def run(scale: int, growth: list[int], work: Path, weights: str = "none") -> dict:
    base = generate_images(work / "base", BASE_IMAGES)
    figures: dict = {
        "scale": scale,
        "base_images": BASE_IMAGES,
        "growth": [growth_at(base, work, count, weights) for count in growth],
    }
    if scale:
        small = extract_in_subprocess(base, work / "cache-base", weights)
        large_data = linked_dataset(base, work / "data-scale", scale)
        large = extract_in_subprocess(large_data, work / "cache-scale", weights)
        _, warm = timed(extract_features, ExtractConfig(data=large_data, cache=work / "cache-scale", weights=weights))
        for cache in ("cache-base", "cache-scale"):
            fit_head(work / cache, TrainConfig())
        small_predict = extract_in_subprocess(base, work / "cache-base", weights, work / "base.csv")
        large_predict = extract_in_subprocess(large_data, work / "cache-scale", weights, work / "scale.csv")
        figures |= {
            "small": small,
            "large": large,
            "large_warm_extract_s": warm,
            "small_predict": small_predict,
            "large_predict": large_predict,
            "large_features_h5_mib": (work / "cache-scale" / FEATURES_FILE).stat().st_size / 2**20,
            "ratios": {
                "img_s_large_vs_small (>= 0.9)": _rate(large) / _rate(small),
                "peak_rss_large_vs_small (<= 1.3)": large["peak_rss_mib"] / small["peak_rss_mib"],
                "predict_img_s_large_vs_small (>= 0.9)": _rate(large_predict) / _rate(small_predict),
                "predict_peak_rss_large_vs_small (<= 1.3)": (
                    large_predict["peak_rss_mib"] / small_predict["peak_rss_mib"]
                ),
            },
        }
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=40000, help="images to extract cold (0: growth figures only)")
    parser.add_argument("--growth", default="400,4000,40000", help="file counts for the scan and cache-check figures")
    parser.add_argument("--weights", default="none")
    parser.add_argument("--out", type=Path, default=None, help="default: bench/results/scale.json (scale_rows.json)")
    parser.add_argument("--rows", default="", help="feature row counts: bench/scale_rows.py's figures instead")
    parser.add_argument("--steps", default=",".join(scale_rows.STEPS), help="--rows: the steps to measure")
    parser.add_argument("--step-timeout", type=float, default=3600, help="--rows: seconds a step may take")
    parser.add_argument("--keep", type=Path, default=None, help="--rows: keep (and reuse) the generated caches here")
    args = parser.parse_args(argv)
    if args.rows:
        sizes = [int(n) for n in args.rows.split(",") if n]
        steps = tuple(step for step in args.steps.split(",") if step in scale_rows.STEPS)
        out = args.out or ROOT / "bench" / "results" / "scale_rows.json"
        timeout, keep = args.step_timeout, args.keep
        figures = measure_and_save(
            "headstart-rows-", out, lambda work: scale_rows.run(sizes, work, timeout, steps, keep)
        )
        print(json.dumps(figures, indent=2))
        return
    args.out = args.out or ROOT / "bench" / "results" / "scale.json"
    growth = [int(n) for n in args.growth.split(",") if n]
    figures = measure_and_save("headstart-scale-", args.out, lambda work: run(args.scale, growth, work, args.weights))
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
