"""The approximate index against exact search, and audit's duplicate step, on generated clustered 512-d rows.

    python -m bench.neighbours [--sizes 100000 1000000] [--queries 200] [--out bench/results/neighbours.json]
    python -m bench.neighbours --parts choice duplicates   # only some of the figures (search, choice, duplicates)
    python -m bench.neighbours --duplicates N --method exact|index     # one duplicate step, in this process

The rows are generated FEATURES, not images (no backbone runs; the ImageNet weights are not available here):
CLUSTERS centres, each row its centre plus a move in its cluster's own LOCAL-dimensional subspace plus a little
noise in every dimension, so rows lie on many small patches as a backbone's features of photos do, not as
uniform noise. Queries are further rows drawn the same way, not in the searched rows.

1. Search (similar's): for each size, recall@10 of the index (features/neighbours/index.py, the code `similar`
   runs) against exact search (features/neighbours/space.py), the index's build time, and the time of the query
   batch both ways.
2. The size above which the index is used: at smaller sizes, audit's near pairs both ways (exact tiles against
   features/neighbours/pairs.py's lists, their build included); the smallest size where the lists are faster
   is the choice, and the fraction of the exact pairs they find.
3. audit's duplicate step (heads/audit/duplicates.find_duplicates, whitening included) at each size, in a fresh
   process, with planted near copies: seconds, peak RSS above the rows, the planted pairs found and, where the
   exact step also runs (not at a million rows: it compares every pair), how many of its pairs the index found.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.extract_rss import _status_mib
from headstart.heads.audit.config import AuditConfig

DIM = 512
CLUSTERS = 2000
LOCAL = 16
PLANTED = 100  # near copies planted in the duplicate step's rows
BLOCK = 4096
THRESHOLD = AuditConfig().near_threshold
PARTS = ("search", "choice", "duplicates")


def clustered(rows: int, seed: int = 0) -> np.ndarray:
    """rows x DIM float32: CLUSTERS patches (a centre, a LOCAL-dimensional spread, a little noise everywhere)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((CLUSTERS, DIM), dtype=np.float32)
    spreads = rng.standard_normal((CLUSTERS, LOCAL, DIM), dtype=np.float32) * np.float32(1.2 / np.sqrt(LOCAL))
    out = np.empty((rows, DIM), np.float32)
    for start in range(0, rows, BLOCK):
        count = min(BLOCK, rows - start)
        cluster = rng.integers(0, CLUSTERS, count)
        move = np.einsum("il,ild->id", rng.standard_normal((count, LOCAL), dtype=np.float32), spreads[cluster])
        noise = rng.standard_normal((count, DIM), dtype=np.float32) * np.float32(0.1)
        out[start : start + count] = centres[cluster] + move + noise
    return out


def _timed(call, *args, **kwargs):
    started = time.perf_counter()
    value = call(*args, **kwargs)
    return value, round(time.perf_counter() - started, 2)


def search_figures(base: np.ndarray, queries: np.ndarray, k: int = 10) -> dict:
    """Recall@k of the index against exact search over base, and the times of both."""
    from headstart.features.neighbours.index import build_index
    from headstart.features.neighbours.space import ExactSearch, IndexedSearch

    exact = ExactSearch(base)
    (truth, _), exact_seconds = _timed(lambda: exact.nearest(queries, k, [None] * len(queries)))
    index, build_seconds = _timed(lambda: build_index(exact.unit(base)))
    (found, _), index_seconds = _timed(lambda: IndexedSearch(base, index).nearest(queries, k, [None] * len(queries)))
    recall = np.mean([len(set(t.tolist()) & set(f.tolist())) / k for t, f in zip(truth, found)])
    return {
        "rows": len(base),
        "queries": len(queries),
        "recall_at_10": round(float(recall), 4),
        "exact_query_seconds": exact_seconds,
        "index_build_seconds": build_seconds,
        "index_query_seconds": index_seconds,
        "nlist": int(index.nlist),
        "nprobe": int(index.nprobe),
    }


def choice_figures(rows: np.ndarray, sizes: tuple[int, ...]) -> list[dict]:
    """audit's near pairs over the first `size` rows, exact tiles against the index (build included)."""
    from headstart.features.neighbours.pairs import indexed_pairs
    from headstart.heads.audit.duplicates import near_pairs
    from headstart.heads.audit.space import whiten

    figures = []
    for size in sizes:
        unit = whiten(rows[:size], rows[: int(size * 0.8)])
        exact, exact_seconds = _timed(near_pairs, unit, THRESHOLD)
        index, index_seconds = _timed(indexed_pairs, unit, THRESHOLD)
        found = set(zip(index[0].tolist(), index[1].tolist()))
        truth = set(zip(exact[0].tolist(), exact[1].tolist()))
        figures.append(
            {
                "rows": size,
                "exact_pairs_seconds": exact_seconds,
                "index_pairs_seconds": index_seconds,
                "exact_pairs": len(truth),
                "exact_pairs_found_by_index": len(truth & found),
                "fraction_found": round(len(truth & found) / max(1, len(truth)), 4),
            }
        )
    return figures


