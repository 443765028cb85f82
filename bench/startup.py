"""Whole-process times of the quick commands (train-head, a warm extract, info) against a process that only imports
torch, run side by side so both see the same machine load.

    python -m bench.startup [--data DIR] [--repeats 3]      # writes bench/results/startup.json
"""

from __future__ import annotations

import argparse
import compileall
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = ROOT.parent / "shared" / "data" / "hymenoptera_data"


def process_seconds(*args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - started


def compile_bytecode() -> None:
    """Write headstart's .pyc files first, as any run after a user's first does: where PYTHONDONTWRITEBYTECODE is set
    (this workplace sets it) every process would otherwise compile the project's sources again, while torch's come
    compiled from its wheel."""
    compileall.compile_file(str(ROOT / "cli.py"), quiet=2)
    for package in ("features", "heads"):
        compileall.compile_dir(str(ROOT / package), quiet=2)


def run(data: Path, cache: Path, weights: str = "none", repeats: int = 3) -> dict:
    """Median seconds of each command and of `import torch`, alternating so load drifts hit both; cache must hold
    the extract of data already (the warm extract then has nothing to compute)."""
    compile_bytecode()
    commands = {
        "import_torch": ["-c", "import torch"],
        "train_head": ["cli.py", "train-head", "--cache", str(cache), "-q"],
        "extract_warm": ["cli.py", "extract", "--data", str(data), "--cache", str(cache), "--weights", weights, "-q"],
        "info": ["cli.py", "info", "--cache", str(cache), "-q"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeats):
        for name, args in commands.items():
            times[name].append(process_seconds(*args))
    medians = {f"{name}_process_s": float(np.median(seconds)) for name, seconds in times.items()}
    torch_s = medians["import_torch_process_s"]
    return medians | {
        f"{name}_minus_import_torch_s": medians[f"{name}_process_s"] - torch_s
        for name in commands
        if name != "import_torch"
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REAL_DATA)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "startup.json")
    args = parser.parse_args(argv)
    cache = Path(tempfile.mkdtemp(prefix="headstart-startup-"))
    try:
        subprocess.run(
            [
                sys.executable,
                "cli.py",
                "extract",
                "--data",
                str(args.data),
                "--cache",
                str(cache),
                "--weights",
                "none",
                "-q",
            ],
            cwd=ROOT,
            check=True,
        )
        subprocess.run([sys.executable, "cli.py", "train-head", "--cache", str(cache), "-q"], cwd=ROOT, check=True)
        figures = run(args.data, cache, repeats=args.repeats)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    for name, value in figures.items():
        print(f"{name:<40} {value:.3f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
