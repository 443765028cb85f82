"""Run one cold extract in this process and print its time and peak resident memory as JSON (for bench.run)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from features import ExtractConfig, extract_features


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def main() -> None:
    data, cache, weights = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    import torch  # noqa: F401  (imports are not the extract's time or memory: measure from here)
    import torchvision  # noqa: F401

    baseline = _status_mib("VmRSS")
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # resets the peak (VmHWM) to the current RSS
    summary = extract_features(ExtractConfig(data=data, cache=cache, weights=weights))
    peak = _status_mib("VmHWM")
    print(json.dumps({
        "seconds": summary.seconds,
        "images": sum(split.extracted for split in summary.splits),
        "baseline_rss_mib": baseline,
        "peak_rss_mib": peak,
        "peak_growth_mib": peak - baseline,
    }))


if __name__ == "__main__":
    main()
