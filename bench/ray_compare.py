"""Extract throughput of --engine local against --engine ray on one machine, each from a cold cache.

    python -m bench.ray_compare [--data DIR] [--weights none] [--out bench/results/ray_compare.json]

Three runs: local; ray as the CLI runs it without --address (starting a local Ray instance and stopping it
after); ray joining an instance already running, which is how a cluster is used and leaves out Ray's start.
Ray's own cost shows up as the ratio to local; on a few cores it is overhead, not speed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from headstart.features import ExtractConfig, extract_features

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = ROOT.parent / "shared" / "data" / "hymenoptera_data"


def images_per_second(data: Path, weights: str, engine: str) -> float:
    """Images extracted per second of extract_features, cold cache, start-up included."""
    cache = Path(tempfile.mkdtemp(prefix=f"headstart-{engine}-"))
    try:
        started = time.perf_counter()
        summary = extract_features(ExtractConfig(data=data, cache=cache, weights=weights, engine=engine))
        return sum(split.extracted for split in summary.splits) / (time.perf_counter() - started)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ray_compare", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REAL_DATA, help="ImageFolder dataset (default: %(default)s)")
    parser.add_argument("--weights", default="none", help="imagenet, none or a file; speed does not depend on it")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ray_compare.json")
    args = parser.parse_args(argv)

    import ray

    figures = {"cpus": len(os.sched_getaffinity(0)), "ray_version": ray.__version__}
    figures["local_img_s"] = images_per_second(args.data, args.weights, "local")
    figures["ray_started_per_run_img_s"] = images_per_second(args.data, args.weights, "ray")
    ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    try:
        figures["ray_joined_img_s"] = images_per_second(args.data, args.weights, "ray")
    finally:
        ray.shutdown()
    for name in ("ray_started_per_run", "ray_joined"):
        figures[f"{name}_over_local"] = figures[f"{name}_img_s"] / figures["local_img_s"]

    for key, value in figures.items():
        print(f"{key:<34} {value:.3f}" if isinstance(value, float) else f"{key:<34} {value}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
