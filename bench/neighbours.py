"""The approximate index against exact search, and audit's duplicate step, on generated clustered 512-d rows.

    python -m bench.neighbours [--sizes 100000 1000000] [--queries 200] [--out bench/results/neighbours.json]
    python -m bench.neighbours --parts choice duplicates   # only some figures (search, choice, duplicates, stages)
    python -m bench.neighbours --duplicates N --method exact|index|stages     # one duplicate step, in this process

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
4. Where the duplicate step's time goes (stages): the same step by the lists, in a fresh process at each size,
   each of the calls find_duplicates chains timed on its own.
5. The whitening's sample (whitening): at the smallest size, the near pairs found after fitting the whitening on
   samples of the train rows of each size, against those after fitting it on every train row.
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

from bench import measure_and_save
from bench.extract_rss import _status_mib
from headstart.heads.audit.config import AuditConfig

DIM = 512
CLUSTERS = 2000
LOCAL = 16
PLANTED = 100  # near copies planted in the duplicate step's rows
BLOCK = 4096
THRESHOLD = AuditConfig().near_threshold
PARTS = ("search", "choice", "duplicates", "stages", "whitening")


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


def _cpu_timed(call, *args, **kwargs):
    """(value, wall seconds, CPU seconds of every thread of this process): on a shared machine the wall time grows
    with the others' load, the CPU time much less, so ratios between sizes are read from both."""
    started, cpu = time.perf_counter(), time.process_time()
    value = call(*args, **kwargs)
    return value, round(time.perf_counter() - started, 2), round(time.process_time() - cpu, 2)


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
    pairs, seconds, cpu_seconds = _cpu_timed(
        lambda: find_duplicates(features, sha256, split, train_rows, THRESHOLD, index_min_rows=threshold_rows)
    )
    found = sorted({(min(a, b), max(a, b)) for a, b in zip(pairs.a.tolist(), pairs.b.tolist())})
    planted = {(min(a, b), max(a, b)) for a, b in zip(originals.tolist(), duplicates.tolist())}
    return {
        "rows": rows,
        "method": method,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "rows_mib": round(features.nbytes / 2**20),
        "peak_above_rows_mib": round(_status_mib("VmHWM") - baseline),
        "planted_pairs": len(planted),
        "planted_found": len(planted & set(found)),
        "pairs": found,
    }


def stages_in_process(rows: int) -> dict:
    """The duplicate step by the lists over `rows` planted rows, stage by stage: the seconds of each of the calls
    find_duplicates chains (whitening fit and transform, exact copies, the lists' centres, each row's nearest
    lists, the pairs list by list, and the merge and ordering)."""
    from headstart.features.neighbours.pairs import list_centres, nearest_lists, pairs_in_lists
    from headstart.heads.audit.duplicates import combine_pairs, exact_pairs
    from headstart.heads.audit.space import fit_whitening

    features, _, _ = _planted(rows)
    train_rows = int(rows * 0.8)
    split = np.where(np.arange(rows) < train_rows, "train", "val")
    sha256 = [f"{i:064x}" for i in range(rows)]
    seconds: dict[str, float] = {}
    cpu_seconds: dict[str, float] = {}

    def stage(name, call, *args):
        value, seconds[name], cpu_seconds[name] = _cpu_timed(call, *args)
        return value

    whitening = stage("whitening_fit", fit_whitening, features[:train_rows])
    unit = stage("whitening_transform", whitening.transform, features)
    exact = stage("exact_copies", exact_pairs, sha256)
    centres = stage("list_centres", list_centres, unit)
    lists = stage("nearest_lists", nearest_lists, unit, centres)
    near = stage("pairs_in_lists", pairs_in_lists, unit, lists, THRESHOLD)
    stage("merge_and_order", combine_pairs, unit, sha256, split, exact, near)
    return {
        "rows": rows,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "total_seconds": round(sum(seconds.values()), 2),
        "total_cpu_seconds": round(sum(cpu_seconds.values()), 2),
    }


