"""Steps over generated feature rows at scale: time per row and peak memory of train-head, the trust fit, audit and
predict from features, each size and step in a fresh process.

    python -m bench.scale --rows 200000,2000000      # writes bench/results/scale_rows.json

No images and no backbone: a features.h5 of N rows (512-d, 10 Gaussian classes, 80/10/10 train/val/test, written
class by class as extract writes class folders) is written directly through the real writer, as from a randomly
initialised backbone (`--weights none`; the ImageNet weights are not used). A step that fails or runs past
--step-timeout is left out of the figures and named on stderr.
"""

from __future__ import annotations

import hashlib
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from headstart.features.files.cachedir import FEATURES_FILE, HEAD_FILE

STEPS = ("train-head", "trust", "audit", "predict")
WIDTH, CLASSES, WRITE_ROWS = 512, 10, 65536


def generated_header(producer: str, classes: int):
    """The header of a generated features file: as from a random-init resnet18, classes named class0, class1, ..."""
    from headstart.features.provenance import PREPROCESSINGS, WeightsIdentity
    from headstart.features.store import FeaturesHeader

    return FeaturesHeader(
        producer=producer,
        created="2026-01-01T00:00:00+00:00",
        classes=[f"class{label}" for label in range(classes)],
        backbone="resnet18",
        weights=WeightsIdentity("none", "random init, seed 0", ""),
        preprocessing=PREPROCESSINGS["imagenet"],
        precision="fp32",
        data_root="/generated",
        torch_version="generated",
        torchvision_version="generated",
    )


def generate(cache: Path, rows: int, seed: int = 0) -> None:
    """cache/features.h5 of `rows` generated rows, written a block at a time (never all in memory)."""
    from headstart.features.store import Rows, StoreWriter

    header = generated_header("headstart bench.scale --rows", CLASSES)
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((CLASSES, WIDTH)).astype(np.float32) * 0.5
    cache.mkdir(parents=True, exist_ok=True)
    with StoreWriter(cache / FEATURES_FILE, header, dim=WIDTH) as writer:
        for split, share in (("train", 0.8), ("val", 0.1), ("test", 0.1)):
            count = int(rows * share)
            writer.begin_split(split)
            for start in range(0, count, WRITE_ROWS):
                n = min(WRITE_ROWS, count - start)
                labels = (np.arange(start, start + n) * CLASSES // count).astype(np.int64)  # class by class
                features = centres[labels] + rng.standard_normal((n, WIDTH), dtype=np.float32)
                paths = [f"{split}/{row}.jpg" for row in range(start, start + n)]
                ones = np.ones(n, np.int64)
                # distinct, spread like real content hashes (audit groups rows by their first bytes): no exact copies
                digests = [hashlib.sha256(f"{split}/{row}".encode()).hexdigest() for row in range(start, start + n)]
                writer.append(Rows(features, labels, paths, ones, ones.copy(), digests))
            writer.end_split([])
        writer.commit()


def _step(name: str, cache: Path) -> None:
    """Run one step on the cache in this process."""
    if name == "train-head":
        from headstart.heads import TrainConfig, fit_head

        fit_head(cache, TrainConfig())
    elif name == "trust":
        _trust(cache)
    elif name == "audit":
        from headstart.heads.audit.config import AuditConfig
        from headstart.heads.audit.run import audit_cache

        audit_cache(AuditConfig(cache=cache))
    else:
        _predict(cache)


def _trust(cache: Path) -> None:
    """The trust fit alone, for the head train-head saved, the way train-head chooses for this cache's size."""
    import torch

    from headstart.features.chunks import reading_plan
    from headstart.features.store import FeatureStore
    from headstart.heads.checkpoint import load_head
    from headstart.heads.config import TrainConfig
    from headstart.heads.trust.config import TrustConfig
    from headstart.heads.trust.fit import fit_trust
    from headstart.heads.trust.streamed import fit_trust_streamed

    head = load_head(cache / HEAD_FILE).head
    with FeatureStore(cache / FEATURES_FILE) as store:
        plan = reading_plan(store)
        if plan.streamed:
            fit_trust_streamed(head, store, plan, TrainConfig(), TrustConfig())
            return
        train, val = (store.read(split) for split in ("train", "val"))
    tensors = [(torch.from_numpy(rows.features), torch.from_numpy(rows.labels)) for rows in (train, val)]
    fit_trust(head, tensors[0], tensors[1], TrainConfig(), TrustConfig())


def _predict(cache: Path) -> None:
    """Predictions from the cached test and val features, a chunk at a time, streamed into a CSV (the one writer)."""
    import torch

    from headstart.features.chunks import iter_chunks, reading_plan
    from headstart.features.files.csvfile import CsvWriter
    from headstart.features.store import FeatureStore
    from headstart.heads.checkpoint import load_head

    checkpoint = load_head(cache / HEAD_FILE)
    with FeatureStore(cache / FEATURES_FILE) as store, open(cache / "predictions.csv", "w", newline="") as out:
        plan, writer = reading_plan(store), CsvWriter(out, ["split", "row", "label", "confidence"])
        for split in ("val", "test"):
            for start, features, _ in iter_chunks(store, split, plan.chunk_rows):
                with torch.inference_mode():
                    top, predicted = torch.softmax(checkpoint.head(torch.from_numpy(features)), 1).max(1)
                for offset, (label, confidence) in enumerate(zip(predicted.tolist(), top.tolist())):
                    writer.writerow([split, start + offset, checkpoint.classes[label], f"{confidence:.6f}"])


def _child(argv: list[str]) -> None:
    """`--child generate|STEP CACHE [ROWS]`: one thing, then its wall and CPU seconds and peak RSS as JSON on
    stdout."""
    what, cache = argv[0], Path(argv[1])
    started, begun = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    cpu_started = begun.ru_utime + begun.ru_stime
    generate(cache, int(argv[2])) if what == "generate" else _step(what, cache)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime - cpu_started  # less sensitive than wall time to a busy machine
    peak = usage.ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"seconds": time.perf_counter() - started, "cpu_seconds": cpu, "peak_rss_mib": peak}))


