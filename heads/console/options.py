"""The CLI's shared click options and the checks between them, so each command in cli.py lists only its own."""

from __future__ import annotations

from pathlib import Path

import click

from features.config import ExtractConfig
from features.engines import ENGINES

from .reporter import Reporter

DEVICES = ["auto", "cpu", "cuda"]


def _quiet(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(Reporter).set_quiet()


quiet_option = click.option("--quiet", "-q", is_flag=True, expose_value=False, callback=_quiet,
                            help="Print errors only.")
cache_option = click.option("--cache", type=click.Path(file_okay=False, path_type=Path),
                            default=ExtractConfig().cache, show_default=True,
                            help="Folder holding features.h5, head.pt, metrics.json and curves.png.")
device_option = click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
                             help="Where the backbone runs; auto picks CUDA when available.")
workers_option = click.option("--workers", type=click.IntRange(0), default=None,
                              help="Image decoding processes  [default: one per core, at most 8]")
batch_option = click.option("--batch-size", type=click.IntRange(1), default=ExtractConfig().batch_size,
                            show_default=True, help="Images per backbone forward pass.")
engine_option = click.option(
    "--engine", type=click.Choice(ENGINES), default=ExtractConfig().engine, show_default=True,
    help="local: decoding workers and the backbone in this process; ray: a Ray Data pipeline on a Ray cluster, "
         "one backbone per actor, on GPUs where the cluster has them (pip install -e '.[ray]').")
address_option = click.option(
    "--address", envvar="RAY_ADDRESS", show_envvar=True, default=None,
    help="Ray cluster to join with --engine ray (HOST:PORT or auto)  [default: a local Ray for this run]")
compile_option = click.option(
    "--compile", "compile_backbone", is_flag=True, default=ExtractConfig().compile,
    help="torch.compile the backbone. Off by default: on a 2-core CPU its first compile took 20-50 s (4-9 s with "
         "torch's cache warm) and it ran no faster than the default folded network in fp32 (about 5% faster in "
         "bf16, paying back after some 14,000 images); try it on large folders and GPUs. If compiling fails, the "
         "folded network runs instead, with a warning.")
head_weights_option = click.option(
    "--weights", default=None,
    help="Backbone weights  [default: the weights the head records]; must match what the head was trained on.")


def head_run_options(command):
    """The options of the commands that run a trained head over images: predict and evaluate."""
    for option in (workers_option, batch_option, device_option, head_weights_option):
        command = option(command)
    return command


def refuse_address_without_ray(ctx: click.Context, engine: str) -> None:
    """A usage error: --address given on the command line joins a Ray cluster, which the local engine does not."""
    if engine == "local" and ctx.get_parameter_source("address") == click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError("--address joins a Ray cluster: use it with --engine ray")


def refuse_output_inside_inputs(out: Path, paths: tuple[Path, ...]) -> None:
    """A usage error: an output written inside the folders being read would be read back as an input."""
    target = out.resolve()
    for given in paths:
        source = given.resolve()
        if target == source or (source.is_dir() and target.is_relative_to(source)):
            raise click.UsageError(f"--out {out} is inside the input {given}: write it somewhere else")
