"""Run one cold extract in this process and print its time and peak resident memory as JSON (for bench.run)."""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

from features import ExtractConfig, extract_features


def main() -> None:
    data, cache, weights = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    summary = extract_features(ExtractConfig(data=data, cache=cache, weights=weights))
    print(json.dumps({
        "seconds": summary.seconds,
        "images": sum(split.extracted for split in summary.splits),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_rss_workers_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }))


if __name__ == "__main__":
    main()
