"""A label table against a folder scan of the same images: the time to resolve the dataset and to plan the
incremental cache, and a re-extract after relabelling 10% of the table's rows, which must compute nothing.

    python -m bench.tables [--rows 100000] [--repeats 3]     # writes bench/results/tables.json

No image is decoded: the ROWS files are hard links to 500 distinct 8x8 PNGs (ext4 allows 65,000 links per file),
laid out as train/ and val/ class folders, and the table names the same files with the same labels and splits.
The cache is seeded through the real writer with zero features (bench/scale.py's engine), so the plan and the
re-extract after relabelling take the real path; the re-extract runs the real engine (random init, `--weights
none`), which would load the backbone and decode images if anything were left to compute.
"""

from __future__ import annotations

import argparse
import json
import os
from contextlib import closing
from pathlib import Path
from unittest import mock

import numpy as np
from PIL import Image

from bench import measure_and_save
from bench.run import timed
from bench.scale import _ZeroEngine
from headstart.features import ExtractConfig, extract_features
from headstart.features.files.cachedir import FEATURES_FILE
from headstart.features.reuse import PreviousRows
from headstart.features.sources.choose import find_source, split_rule
from headstart.features.store import FeatureStore

ROOT = Path(__file__).resolve().parents[1]
SOURCES = 500  # distinct tiny images behind the hard links
CLASSES = ("ants", "bees")
RELABELLED = 0.1


def make_files(work: Path, rows: int) -> tuple[Path, Path, list[tuple[str, str, str]]]:
    """work/data/{train,val}/<class>/f<i>.png (hard links) and work/labels.csv naming the same files."""
    rng = np.random.default_rng(0)
    sources = []
    for index in range(SOURCES):
        source = work / "sources" / f"s{index}.png"
        source.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(source)
        sources.append(source)
    data, named = work / "data", []
    for index in range(rows):
        split, label = ("val" if index % 5 == 0 else "train"), CLASSES[index % 2]
        name = f"{split}/{label}/f{index:07d}.png"
        (data / split / label).mkdir(parents=True, exist_ok=True)
        os.link(sources[index % SOURCES], data / name)
        named.append((name, label, split))
    return data, write_table(work / "labels.csv", named), named


def write_table(path: Path, named: list[tuple[str, str, str]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write("path,label,split\n")
        out.writelines(f"{name},{label},{split}\n" for name, label, split in named)
    return path


def _best(step, repeats: int) -> tuple[object, float]:
    """The result and the fastest of `repeats` runs (the first warms the file system's caches)."""
    runs = [timed(step) for _ in range(repeats)]
    return runs[0][0], min(seconds for _, seconds in runs)


def _plan_seconds(cache: Path, config: ExtractConfig, dataset) -> tuple[int, float]:
    with FeatureStore(cache / FEATURES_FILE) as store:
        header = store.header
    with closing(PreviousRows(cache / FEATURES_FILE, header)) as previous:
        plan, seconds = timed(previous.plan, dataset.splits)
    return len(plan.todo), seconds


def run(rows: int, repeats: int, work: Path) -> dict:
    data, table, named = make_files(work, rows)
    cache = work / "cache"
    by_table = ExtractConfig(data=data, cache=cache, labels=table, weights="none", device="cpu", workers=0)
    by_folder = ExtractConfig(data=data, cache=cache, weights="none", device="cpu", workers=0)
    folder_set, folder_s = _best(lambda: find_source(by_folder, split_rule(by_folder))[0], repeats)
    table_set, table_s = _best(lambda: find_source(by_table, split_rule(by_table))[0], repeats)
    counts = {name: len(entries) for name, entries in table_set.splits.items()}
    assert counts == {name: len(entries) for name, entries in folder_set.splits.items()}
    with mock.patch("headstart.features.extract.build_engine", lambda _: _ZeroEngine()):
        _, seed_s = timed(extract_features, by_table)
    table_todo, table_plan_s = _plan_seconds(cache, by_table, table_set)
    folder_todo, folder_plan_s = _plan_seconds(cache, by_folder, folder_set)
    step = round(1 / RELABELLED)
    relabelled = [
        (n, CLASSES[1 - CLASSES.index(label)] if i % step == 0 else label, s) for i, (n, label, s) in enumerate(named)
    ]
    write_table(table, relabelled)
    summary, relabel_s = timed(extract_features, by_table)
    return {
        "rows": rows,
        "distinct_images": SOURCES,
        "splits": counts,
        "resolve_folder_s": folder_s,
        "resolve_table_s": table_s,
        "plan_folder_s": folder_plan_s,
        "plan_table_s": table_plan_s,
        "plan_todo": {"folder": folder_todo, "table": table_todo},
        "seed_extract_s": seed_s,
        "relabel": {
            "rows_relabelled_in_table": sum(a[1] != b[1] for a, b in zip(named, relabelled)),
            "extracted": sum(split.extracted for split in summary.splits),
            "reused": sum(split.reused for split in summary.splits),
            "relabelled": sum(split.relabelled for split in summary.splits),
            "seconds": relabel_s,
        },
        "ratios": {
            "resolve_table_vs_folder (<= 1.0)": table_s / folder_s,
            "plan_table_vs_folder (<= 1.0)": table_plan_s / folder_plan_s,
        },
        "weights": "none (random init; no backbone runs: nothing is left to compute)",
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tables", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="files in the folder, rows in the table")
    parser.add_argument("--repeats", type=int, default=3, help="timings per resolve (the fastest is kept)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "tables.json")
    args = parser.parse_args(argv)
    figures = measure_and_save("headstart-tables-", args.out, lambda work: run(args.rows, args.repeats, work))
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
