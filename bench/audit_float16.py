"""The streamed audit's near pairs with every row's whitened projection held in float16 against float32: the pairs
found and their similarities, on generated unit rows with pairs planted around the threshold (known answers).

    python -m bench.audit_float16 [--rows 200000] [--planted 4000] [--seed 0]  # bench/results/audit_float16.json

No images and no backbone: --rows random 32-d unit rows (the whitened projection's width), and --planted pairs of
them set to similarities drawn uniformly from 0.70-0.90, around audit's 0.8 threshold; the lists are fitted on a
65,536-row sample, as the streamed audit fits them (heads/audit/streamed_pairs.py's list_pairs).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from bench import measure_and_save

ROOT = Path(__file__).resolve().parents[1]
DIMS, THRESHOLD, SAMPLE = 32, 0.8, 65_536


def planted_rows(rows: int, planted: int, seed: int) -> np.ndarray:
    """Unit rows, `planted` of them each set to a similarity in 0.70-0.90 with another."""
    rng = np.random.default_rng(seed)
    unit = rng.standard_normal((rows, DIMS)).astype(np.float32)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    chosen = rng.choice(rows, 2 * planted, replace=False)
    base, twin = chosen[:planted], chosen[planted:]
    target = rng.uniform(0.70, 0.90, planted)[:, None]
    noise = rng.standard_normal((planted, DIMS)).astype(np.float32)
    noise -= (noise * unit[base]).sum(1, keepdims=True) * unit[base]  # orthogonal to the base row
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    unit[twin] = target * unit[base] + np.sqrt(1 - target**2) * noise
    return (unit / np.linalg.norm(unit, axis=1, keepdims=True)).astype(np.float32)


def run(rows: int, planted: int, seed: int) -> dict:
    from headstart.heads.audit.streamed_pairs import list_pairs

    unit = planted_rows(rows, planted, seed)
    sample = unit[np.sort(np.random.default_rng(seed + 1).choice(rows, min(rows, SAMPLE), replace=False))]
    found = {}
    for name, stored in (("float32", unit), ("float16", unit.astype(np.float16))):
        a, b, similarity, _ = list_pairs(stored, sample, THRESHOLD, 100_000)
        found[name] = dict(zip(zip(a.tolist(), b.tolist()), similarity.tolist()))
    common = found["float32"].keys() & found["float16"].keys()
    differ = found["float32"].keys() ^ found["float16"].keys()
    return {
        "rows": rows,
        "planted": planted,
        "seed": seed,
        "pairs_float32": len(found["float32"]),
        "pairs_float16": len(found["float16"]),
        "common": len(common),
        "only_float32": len(found["float32"].keys() - found["float16"].keys()),
        "only_float16": len(found["float16"].keys() - found["float32"].keys()),
        "max_similarity_difference": max((abs(found["float32"][k] - found["float16"][k]) for k in common), default=0),
        "similarities_of_pairs_found_by_one": sorted(
            found["float32"].get(k, found["float16"].get(k, 0.0)) for k in differ
        ),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.audit_float16", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--planted", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "audit_float16.json")
    args = parser.parse_args(argv)
    figures = measure_and_save("headstart-f16-", args.out, lambda _: run(args.rows, args.planted, args.seed))
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
