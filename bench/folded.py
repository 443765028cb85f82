"""headstart's folded fp32 forward against the builder's eager one, per backbone and batch size, over many interleaved
rounds: the spread of the ratio between rounds, and where the time goes (torch.profiler's per-operator table).

    python -m bench.folded [--backbones resnet34,wide_resnet50_2] [--batches 8,32] [--rounds 7] [--threads 2]
                                                                   # writes bench/results/folded.json

Random init (`--weights none`: the ImageNet weights are not available here), on real images decoded as extract
does (bench/backbones.py's batch). The engines take turns within every round:

- eager: the builder's network, eval, BatchNorm unfolded, channels_last (the eager ceiling of bench/backbones.py);
- folded: `Backbone.features`, what extract runs (BatchNorm folded, channels_last);
- folded_contiguous: the same folded network in torch's default contiguous layout;
- eager_contiguous: the builder's network in the contiguous layout.

Each round's ratio is folded's images per second over eager's in that round (the two measured back to back), so a
drift of the machine's load moves both; the figures are the median ratio and its range over the rounds.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch

from bench import measure_and_save
from bench.backbones import CPU, DATA, ROOT, decoded_batch, eager_network, write_table
from bench.forward import Forward
from headstart.features.backbone import load_backbone
from headstart.features.backbones.registry import ENTRIES

CONTIGUOUS = torch.contiguous_format


def forwards(name: str) -> dict[str, Forward]:
    """The four forward passes compared, each under inference_mode."""
    eager = eager_network(name)
    ours = load_backbone("none", CPU, backbone=name)
    folded_contiguous = copy.deepcopy(ours.build()).to(memory_format=CONTIGUOUS)  # type: ignore[call-overload]
    eager_contiguous = copy.deepcopy(eager).to(memory_format=CONTIGUOUS)  # type: ignore[call-overload]

    def run(model: torch.nn.Module, layout: torch.memory_format) -> Forward:
        def forward(batch: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():
                return model(batch.contiguous(memory_format=layout))

        return forward

    return {
        "eager": run(eager, torch.channels_last),
        "folded": ours.features,
        "folded_contiguous": run(folded_contiguous, CONTIGUOUS),
        "eager_contiguous": run(eager_contiguous, CONTIGUOUS),
    }


def rounds(passes: dict[str, Forward], batch: torch.Tensor, count: int) -> dict[str, list[float]]:
    """Images per second of each pass in each of count rounds (one timed pass each, after a warm-up pass)."""
    for forward in passes.values():
        forward(batch)
    rates: dict[str, list[float]] = {name: [] for name in passes}
    for _ in range(count):
        for name, forward in passes.items():
            started = time.perf_counter()
            forward(batch)
            rates[name].append(len(batch) / (time.perf_counter() - started))
    return rates


def profile(forward: Forward, batch: torch.Tensor, top: int = 6) -> dict[str, float]:
    """Milliseconds of self CPU time per operator over one pass, the top operators."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as profiler

    with profiler(activities=[ProfilerActivity.CPU]) as prof:
        forward(batch)
    events = sorted(prof.key_averages(), key=lambda event: -event.self_cpu_time_total)[:top]
    return {event.key: event.self_cpu_time_total / 1000 for event in events}


def measure(name: str, batch_size: int, options: argparse.Namespace, table: Path) -> dict:
    """One backbone at one batch size: every pass's rates, the per-round ratios to eager, a profile of two."""
    batch = decoded_batch(options.data, table, name, batch_size)
    passes = forwards(name)
    rates = rounds(passes, batch, options.rounds)
    load = float(Path("/proc/loadavg").read_text().split()[0])
    figures: dict = {"backbone": name, "batch_size": batch_size, "load_after": load}
    for engine, values in rates.items():
        figures[f"{engine}_img_s"] = float(np.median(values))
        if engine != "eager":
            ratios = np.array(values) / np.array(rates["eager"])
            figures[f"{engine}_vs_eager"] = float(np.median(ratios))
            figures[f"{engine}_vs_eager_range"] = [float(ratios.min()), float(ratios.max())]
    eager_spread = np.array(rates["eager"])
    figures["eager_round_spread"] = float((eager_spread.max() - eager_spread.min()) / np.median(eager_spread))
    if options.profile:
        figures["profile_ms"] = {engine: profile(passes[engine], batch) for engine in ("eager", "folded")}
    return figures


def run(names: list[str], options: argparse.Namespace, work: Path) -> dict:
    if options.threads:
        torch.set_num_threads(options.threads)
    table = work / "labels.csv"
    write_table(options.data, table, max(options.batches))
    records = [measure(name, size, options, table) for name in names for size in options.batches]
    return {"weights": "none (random init)", "threads": torch.get_num_threads(), "rounds": options.rounds,
            "records": records}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.folded", description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", default="resnet34,wide_resnet50_2", help="comma-separated registry names")
    parser.add_argument("--batches", default="8,32", help="comma-separated batch sizes")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds of every pass")
    parser.add_argument("--threads", type=int, default=0, help="torch's intra-op threads (0: torch's own)")
    parser.add_argument("--no-profile", dest="profile", action="store_false", help="skip the per-operator tables")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "folded.json")
    options = parser.parse_args(argv)
    names = [name for name in options.backbones.split(",") if name]
    unknown = [name for name in names if name not in ENTRIES]
    if unknown:
        parser.error(f"unknown backbone(s) {unknown}: choose from {', '.join(ENTRIES)}")
    options.batches = [int(size) for size in options.batches.split(",")]
    figures = measure_and_save("headstart-folded-", options.out, lambda work: run(names, options, work))
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
