"""Ray shards on one machine: what reaches the driver, the time against the local engine, a resume after kill -9.

    python -m bench.ray_shards [--images 4000] [--size 64] [--backbone mobilenet_v3_large]
                               [--out bench/results/ray_shards.json]

Generated noise images (two classes, train and val), `--weights none` (random init: speed and bytes do not depend
on the weights). Three runs, each from a cold cache: the local engine; the Ray engine joining a local Ray instance
started here (the workers write the shards, the driver merges them); and the Ray engine as the CLI runs it in a
subprocess that is killed with SIGKILL once a quarter of its shards exist, then resumed by a run joining the
instance. A fast backbone keeps the forward pass from hiding what the shards cost.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench import measure_and_save
from headstart.features import ExtractConfig, extract_features
from headstart.features.backbones.registry import backbone_entry
from headstart.features.files.cachedir import MANIFEST_SUFFIX, features_file, shards_folder

ROOT = Path(__file__).resolve().parents[1]
KILL_DEADLINE_S = 600


def make_images(root: Path, count: int, size: int) -> Path:
    """count noise images of size x size, four in five under train/, the rest under val/, two classes."""
    rng = np.random.default_rng(0)
    for index in range(count):
        split = "val" if index % 5 == 4 else "train"
        folder = root / split / ("ants" if index % 2 else "bees")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{index:06d}.jpg")
    return root


def timed_extract(data: Path, cache: Path, backbone: str, engine: str) -> tuple[float, object]:
    """Seconds of one extract_features call, and its summary."""
    started = time.perf_counter()
    config = ExtractConfig(data=data, cache=cache, weights="none", engine=engine, backbone=backbone)
    summary = extract_features(config)
    return time.perf_counter() - started, summary


def kill_mid_run(data: Path, cache: Path, backbone: str, after: int) -> int:
    """Run the CLI's extract --engine ray (its own Ray instance) and SIGKILL it, Ray with it, once `after` shards
    have manifest entries; return how many had them when it was killed."""
    folder = shards_folder(cache / features_file(backbone))
    command = [sys.executable, "-m", "headstart", "extract", "--data", str(data), "--cache", str(cache)]
    command += ["--weights", "none", "--engine", "ray", "--backbone", backbone]
    driver = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + KILL_DEADLINE_S
    try:
        while driver.poll() is None and time.monotonic() < deadline:
            if len(list(folder.glob(f"*{MANIFEST_SUFFIX}"))) >= after:
                break
            time.sleep(0.02)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    if driver.returncode != -signal.SIGKILL:
        raise SystemExit(f"the extract ended (exit {driver.returncode}) before {after} shards: use more --images")
    time.sleep(2)  # the killed run's workers notice their driver is gone and stop
    return len(list(folder.glob(f"*{MANIFEST_SUFFIX}")))


def measure(data: Path, work: Path, backbone: str, images: int) -> dict:
    """The three runs' figures."""
    import ray

    figures: dict = {"images": images, "cpus": len(os.sched_getaffinity(0)), "ray_version": ray.__version__}
    figures["backbone"], figures["width"] = backbone, backbone_entry(backbone).width
    figures["local_seconds"], _ = timed_extract(data, work / "local", backbone, "local")
    killed_with = kill_mid_run(data, work / "killed", backbone, after=max(2, images // 32 // 4))
    ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    try:
        figures["ray_seconds"], summary = timed_extract(data, work / "ray", backbone, "ray")
        figures["ray_over_local_time"] = figures["ray_seconds"] / figures["local_seconds"]
        figures["shards_written"] = summary.shards.written
        figures["driver_bytes"] = summary.shards.driver_bytes
        figures["driver_feature_row_bytes"] = summary.shards.feature_bytes
        extracted = sum(split.extracted for split in summary.splits)
        figures["feature_row_bytes_without_shards"] = extracted * figures["width"] * 4  # what rows back would carry
        figures["killed_with_manifest_entries"] = killed_with
        seconds, resumed = timed_extract(data, work / "killed", backbone, "ray")
    finally:
        ray.shutdown()
    figures["resume_seconds"] = seconds
    figures["shards_resumed"], figures["shards_discarded"] = resumed.shards.resumed, resumed.shards.discarded
    figures["rows_resumed"] = resumed.resumed
    figures["rows_extracted_after_resume"] = sum(split.extracted for split in resumed.splits)
    figures["load_average_1min"] = os.getloadavg()[0]
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ray_shards", description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--backbone", default="mobilenet_v3_large")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ray_shards.json")
    args = parser.parse_args(argv)
    figures = measure_and_save(
        "ray-shards-",
        args.out,
        lambda work: measure(make_images(work / "data", args.images, args.size), work, args.backbone, args.images),
    )
    for key, value in figures.items():
        print(f"{key:<36} {value:.3f}" if isinstance(value, float) else f"{key:<36} {value}", flush=True)
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