def _planted(rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    features = clustered(rows, seed=1)
    rng = np.random.default_rng(2)
    copies = rng.choice(rows, 2 * PLANTED, replace=False)
    originals, duplicates = copies[:PLANTED], copies[PLANTED:]
    features[duplicates] = features[originals] + rng.normal(0, 0.05, (PLANTED, DIM)).astype(np.float32)
    return features, originals, duplicates


def duplicates_in_process(rows: int, method: str) -> dict:
    """One duplicate step over `rows` planted rows, by the exact tiles or the index: its time, peak RSS, pairs."""
    from headstart.heads.audit.duplicates import find_duplicates

    features, originals, duplicates = _planted(rows)
    train_rows = int(rows * 0.8)
    split = np.where(np.arange(rows) < train_rows, "train", "val")
    sha256 = [f"{i:064x}" for i in range(rows)]
    baseline = _status_mib("VmRSS")
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # resets the peak (VmHWM) to the current RSS
    threshold_rows = 1 if method == "index" else rows + 1
    pairs, seconds = _timed(
        lambda: find_duplicates(features, sha256, split, train_rows, THRESHOLD, index_min_rows=threshold_rows)
    )
    found = sorted({(min(a, b), max(a, b)) for a, b in zip(pairs.a.tolist(), pairs.b.tolist())})
    planted = {(min(a, b), max(a, b)) for a, b in zip(originals.tolist(), duplicates.tolist())}
    return {
        "rows": rows,
        "method": method,
        "seconds": seconds,
        "rows_mib": round(features.nbytes / 2**20),
        "peak_above_rows_mib": round(_status_mib("VmHWM") - baseline),
        "planted_pairs": len(planted),
        "planted_found": len(planted & set(found)),
        "pairs": found,
    }


def fresh_duplicates(rows: int, method: str) -> dict:
    """duplicates_in_process in a fresh Python process (its peak RSS is the step's own)."""
    command = [sys.executable, "-m", "bench.neighbours", "--duplicates", str(rows), "--method", method]
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=os.environ)
    return json.loads(done.stdout)


def duplicate_figures(sizes: list[int], exact_up_to: int) -> list[dict]:
    """The duplicate step by the index at every size, and exactly where it is not too slow to run."""
    figures = []
    for size in sizes:
        index = fresh_duplicates(size, "index")
        if size <= exact_up_to:
            exact = fresh_duplicates(size, "exact")
            truth = {tuple(pair) for pair in exact.pop("pairs")}
            index["exact_pairs"] = len(truth)
            index["exact_pairs_found"] = len(truth & {tuple(pair) for pair in index["pairs"]})
            figures.append(exact)
        index["other_pairs"] = len(index.pop("pairs")) - index["planted_found"]
        figures.append(index)
    return figures


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--choice-sizes", type=int, nargs="+", default=[10_000, 25_000, 50_000, 100_000])
    parser.add_argument("--exact-duplicates-up-to", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=Path("bench/results/neighbours.json"))
    parser.add_argument("--duplicates", type=int, help="run one duplicate step over N rows and print it as JSON")
    parser.add_argument("--method", choices=("exact", "index"), default="index")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="which figures to measure")
    return parser.parse_args()


def main() -> None:
    """Every figure, as JSON on stdout and in --out."""
    arguments = _arguments()
    if arguments.duplicates:
        print(json.dumps(duplicates_in_process(arguments.duplicates, arguments.method)))
        return
    from headstart.features.neighbours import pairs
    from headstart.features.neighbours.config import INDEX_MIN_ROWS

    started, parts, load = time.perf_counter(), set(arguments.parts), os.getloadavg()
    choice, search, duplicates = [], [], []
    if parts & {"search", "choice"}:
        largest = max(arguments.sizes) if "search" in parts else max(arguments.choice_sizes)
        rows = clustered(largest + arguments.queries)
        queries, rows = rows[-arguments.queries :], rows[: -arguments.queries]
        choice = choice_figures(rows, tuple(arguments.choice_sizes)) if "choice" in parts else []
        search = [search_figures(rows[:size], queries) for size in arguments.sizes] if "search" in parts else []
        del rows
    if "duplicates" in parts:
        duplicates = duplicate_figures(arguments.sizes, arguments.exact_duplicates_up_to)
    faster = [figure["rows"] for figure in choice if figure["index_pairs_seconds"] < figure["exact_pairs_seconds"]]
    record = {
        "command": "python -m bench.neighbours " + " ".join(sys.argv[1:]),
        "data": f"generated: {CLUSTERS} clusters, {LOCAL}-d spread, {DIM}-d rows (no backbone, no images)",
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(value, 1) for value in load],
        "load_average_at_end": [round(value, 1) for value in os.getloadavg()],
        "index_min_rows": INDEX_MIN_ROWS,
        "pair_lists": {
            "list_rows": pairs.LIST_ROWS,
            "probes": pairs.PROBES,
            "kmeans_iterations": pairs.KMEANS_ITERATIONS,
        },
        "smallest_size_index_faster": min(faster) if faster else None,
        "search": search,
        "choice": choice,
        "duplicates": duplicates,
        "seconds": round(time.perf_counter() - started, 1),
    }
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
