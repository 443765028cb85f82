"""Run one cold extract (or, with --predict, a predict with the cache's head) in this process and print its time
and peak resident memory as JSON (for bench.run and bench.scale).

    python -m bench.extract_rss DATA CACHE WEIGHTS [--predict OUT.csv]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from headstart.features import ExtractConfig, extract_features, find_images
from headstart.features.files.cachedir import HEAD_FILE
from headstart.heads import PredictConfig, Predictor, write_predictions


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def _extract(data: Path, cache: Path, weights: str) -> tuple[float, int]:
    summary = extract_features(ExtractConfig(data=data, cache=cache, weights=weights))
    return summary.seconds, sum(split.extracted for split in summary.splits)


def _predict(data: Path, cache: Path, weights: str, out: Path) -> tuple[float, int]:
    started = time.perf_counter()
    predictor = Predictor.load(cache / HEAD_FILE, PredictConfig(weights=weights))
    entries = find_images([data])
    write_predictions(out, predictor.classes, predictor.predict(entries))
    return time.perf_counter() - started, len(entries)


def main() -> None:
    data, cache, weights = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    import torch  # noqa: F401  (imports are not the step's time or memory: measure from here)
    import torchvision  # noqa: F401

    baseline = _status_mib("VmRSS")
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # resets the peak (VmHWM) to the current RSS
    if sys.argv[4:5] == ["--predict"]:
        seconds, images = _predict(data, cache, weights, Path(sys.argv[5]))
    else:
        seconds, images = _extract(data, cache, weights)
    peak = _status_mib("VmHWM")
    print(
        json.dumps(
            {
                "seconds": seconds,
                "images": images,
                "baseline_rss_mib": baseline,
                "peak_rss_mib": peak,
                "peak_growth_mib": peak - baseline,
            }
        )
    )


if __name__ == "__main__":
    main()
