"""Every registered torchvision backbone at random init (`--weights none`): its forward pass, headstart's (folded, fp32
and bf16) and onnxruntime's CPU session on the same network, against the builder's own eager fp32 forward at the same
batch size, in interleaved rounds; cold extracts fp32 (torch and --runtime onnxruntime) and bf16; the feature width
and the features file's size.

    python -m bench.backbones [--backbones resnet18,resnet50] [--images 48] [--threads 2] [--frozen] [--no-onnx]
                              [--extract-rounds 3]                 # writes bench/results/backbones.json

The images are read where they are (../shared/data/hymenoptera_data, never copied): a label table in the scratch
folder names --images of them, spread evenly over train and val. The ImageNet weights are not available here:
random-init features have the pretrained ones' cost, not their use.

The forward figures are on the first --batch-size (default: extract's fp32 batch on a CPU) of those images, decoded
and preprocessed as extract does: every engine runs the same batch, one engine after another in each of --rounds
rounds of --repeats passes, so that the load of a shared machine drifts over all of them alike; a figure is the
median of its rounds' medians. The eager ceiling is the builder's network as bench/forward.py runs ResNet18's
(eval, BatchNorm unfolded, channels_last). Each engine's features are compared with it (max |difference| over the
features' scale). torch and onnxruntime run --threads intra-op threads each (onnxruntime's default would be one per
core, whatever torch uses); onnxruntime's session is the one extract --runtime onnxruntime builds
(features/runtime.py), and `onnx_build_s` what building it took (export, session, the first batch's check).
--frozen adds the folded network through torch.jit.freeze and optimize_for_inference (oneDNN's fused convolutions),
a candidate measured, not used by extract. bf16 is measured where the CPU has bf16
instructions (prepacked.py's check), and reported as not measurable elsewhere.

The cold extracts (the network's build included: for onnxruntime, its export) of the --images take turns in each of
--extract-rounds rounds, fp32, fp32 through onnxruntime, bf16; a figure is their median over the rounds, its images
per second over the eager ceiling's, and onnxruntime's over the torch fp32 extract's.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bench import measure_and_save
from bench.forward import Forward
from headstart.features import ExtractConfig, extract_features, find_dataset
from headstart.features.backbone import load_backbone
from headstart.features.backbones.registry import ENTRIES
from headstart.features.engines.batches import load_image
from headstart.features.engines.local import default_batch_size
from headstart.features.files.cachedir import features_file
from headstart.features.images import build_transform
from headstart.features.prepacked import prepacking_available
from headstart.features.provenance import RANDOM_INIT_SEED
from headstart.features.runtime import ONNXRUNTIME, OnnxForward
from headstart.features.store import FeatureStore

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "hymenoptera_data"
CPU = torch.device("cpu")
NO_BF16 = "not measurable: this CPU has no bf16 instructions"


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


def timed_extract(config: ExtractConfig, prefix: str = "") -> dict:
    """A cold extract's images per second (the network's build included), and the file it wrote."""
    started = time.perf_counter()
    summary = extract_features(config)
    seconds = time.perf_counter() - started
    images = sum(split.extracted for split in summary.splits)
    with FeatureStore(summary.path) as store:
        rows = sum(store.count(split) for split in store.labelled_splits)
        width = int(store.read("train").features.shape[1])
    size = summary.path.stat().st_size
    summary.path.unlink()
    figures = {"width": width, "file_mib": size / 2**20, "file_mib_per_1000_rows": size / rows * 1000 / 2**20}
    figures["features_mib_per_1000_rows"] = width * 4 * 1000 / 2**20  # float32 features alone
    return {
        f"{prefix}extract_img_s": images / seconds,
        f"{prefix}extract_s": seconds,
        **(figures if not prefix else {}),
    }


def decoded_batch(data: Path, table: Path, name: str, batch: int) -> torch.Tensor:
    """The table's first `batch` images (repeated if it names fewer), decoded and preprocessed as extract does."""
    preprocessing = ENTRIES[name].preprocessing
    transform = build_transform(preprocessing)
    paths = [data / line.split(",")[0] for line in table.read_text(encoding="utf-8").splitlines()[1:]]
    paths = (paths * (batch // len(paths) + 1))[:batch]
    return torch.stack([load_image(path, transform, preprocessing.draft_size)[0] for path in paths])


def eager_network(name: str) -> nn.Module:
    """The builder's network as --weights none builds it, eval, its final Linear an Identity, BatchNorm unfolded."""
    from torchvision.models import get_model

    entry = ENTRIES[name]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_INIT_SEED)
        model = get_model(name, weights=None)
    parent, _, leaf = entry.head.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, nn.Identity())
    return model.eval().to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # stubs lack it