def _fresh(args: list[str], timeout: float) -> dict | None:
    command = [sys.executable, "-m", "bench.scale_rows", "--child", *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        print(f"{args[0]} at {args[1]}: past {timeout:.0f} s, left out", file=sys.stderr)
        return None
    if done.returncode != 0:
        print(f"{args[0]} at {args[1]}: failed: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def _generated(cache: Path, rows: int, timeout: float) -> bool:
    """Generate the cache of `rows` rows unless a --keep folder already holds it (its marker written last)."""
    marker = cache / "generated.json"
    expected = {"rows": rows, "width": WIDTH, "classes": CLASSES, "seed": 0, "hashes": "sha256 of split/row"}
    if marker.is_file() and json.loads(marker.read_text()) == expected:
        return True
    shutil.rmtree(cache, ignore_errors=True)
    if _fresh(["generate", str(cache), str(rows)], timeout) is None:
        return False
    cache.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(expected))
    return True


def run(sizes: list[int], work: Path, timeout: float, steps: tuple[str, ...] = STEPS, keep: Path | None = None) -> dict:
    """Every size: generate its cache, then each step in a fresh process; the cache removed before the next size,
    unless `keep` names a folder to keep the caches in (and reuse them from) between runs."""
    figures: dict = {"rows": sizes, "steps": {step: [] for step in steps}}
    for rows in sizes:
        cache = (keep or work) / f"rows-{rows}"
        if not _generated(cache, rows, timeout):
            continue
        for step in steps:
            measured = _fresh([step, str(cache)], timeout)
            if measured is not None:
                figures["steps"][step].append({"rows": rows, **measured})
            print(json.dumps({"rows": rows, "step": step, "measured": measured}), file=sys.stderr, flush=True)
        if keep is None:
            shutil.rmtree(cache, ignore_errors=True)  # the disk holds one size's cache at a time
    return figures


if __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
    _child(sys.argv[2:])
