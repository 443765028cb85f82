"""The CLI's shared click options and the checks between them, so each command in cli.py lists only its own."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import click
from click.core import ParameterSource

from headstart.console.reporter import Reporter
from headstart.features.config import ExtractConfig
from headstart.features.engines import ENGINES
from headstart.features.runtime import RUNTIMES
from headstart.heads.config import CLASS_WEIGHTS, TrainConfig
from headstart.heads.multilabel.recipe import EPOCHS, LR, RECIPE_OPTIONS
from headstart.heads.predict.writer import FORMATS

DEVICES = ["auto", "cpu", "cuda"]
FLOAT32_MAX = 3.4028234663852886e38
SEED_MAX = 2**32 - 1  # what numpy's and scikit-learn's seeds take, as well as torch's


class FiniteFloatRange(click.FloatRange):
    """A FloatRange that also refuses nan and values float32 cannot hold (inf, 1e300): the head trains in float32."""

    name = "finite float range"

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not (math.isfinite(number) and abs(number) <= FLOAT32_MAX):
            self.fail(f"{value} is not a finite number a float32 can hold", param, ctx)
        return number


def _quiet(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(Reporter).set_quiet()


quiet_option = click.option(
    "--quiet", "-q", is_flag=True, expose_value=False, callback=_quiet, help="Print errors only."
)
cache_option = click.option(
    "--cache",
    type=click.Path(file_okay=False, path_type=Path),
    default=ExtractConfig().cache,
    show_default=True,
    help="Folder holding features.h5, head.pt, metrics.json and curves.png.",
)
device_option = click.option(
    "--device",
    type=click.Choice(DEVICES),
    default="auto",
    show_default=True,
    help="Where the backbone runs; auto picks CUDA when available.",
)
workers_option = click.option(
    "--workers",
    type=click.IntRange(0),
    default=None,
    help="Image decoding workers: threads beside a CPU backbone, processes beside a GPU  "
    "[default: one per core, at most 32]",
)
batch_option = click.option(
    "--batch-size",
    type=click.IntRange(1),
    default=ExtractConfig().batch_size,
    help="Images per backbone forward pass  [default: 8 on a CPU (16 in bf16); 64 on a GPU; 32 per Ray actor; "
    "docs/benchmark.md says how these were chosen]",
)
engine_option = click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default=ExtractConfig().engine,
    show_default=True,
    help="local: decoding workers and the backbone in this process; ray: a Ray Data pipeline on a Ray cluster, "
    "one backbone per actor, on GPUs where the cluster has them (pip install -e '.[ray]').",
)
address_option = click.option(
    "--address",
    envvar="RAY_ADDRESS",
    show_envvar=True,
    default=None,
    help="Ray cluster to join with --engine ray (HOST:PORT or auto)  [default: a local Ray for this run]",
)
compile_option = click.option(
    "--compile",
    "compile_backbone",
    is_flag=True,
    default=ExtractConfig().compile,
    help="torch.compile the backbone. Off by default: the first compile takes seconds to a minute and pays back "
    "only on large folders (docs/benchmark.md); try it on large folders and GPUs. If compiling fails, the folded "
    "network runs instead, with a warning.",
)
_FORWARD_OPTIONS = (
    click.option(
        "--precision",
        type=click.Choice(["fp32", "bf16"]),
        default=ExtractConfig().precision,
        show_default=True,
        help="Backbone compute precision; features are stored as float32.",
    ),
    click.option(
        "--runtime",
        type=click.Choice(RUNTIMES),
        default=ExtractConfig().runtime,
        show_default=True,
        help="What runs the fp32 backbone on the CPU: torch, or onnxruntime (pip install -e '.[export]'): the folded "
        "network exported to ONNX at the start of the run, its first batch checked against torch's within 1e-4. "
        "docs/backbones.md says for which backbones it is faster.",
    ),
)


def forward_options(command):
    """extract's --precision and --runtime: how the backbone computes."""
    for option in reversed(_FORWARD_OPTIONS):
        command = option(command)
    return command


head_weights_option = click.option(
    "--weights",
    default=None,
    help="Backbone weights  [default: the weights the head records]; must match what the head was trained on.",
)


def head_backbone_option(command):
    """--backbone for commands that run a trained head: a check, since the head records the backbone it runs with."""
    return click.option(
        "--backbone",
        default=None,
        show_default="the head's",
        help="Refuse the head unless it was trained on this backbone's features (a head runs with the backbone it "
        "records; `headstart info` lists a cache's backbones).",
    )(command)