def whitening_figures(rows: int, samples: list[int]) -> dict:
    """How the near pairs change when the whitening is fitted on a sample of the train rows rather than all of them:
    over `rows` planted rows, the pairs the lists find after each fit, against those after the full fit; and, the
    lists aside, how many pairs of either fit cross the threshold under the other (their similarity recomputed)."""
    from headstart.features.neighbours.pairs import indexed_pairs
    from headstart.heads.audit.space import fit_whitening

    features, originals, duplicates = _planted(rows)
    train = features[: int(rows * 0.8)]
    planted = {(min(a, b), max(a, b)) for a, b in zip(originals.tolist(), duplicates.tolist())}
    full_fit, full_seconds = _timed(fit_whitening, train, sample_rows=len(train))
    full_unit = full_fit.transform(features)
    full = indexed_pairs(full_unit, THRESHOLD)
    truth = set(zip(full[0].tolist(), full[1].tolist()))
    figures = []
    for sample in samples:
        fit, seconds = _timed(fit_whitening, train, sample_rows=sample)
        unit = fit.transform(features)
        a, b, _, _ = indexed_pairs(unit, THRESHOLD)
        found = set(zip(a.tolist(), b.tolist()))
        union = np.array(sorted(truth | found)).reshape(-1, 2)
        full_s = np.einsum("ij,ij->i", full_unit[union[:, 0]], full_unit[union[:, 1]])
        sample_s = np.einsum("ij,ij->i", unit[union[:, 0]], unit[union[:, 1]])
        figures.append(
            {
                "sample_rows": sample,
                "fit_seconds": seconds,
                "pairs": len(found),
                "pairs_of_the_full_fit_found": len(truth & found),
                "pairs_the_full_fit_did_not_find": len(found - truth),
                "crossing_the_threshold": int(np.sum((full_s >= THRESHOLD) != (sample_s >= THRESHOLD))),
                "largest_similarity_change": round(float(np.abs(full_s - sample_s).max()), 4),
                "planted_found": len(planted & found),
            }
        )
    return {
        "rows": rows,
        "train_rows": len(train),
        "full_fit_seconds": full_seconds,
        "pairs": len(truth),
        "planted_found": len(planted & truth),
        "samples": figures,
    }


def fresh_duplicates(rows: int, method: str) -> dict:
    """duplicates_in_process (method exact or index) or stages_in_process (method stages) in a fresh process (its
    peak RSS is the step's own)."""
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
    parser.add_argument("--whitening-samples", type=int, nargs="+", default=[8192, 16384, 32768, 65536])
    parser.add_argument("--exact-duplicates-up-to", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=Path("bench/results/neighbours.json"))
    parser.add_argument("--duplicates", type=int, help="run one duplicate step over N rows and print it as JSON")
    parser.add_argument("--method", choices=("exact", "index", "stages"), default="index")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="which figures to measure")
    return parser.parse_args()


def measure(arguments: argparse.Namespace) -> dict:
    """The figures of the parts asked for, with the command, the machine's load and the parameters measured."""
    from headstart.features.neighbours import pairs
    from headstart.features.neighbours.config import INDEX_MIN_ROWS
    from headstart.heads.audit import space

    started, parts, load = time.perf_counter(), set(arguments.parts), os.getloadavg()
    choice, search, duplicates, stages, whitening = [], [], [], [], {}
    if parts & {"search", "choice"}:
        largest = max(arguments.sizes) if "search" in parts else max(arguments.choice_sizes)
        rows = clustered(largest + arguments.queries)
        queries, rows = rows[-arguments.queries :], rows[: -arguments.queries]
        choice = choice_figures(rows, tuple(arguments.choice_sizes)) if "choice" in parts else []
        search = [search_figures(rows[:size], queries) for size in arguments.sizes] if "search" in parts else []
        del rows
    if "stages" in parts:
        stages = [fresh_duplicates(size, "stages") for size in arguments.sizes]
    if "whitening" in parts:
        whitening = whitening_figures(min(arguments.sizes), arguments.whitening_samples)
    if "duplicates" in parts:
        duplicates = duplicate_figures(arguments.sizes, arguments.exact_duplicates_up_to)
    faster = [figure["rows"] for figure in choice if figure["index_pairs_seconds"] < figure["exact_pairs_seconds"]]
    return {
        "command": "python -m bench.neighbours " + " ".join(sys.argv[1:]),
        "data": f"generated: {CLUSTERS} clusters, {LOCAL}-d spread, {DIM}-d rows (no backbone, no images)",
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(value, 1) for value in load],
        "load_average_at_end": [round(value, 1) for value in os.getloadavg()],
        "index_min_rows": INDEX_MIN_ROWS,
        "whitening_sample_rows": getattr(space, "WHITEN_SAMPLE_ROWS", None),
        "pair_lists": {
            "list_rows": pairs.LIST_ROWS,
            "probes": pairs.PROBES,
            "kmeans_iterations": pairs.KMEANS_ITERATIONS,
        },
        "smallest_size_index_faster": min(faster) if faster else None,
        "search": search,
        "choice": choice,
        "duplicates": duplicates,
        "stages": stages,
        "whitening": whitening,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    """Every figure, as JSON on stdout and in --out."""
    arguments = _arguments()
    if arguments.duplicates:
        if arguments.method == "stages":
            print(json.dumps(stages_in_process(arguments.duplicates)))
        else:
            print(json.dumps(duplicates_in_process(arguments.duplicates, arguments.method)))
        return
    record = measure_and_save("headstart-neighbours-", arguments.out, lambda _scratch: measure(arguments))
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