def onnx_forward(model: nn.Module, batch: torch.Tensor, threads: int) -> Forward:
    """onnxruntime's CPU session on the folded network as extract --runtime onnxruntime builds it (features/runtime.py:
    exported in memory at opset 18 with a dynamic batch, `threads` intra-op threads, its first batch checked against
    torch's), built here on the measured batch."""
    forward = OnnxForward(model, threads)
    forward(batch)
    return forward


def frozen_network(model: nn.Module, example: torch.Tensor) -> torch.jit.ScriptModule:
    """The folded network traced, frozen and optimised for inference (oneDNN convolutions fused with their ReLU)."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(copy.deepcopy(model), example.contiguous(memory_format=torch.channels_last))
        return torch.jit.optimize_for_inference(torch.jit.freeze(traced))


def _timed(build):
    started = time.perf_counter()
    built = build()
    return built, time.perf_counter() - started


def engines(name: str, batch: torch.Tensor, options: argparse.Namespace, work: Path) -> tuple[dict, dict]:
    """name's forward passes to measure, and what building each cost (or why it could not be built)."""
    eager = eager_network(name)
    ours = load_backbone("none", CPU, backbone=name)
    ours.build()
    forwards: dict[str, Forward] = {
        "eager": lambda x: eager(x.contiguous(memory_format=torch.channels_last)),
        "headstart": ours.features,
    }
    built: dict = {}
    if options.bf16:
        forwards["headstart_bf16"] = load_backbone("none", CPU, "bf16", backbone=name).features
    if options.onnx:
        try:
            forwards["onnxruntime"], built["onnx_build_s"] = _timed(
                lambda: onnx_forward(ours.model, batch, torch.get_num_threads())
            )
        except Exception as error:  # a peer that cannot export this network is reported, not fatal
            built["onnxruntime_error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
    if options.frozen:
        frozen, built["frozen_build_s"] = _timed(lambda: frozen_network(ours.model, batch))
        forwards["frozen"] = lambda x: frozen(x.contiguous(memory_format=torch.channels_last))
    return forwards, built


def interleaved(forwards: dict[str, Forward], batch: torch.Tensor, rounds: int, repeats: int) -> dict[str, float]:
    """Images per second of each (already warmed-up) forward: the median over rounds of each round's median pass,
    the engines taking turns within every round."""
    rates: dict[str, list[float]] = {name: [] for name in forwards}
    for _ in range(rounds):
        for name, forward in forwards.items():
            seconds = []
            for _ in range(repeats):
                started = time.perf_counter()
                forward(batch)
                seconds.append(time.perf_counter() - started)
            rates[name].append(len(batch) / float(np.median(seconds)))
    return {name: float(np.median(values)) for name, values in rates.items()}


def forward_figures(name: str, batch: torch.Tensor, options: argparse.Namespace, work: Path) -> dict:
    """Each engine's images per second (interleaved rounds), its ratio to the eager ceiling, and how far its
    features are from the eager forward's."""
    forwards, figures = engines(name, batch, options, work)
    with torch.inference_mode():  # the comparison is each engine's warm-up pass
        reference = forwards["eager"](batch).float()
        scale = max(1.0, float(reference.abs().max()))  # random-init ResNets grow their activations to 1e4
        for engine, forward in forwards.items():
            if engine != "eager":
                figures[f"{engine}_max_diff"] = float((forward(batch).float() - reference).abs().max()) / scale
        rates = interleaved(forwards, batch, options.rounds, options.repeats)
    for engine, rate in rates.items():
        figures[f"{engine}_img_s"] = rate
        if engine != "eager":
            figures[f"{engine}_vs_eager"] = rate / rates["eager"]
    if "onnxruntime" in rates:
        figures["onnxruntime_vs_headstart"] = rates["onnxruntime"] / rates["headstart"]
    figures["headstart_gflop_s"] = rates["headstart"] * ENTRIES[name].gflops
    return figures


def extract_figures(name: str, options: argparse.Namespace, table: Path, work: Path, onnx: bool) -> dict:
    """Cold extracts of the table, fp32 (torch), fp32 through onnxruntime (where measured) and bf16 (where measurable),
    taking turns in each of --extract-rounds rounds; each figure the median over the rounds."""
    runs = {"": ("fp32", "torch")}
    if onnx:
        runs["onnxruntime_"] = ("fp32", ONNXRUNTIME)
    if options.bf16:
        runs["bf16_"] = ("bf16", "torch")
    rounds: dict[str, list[dict]] = {prefix: [] for prefix in runs}
    for _ in range(options.extract_rounds):
        for prefix, (precision, runtime) in runs.items():
            config = ExtractConfig(
                data=options.data, labels=table, cache=work / "cache", backbone=name, weights="none", device="cpu",
                precision=precision, runtime=runtime,
            )  # fmt: skip
            rounds[prefix].append(timed_extract(config, prefix))
    return {key: float(np.median([run[key] for run in done])) for done in rounds.values() for key in done[0]}


def measure_entry(name: str, options: argparse.Namespace, table: Path, work: Path) -> dict:
    """One backbone: its forward figures and cold extracts (fp32, through onnxruntime, bf16)."""
    batch_size = options.batch_size or default_batch_size(CPU)
    measured: dict = {"backbone": name, "batch_size": batch_size, "gflops": ENTRIES[name].gflops}
    measured["load_before"] = _load()
    batch = decoded_batch(options.data, table, name, batch_size)
    measured |= forward_figures(name, batch, options, work)
    onnx = options.onnx and "onnxruntime_error" not in measured  # a network onnxruntime could not run
    measured |= extract_figures(name, options, table, work, onnx)
    for prefix in ("", "onnxruntime_", "bf16_"):
        if f"{prefix}extract_img_s" in measured:
            measured[f"{prefix}extract_vs_eager"] = measured[f"{prefix}extract_img_s"] / measured["eager_img_s"]
    if "onnxruntime_extract_img_s" in measured:
        measured["onnxruntime_extract_vs_extract"] = measured["onnxruntime_extract_img_s"] / measured["extract_img_s"]
    measured["load_after"] = _load()
    assert not (work / "cache" / features_file(name)).exists()
    return measured


def _load() -> float:
    """The one-minute load average: how shared the machine was."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def run(names: list[str], options: argparse.Namespace, work: Path) -> dict:
    if options.threads:
        torch.set_num_threads(options.threads)
    table = work / "labels.csv"
    count = write_table(options.data, table, options.images)
    figures: dict = {
        "images": count,
        "data": str(options.data),
        "weights": "none (random init)",
        "threads": torch.get_num_threads(),
        "rounds": options.rounds,
        "repeats": options.repeats,
        "extract_rounds": options.extract_rounds,
        "bf16": options.bf16_note,
    }
    figures["records"] = [measure_entry(name, options, table, work) for name in names]
    return figures


def parse_options(argv: list[str] | None = None) -> tuple[list[str], argparse.Namespace]:
    """The backbones named and the options, onnx and bf16 set to whether they are measured here."""
    parser = argparse.ArgumentParser(prog="python -m bench.backbones", description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", default=",".join(ENTRIES), help="comma-separated names (a subset for speed)")
    parser.add_argument("--images", type=int, default=16, help="hymenoptera images extracted per backbone")
    parser.add_argument("--batch-size", type=int, default=None, help="forward batch (default: extract's on a CPU)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of every engine")
    parser.add_argument("--repeats", type=int, default=1, help="timed passes per engine per round")
    parser.add_argument("--extract-rounds", type=int, default=1, help="rounds of the cold extracts, taking turns")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads of torch and onnxruntime (0: torch's)")
    parser.add_argument("--frozen", action="store_true", help="also measure torch.jit.freeze + optimize_for_inference")
    parser.add_argument("--no-onnx", action="store_true", help="skip onnxruntime even where it is installed")
    parser.add_argument("--no-bf16", action="store_true", help="skip bf16 even where the CPU has it")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "backbones.json")
    options = parser.parse_args(argv)
    names = [name for name in options.backbones.split(",") if name]
    unknown = [name for name in names if name not in ENTRIES]
    if unknown:
        parser.error(f"unknown backbone(s) {unknown}: choose from {', '.join(ENTRIES)}")
    options.onnx = not options.no_onnx and _installed("onnxruntime")
    options.bf16 = not options.no_bf16 and prepacking_available()
    options.bf16_note = "measured" if options.bf16 else "skipped (--no-bf16)" if options.no_bf16 else NO_BF16
    return names, options


def main(argv: list[str] | None = None) -> None:
    names, options = parse_options(argv)
    figures = measure_and_save("headstart-backbones-", options.out, lambda work: run(names, options, work))
    print(json.dumps(figures, indent=2))


def _installed(module: str) -> bool:
    from importlib.util import find_spec

    return find_spec(module) is not None


if __name__ == "__main__":
    main()