def head_run_options(command):
    """The options of the commands that run a trained head over images: predict and evaluate."""
    for option in (workers_option, batch_option, device_option, head_weights_option, head_backbone_option):
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


_TRAIN_OPTIONS = [
    cache_option,
    click.option(
        "--head",
        type=click.Choice(["sgd", "logreg"]),
        default=TrainConfig().head,
        show_default=True,
        help="sgd: the tutorial's recipe; logreg: scikit-learn's LogisticRegression, to compare against "
        "(ignores the SGD options).",
    ),
    click.option(
        "--epochs",
        type=click.IntRange(1),
        default=TrainConfig().epochs,
        show_default=f"{TrainConfig().epochs}; multi-label features: {EPOCHS}",
        help="Passes over the training features.",
    ),
    click.option(
        "--lr",
        type=FiniteFloatRange(0, min_open=True),
        default=TrainConfig().lr,
        show_default=f"{TrainConfig().lr}; multi-label features: {LR}",
        help="SGD learning rate.",
    ),
    click.option(
        "--momentum",
        type=FiniteFloatRange(0, 1),
        default=TrainConfig().momentum,
        show_default=True,
        help="SGD momentum.",
    ),
    click.option(
        "--batch-size",
        type=click.IntRange(1),
        default=TrainConfig().batch_size,
        show_default=True,
        help="Features per SGD step.",
    ),
    click.option(
        "--seed",
        type=click.IntRange(0, SEED_MAX),
        default=TrainConfig().seed,
        show_default=True,
        help="Seeds the head's init and the shuffling: the same seed gives the same head.",
    ),
    click.option(
        "--weight-decay",
        type=click.FloatRange(0),
        default=TrainConfig().weight_decay,
        show_default=True,
        help="SGD's L2 weight decay.",
    ),
    click.option(
        "--class-weight",
        type=click.Choice(CLASS_WEIGHTS),
        default=TrainConfig().class_weight,
        show_default=True,
        help="balanced: cross-entropy weighted by inverse class frequency, for imbalanced folders (sgd and logreg); "
        "multi-label: each label's positives weighted by its negatives / positives.",
    ),
    click.option(
        "--logreg-c",
        "c",
        type=click.FloatRange(0, min_open=True),
        default=TrainConfig().c,
        show_default=True,
        help="logreg's inverse regularisation strength (scikit-learn's C).",
    ),
    click.option(
        "--threshold",
        type=click.FloatRange(0, 1, min_open=True, max_open=True),
        default=None,
        help="Multi-label features (extract --multi-label): one fixed decision threshold for every label, instead "
        "of each label's best F1 on out-of-fold probabilities over train  [default: each label's own]",
    ),
]


def pick_backbone_option(command):
    """--backbone for commands that read a cache's features: whose, when the cache holds several backbones'."""
    return click.option(
        "--backbone",
        default=None,
        show_default="the only one CACHE holds",
        help="Whose features to use when CACHE holds several backbones' (`headstart info` lists them).",
    )(command)


def train_options(command):
    """train-head's options: --cache, and one per TrainConfig field (defaulting to it), passed on by its name; and
    `unset`, those of --epochs and --lr left at their defaults (a multi-label head then trains by its own recipe)."""

    @functools.wraps(command)
    def with_unset(*args, **kwargs):
        context = click.get_current_context()
        unset = tuple(name for name in RECIPE_OPTIONS if context.get_parameter_source(name) is ParameterSource.DEFAULT)
        return command(*args, unset=unset, **kwargs)

    for option in reversed(_TRAIN_OPTIONS):
        with_unset = option(with_unset)
    return with_unset


_PREDICTION_OPTIONS = (
    click.option(
        "--format",
        "output_format",
        type=click.Choice(FORMATS),
        default=FORMATS[0],
        show_default=True,
        help="CSV, or JSON Lines (one object per image).",
    ),
    click.option(
        "--top-k",
        type=click.IntRange(1),
        default=1,
        show_default=True,
        help="Also report the K most probable labels per image.",
    ),
    click.option(
        "--reject-unknown",
        is_flag=True,
        help="Write the label `unknown` for images flagged as unlike the training set (probabilities unchanged).",
    ),
)


def prediction_options(command):
    """predict's --format, --top-k and --reject-unknown."""
    for option in reversed(_PREDICTION_OPTIONS):
        command = option(command)
    return command
