"""The streamed audit's sample size: recall of planted label flips and outliers, and agreement with the in-memory
audit, for a few sample sizes, on a generated cache with known answers.

    python -m bench.audit_sample [--rows 40000] [--width 128] [--sizes 1024,4096,16384] [--seeds 2]
                                 # writes bench/results/audit_sample.json

No images and no backbone (as from a randomly initialised one: the ImageNet weights are not used): `--rows` train
rows and a tenth as many test rows of `--width`-d features, 10 Gaussian classes (centres 2.5 noise units apart on
average, so neighbouring classes overlap), written class by class; 2% of train rows filed under another class (the
planted flips) and 1% of all rows moved 8 units along a random direction (the planted outliers). The same file is
audited in memory (every train row fitted) and, with the in-memory limit lowered below it, streamed with each sample
size and sample seed (heads/audit/streamed.py). Per run: the planted flips among the first 2k label issues (k
planted), the planted outliers listed, the flagged sets' overlap (Jaccard) with the in-memory audit's, seconds.
"""

from __future__ import annotations

import argparse
import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np

from bench import measure_and_save

ROOT = Path(__file__).resolve().parents[1]
CLASSES = 10


def generate(cache: Path, rows: int, width: int, seed: int = 0) -> dict:
    """cache/features.h5 with planted flips and outliers; their row numbers (train first, then test)."""
    from bench.scale_rows import generated_header
    from headstart.features.files.cachedir import FEATURES_FILE
    from headstart.features.store import Rows, StoreWriter

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((CLASSES, width)).astype(np.float32) * 2.5 / np.sqrt(2)
    header = generated_header("headstart bench.audit_sample", CLASSES)
    planted: dict = {"flips": [], "outliers": []}
    cache.mkdir(parents=True, exist_ok=True)
    with StoreWriter(cache / FEATURES_FILE, header, dim=width) as writer:
        for split, count, offset in (("train", rows, 0), ("test", rows // 10, rows)):
            labels = np.arange(count) * CLASSES // count
            features = centres[labels] + rng.standard_normal((count, width)).astype(np.float32)
            far = rng.choice(count, count // 100, replace=False)
            direction = rng.standard_normal((len(far), width)).astype(np.float32)
            features[far] += 8 * direction / np.linalg.norm(direction, axis=1, keepdims=True)
            planted["outliers"] += (far + offset).tolist()
            given = labels.copy()
            if split == "train":
                flips = np.setdiff1d(rng.choice(count, count // 50, replace=False), far)
                given[flips] = (labels[flips] + rng.integers(1, CLASSES, len(flips))) % CLASSES
                planted["flips"] = flips.tolist()
            digests = [hashlib.sha256(f"{split}/{row}".encode()).hexdigest() for row in range(count)]
            ones = np.ones(count, np.int64)
            writer.begin_split(split)
            writer.append(Rows(features, given, [f"{split}/{row}.jpg" for row in range(count)], ones, ones, digests))
            writer.end_split([])
        writer.commit()
    return planted


def _scored(result, planted: dict, whole=None) -> dict:
    issues, outliers = result.label_issues.rows, result.outliers.rows
    flips = set(planted["flips"])
    figures = {
        "flip_recall": len(set(issues[: 2 * len(flips)].tolist()) & flips) / len(flips),
        "outlier_recall": len(set(outliers.tolist()) & set(planted["outliers"])) / len(planted["outliers"]),
        "flagged": len(issues),
        "outliers": len(outliers),
        "seconds": round(result.seconds, 1),
        "reading": result.record["reading"],
    }
    if whole is not None:
        for name, mine, theirs in (
            ("issues", issues, whole.label_issues.rows),
            ("outliers", outliers, whole.outliers.rows),
        ):
            a, b = set(mine.tolist()), set(theirs.tolist())
            figures[f"{name}_jaccard"] = round(len(a & b) / max(1, len(a | b)), 4)
    return figures


def measure(work: Path, rows: int, width: int, sizes: list[int], seeds: int) -> dict:
    from headstart.features import chunks
    from headstart.heads.audit import AuditConfig, audit_cache, streamed

    cache = work / "cache"
    planted = generate(cache, rows, width)
    config = AuditConfig(cache=cache, map_points=0)  # no val split: no learning curve (not what the sample changes)
    whole = audit_cache(config)
    figures: dict = {"rows": rows, "width": width, "in_memory": _scored(whole, planted), "streamed": []}
    print({"in_memory": figures["in_memory"]}, flush=True)
    chunks.IN_MEMORY_BYTES = 1 << 10  # below the file: the streamed path
    for size in sizes:
        streamed.SAMPLE_ROWS = size
        for seed in range(seeds):
            result = audit_cache(replace(config, train=replace(config.train, seed=seed)))
            figures["streamed"].append({"sample": size, "seed": seed, **_scored(result, planted, whole)})
            print(figures["streamed"][-1], flush=True)
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.audit_sample", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=40_000, help="train rows generated (and a tenth as many test)")
    parser.add_argument("--width", type=int, default=128, help="feature width")
    parser.add_argument("--sizes", default="1024,4096,16384", help="sample sizes, comma-separated")
    parser.add_argument("--seeds", type=int, default=2, help="sample seeds per size")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "audit_sample.json")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    measure_and_save("audit-sample-", args.out, lambda work: measure(work, args.rows, args.width, sizes, args.seeds))
    print(f"written to {args.out}", flush=True)


if __name__ == "__main__":
    main()
