"""find_duplicates on N random 512-d rows with planted near copies; prints seconds and peak memory as JSON."""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from bench.extract_rss import _status_mib
from headstart.heads.audit.config import AuditConfig

THRESHOLD = AuditConfig().near_threshold


def main() -> None:
    """Time and peak memory of one duplicate search, as JSON on stdout."""
    rows = int(sys.argv[1])
    from headstart.heads.audit.duplicates import find_duplicates

    rng = np.random.default_rng(0)
    features = np.abs(rng.standard_normal((rows, 512), dtype=np.float32))
    copies = rng.choice(rows, 200, replace=False)
    originals, duplicates = copies[:100], copies[100:]
    features[duplicates] = features[originals] + rng.normal(0, 0.05, (100, 512)).astype(np.float32)
    train_rows = int(rows * 0.8)
    split = np.where(np.arange(rows) < train_rows, "train", "val")
    sha256 = [f"{i:064x}" for i in range(rows)]
    baseline = _status_mib("VmRSS")
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # resets the peak (VmHWM) to the current RSS
    started = time.perf_counter()
    pairs = find_duplicates(features, sha256, split, train_rows, THRESHOLD)
    seconds = time.perf_counter() - started
    found = {(min(a, b), max(a, b)) for a, b in zip(pairs.a.tolist(), pairs.b.tolist())}
    planted = {(min(a, b), max(a, b)) for a, b in zip(originals.tolist(), duplicates.tolist())}
    print(
        json.dumps(
            {
                "rows": rows,
                "seconds": round(seconds, 1),
                "rows_mib": round(features.nbytes / 2**20),
                "peak_above_rows_mib": round(_status_mib("VmHWM") - baseline),
                "planted_pairs": len(planted),
                "planted_found": len(planted & found),
                "other_pairs": len(found - planted),
            }
        )
    )


if __name__ == "__main__":
    main()
