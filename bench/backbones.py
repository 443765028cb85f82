"""Every registered torchvision backbone at random init (`--weights none`): extract throughput on the hymenoptera
images at extract's own batch size, the feature width, the features file's size per 1,000 rows; and, where
onnxruntime is installed, its CPU session on the same folded network and batches as a peer of headstart's forward.

    python -m bench.backbones [--backbones resnet18,resnet50] [--images 397] [--no-onnx]
                                                                   # writes bench/results/backbones.json

The images are read where they are (../shared/data/hymenoptera_data, never copied): a label table in the scratch
folder names --images of them, spread evenly over train and val. The ImageNet weights are not available here:
random-init features have the pretrained ones' cost, not their use. A cold extract is timed whole (the network's
build included) and from its second decoding group on; the forward figures are the median of --repeats batches of
random input at the entry's crop size, after one warm-up batch.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from bench import measure_and_save
from headstart.features import ExtractConfig, extract_features, find_dataset
from headstart.features.backbone import load_backbone
from headstart.features.backbones.registry import ENTRIES
from headstart.features.engines.local import default_batch_size
from headstart.features.files.cachedir import features_file
from headstart.features.store import FeatureStore

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "hymenoptera_data"
CPU = torch.device("cpu")


def write_table(data: Path, out: Path, images: int) -> int:
    """A label table naming `images` of data's train and val files, spread evenly over them, relative to data."""
    dataset = find_dataset(data)
    rows = [
        (entry.path.relative_to(data), dataset.classes[entry.label], split)
        for split, entries in dataset.splits.items()
        for entry in entries
    ]
    if images < len(rows):
        rows = [rows[int(index)] for index in np.linspace(0, len(rows) - 1, images)]
    with open(out, "w", encoding="utf-8", newline="") as table:
        table.write("path,label,split\n")
        table.writelines(f"{path.as_posix()},{label},{split}\n" for path, label, split in rows)
    return len(rows)


def timed_extract(config: ExtractConfig) -> dict:
    """A cold extract's images per second from its first batch on, its whole time, and the file it wrote."""
    marks: list[tuple[float, int]] = []
    started = time.perf_counter()
    summary = extract_features(config, on_progress=lambda done, total: marks.append((time.perf_counter(), done)))
    ended = time.perf_counter()
    (first_at, first_done), images = marks[0], sum(split.extracted for split in summary.splits)
    with FeatureStore(summary.path) as store:
        rows = sum(store.count(split) for split in store.labelled_splits)
        width = store.read("train").features.shape[1]
    size = summary.path.stat().st_size
    return {
        "images": images,
        "extract_s": ended - started,
        "extract_img_s": images / (ended - started),  # the network's build included
        # None when one decoding group held every image (too few --images to see a second)
        "extract_img_s_after_first_group": (images - first_done) / (ended - first_at) if images > first_done else None,
        "width": int(width),
        "file_mib": size / 2**20,
        "file_mib_per_1000_rows": size / rows * 1000 / 2**20,  # at this many rows: the file's fixed part included
        "features_mib_per_1000_rows": int(width) * 4 * 1000 / 2**20,  # float32 features alone
    }


def _median_img_s(step, batch: int, repeats: int) -> float:
    step()  # warm-up: first-call allocations, oneDNN's kernel choice
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - started)
    return batch / float(np.median(seconds))


def onnx_session(model: torch.nn.Module, example: torch.Tensor, path: Path):
    """onnxruntime's CPU session on the folded network, exported as headstart's export does (opset 18)."""
    import onnxruntime

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model, (example,), input_names=["images"], opset_version=18, dynamo=True, external_data=False
        )
    assert program is not None
    program.save(str(path))
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def forward_figures(name: str, batch: int, repeats: int, onnx: bool, work: Path) -> dict:
    """headstart's forward (folded, fp32) and, with onnx, onnxruntime's on the same batch: images per second."""
    backbone = load_backbone("none", CPU, backbone=name)
    crop = ENTRIES[name].crop
    example = torch.rand(batch, 3, crop, crop, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        figures: dict = {"forward_img_s": _median_img_s(lambda: backbone.features(example), batch, repeats)}
    if onnx:
        try:
            session = onnx_session(backbone.model, example, work / f"{name}.onnx")
            inputs = {"images": example.numpy()}
            figures["onnxruntime_img_s"] = _median_img_s(lambda: session.run(None, inputs), batch, repeats)
            figures["onnxruntime_vs_headstart"] = figures["onnxruntime_img_s"] / figures["forward_img_s"]
        except Exception as error:  # a peer that cannot export this network is reported, not fatal
            figures["onnxruntime_error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
    return figures


def run(names: list[str], images: int, repeats: int, onnx: bool, work: Path, data: Path = DATA) -> dict:
    table = work / "labels.csv"
    count = write_table(data, table, images)
    figures: dict = {"images": count, "data": str(data), "weights": "none (random init)", "backbones": {}}
    for name in names:
        config = ExtractConfig(
            data=data, labels=table, cache=work / "cache", backbone=name, weights="none", device="cpu"
        )
        batch = config.batch_size or default_batch_size(CPU)  # what extract uses on this machine's CPU
        measured = {"batch_size": batch, "gflops": ENTRIES[name].gflops, **timed_extract(config)}
        measured |= forward_figures(name, batch, repeats, onnx, work)
        (work / "cache" / features_file(name)).unlink()
        figures["backbones"][name] = measured
    figures["records"] = [{"backbone": name, **row} for name, row in figures.pop("backbones").items()]
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.backbones", description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", default=",".join(ENTRIES), help="comma-separated names (a subset for speed)")
    parser.add_argument("--images", type=int, default=397, help="hymenoptera images extracted per backbone")
    parser.add_argument("--repeats", type=int, default=3, help="timed forward batches per backbone")
    parser.add_argument("--no-onnx", action="store_true", help="skip onnxruntime even where it is installed")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "backbones.json")
    args = parser.parse_args(argv)
    names = [name for name in args.backbones.split(",") if name]
    unknown = [name for name in names if name not in ENTRIES]
    if unknown:
        parser.error(f"unknown backbone(s) {unknown}: choose from {', '.join(ENTRIES)}")
    onnx = not args.no_onnx and _installed("onnxruntime")
    figures = measure_and_save(
        "headstart-backbones-", args.out, lambda work: run(names, args.images, args.repeats, onnx, work, args.data)
    )
    print(json.dumps(figures, indent=2))


def _installed(module: str) -> bool:
    from importlib.util import find_spec

    return find_spec(module) is not None


if __name__ == "__main__":
    main()
