"""Extract as a user times it: whole processes timed from outside on 1,588 images (the dataset four times, each
copy mirrored or re-encoded), a forward-only fp32 script against `cli.py extract` fp32 and `--precision bf16`,
interleaved rounds, medians. `python -m bench.decode --whole-process` runs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from headstart.features import find_dataset

ROOT = Path(__file__).resolve().parents[1]
# The eager ceiling as a script: torchvision's resnet18 (random init), fp32, batches of 32 random inputs.
FORWARD_ONLY = """
import sys, torch, torchvision
model = torchvision.models.resnet18(weights=None).eval().to(memory_format=torch.channels_last)
model.fc = torch.nn.Identity()
left = int(sys.argv[1])
with torch.inference_mode():
    while left > 0:
        model(torch.randn(min(32, left), 3, 224, 224).to(memory_format=torch.channels_last))
        left -= 32
"""


def copies(data: Path, folder: Path) -> int:
    """The dataset four times under folder: as it is, mirrored, re-encoded (quality 85), mirrored and re-encoded."""
    count = 0
    for split, entries in find_dataset(data).splits.items():
        for entry in entries:
            source = Path(entry.path)
            target = folder / split / source.parent.name
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target / f"0-{source.name}")
            with Image.open(source) as opened:
                image = opened.convert("RGB")
            ImageOps.mirror(image).save(target / f"1-{source.stem}.jpg", quality=90)
            image.save(target / f"2-{source.stem}.jpg", quality=85)
            ImageOps.mirror(image).save(target / f"3-{source.stem}.jpg", quality=75)
            count += 4
    return count


def _timed(command: list[str]) -> float:
    """Wall seconds of one process, from outside."""
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def run(data: Path, rounds: int = 3) -> dict:
    """Seconds of each process per round, medians, and extract's speed as a multiple of the forward-only script's."""
    work = Path(tempfile.mkdtemp(prefix="headstart-whole-"))
    try:
        images = copies(data, work / "data")
        script = work / "forward_only.py"
        script.write_text(FORWARD_ONLY, encoding="utf-8")
        extract = [sys.executable, "cli.py", "extract", "--data", str(work / "data"), "--weights", "none"]
        extract += ["--device", "cpu"]
        commands = {
            "forward_only_fp32": [sys.executable, str(script), str(images)],
            "extract_fp32": extract,
            "extract_bf16": [*extract, "--precision", "bf16"],
        }
        seconds: dict[str, list[float]] = {name: [] for name in commands}
        loads = [list(os.getloadavg())]
        for round_ in range(rounds):
            for name, command in commands.items():
                cache = ["--cache", str(work / f"cache-{name}-{round_}")] if name != "forward_only_fp32" else []
                seconds[name].append(_timed(command + cache))
            loads.append(list(os.getloadavg()))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    medians = {name: float(np.median(values)) for name, values in seconds.items()}
    return {
        "images": images,
        "rounds": rounds,
        "seconds": seconds,
        "median_s": medians,
        "extract_fp32_vs_forward_only": medians["forward_only_fp32"] / medians["extract_fp32"],
        "extract_bf16_vs_forward_only": medians["forward_only_fp32"] / medians["extract_bf16"],
        "load_average_per_round": loads,
        "cores": os.cpu_count(),
    }
