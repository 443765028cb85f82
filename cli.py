"""headstart: cache frozen ResNet18 features once, train a linear head in seconds, predict folders to CSV."""

from __future__ import annotations

import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from features.config import ExtractConfig
from heads.config import PredictConfig, TrainConfig

EXIT_ERROR, EXIT_INTERRUPTED, EXIT_TERMINATED = 1, 130, 143
DEVICES = ["auto", "cpu", "cuda"]


class Interrupted(click.ClickException):
    exit_code = EXIT_INTERRUPTED


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM, so cleanup runs as for Ctrl-C."""


def _raise_terminated(signum, frame):
    raise Terminated()


class _RateColumn(ProgressColumn):
    def __init__(self, unit: str):
        super().__init__()
        self.unit = unit

    def render(self, task) -> Text:
        return Text(f"{task.speed:.1f} {self.unit}/s" if task.speed else f"- {self.unit}/s")


class Reporter:
    """The one place that prints: tables and notes to stdout, progress bars to stderr (plain when not a terminal)."""

    def __init__(self, quiet: bool = False):
        self.out = Console(quiet=quiet, highlight=False)
        self.err = Console(stderr=True, quiet=quiet, highlight=False)

    def note(self, message: str) -> None:
        self.out.print(message)

    def warn(self, message: str) -> None:
        self.err.print(f"[yellow]warning:[/yellow] {message}")

    def table(self, table: Table) -> None:
        self.out.print(table)

    @contextmanager
    def progress(self, description: str, unit: str = "img") -> Iterator[Callable[[int, int], None]]:
        """A callback(done, total) that drives a progress bar with rate and time left."""
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _RateColumn(unit),
                   TimeRemainingColumn()]
        with Progress(*columns, console=self.err, transient=False, disable=self.err.quiet) as progress:
            task = progress.add_task(description, total=None)

            def update(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total or None)

            yield update


@contextmanager
def _errors_as_exit_codes() -> Iterator[None]:
    """Library errors -> one-line message and exit 1; Ctrl-C -> 130; SIGTERM -> 143. Nothing else prints tracebacks."""
    from features import CacheBusyError, DatasetError, StoreError, WeightsError
    from features.download import DownloadError
    from heads import HeadFileError

    try:
        yield
    except (DatasetError, WeightsError, StoreError, HeadFileError, CacheBusyError, DownloadError) as error:
        raise click.ClickException(str(error)) from None
    except OSError as error:
        where = f" ({error.filename})" if error.filename else ""
        raise click.ClickException(f"{error.strerror or error}{where}") from None
    except KeyboardInterrupt:
        raise Interrupted("interrupted: previous results are untouched") from None
    except Terminated:
        click.echo("Error: terminated: previous results are untouched", err=True)
        sys.exit(EXIT_TERMINATED)


cache_option = click.option("--cache", type=click.Path(file_okay=False, path_type=Path),
                            default=ExtractConfig().cache, show_default=True,
                            help="Folder holding features.h5, head.pt and metrics.json.")
device_option = click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
                             help="Where the backbone runs; auto picks CUDA when available.")
workers_option = click.option("--workers", type=click.IntRange(0), default=None,
                              help="Image decoding processes  [default: one per core, at most 8]")
batch_option = click.option("--batch-size", type=click.IntRange(1), default=ExtractConfig().batch_size,
                            show_default=True, help="Images per backbone forward pass.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--quiet", "-q", is_flag=True, help="Print errors only.")
@click.pass_context
def cli(ctx: click.Context, quiet: bool) -> None:
    """Transfer learning the fast way: frozen ResNet18 features cached in HDF5, a linear head on top."""
    ctx.obj = Reporter(quiet)


@cli.command()
@click.option("--data", type=click.Path(path_type=Path), default=ExtractConfig().data, show_default=True,
              help="Dataset folder with train/ and val/ (and test/), one sub-folder per class; "
                   "downloaded from the PyTorch tutorial when the default is missing.")
@cache_option
@click.option("--weights", default=ExtractConfig().weights, show_default=True,
              help="imagenet (torchvision's ResNet18_Weights.IMAGENET1K_V1), a ResNet18 state_dict file, "
                   "or none (random init, for offline tests).")
@click.option("--preprocess", type=click.Choice(["imagenet", "notebook"]), default=ExtractConfig().preprocess,
              show_default=True, help="imagenet: resize 256, crop 224, ImageNet mean/std (the weights' own); "
                                      "notebook: the tutorial's Resize((224, 224)) and Normalize(0.5, 0.5).")
@device_option
@batch_option
@workers_option
@click.option("--precision", type=click.Choice(["fp32", "bf16"]), default=ExtractConfig().precision,
              show_default=True, help="Backbone compute precision; features are stored as float32.")
@click.pass_obj
def extract(report: Reporter, data: Path, cache: Path, weights: str, preprocess: str, device: str,
            batch_size: int, workers: int | None, precision: str) -> None:
    """Run the frozen backbone over every image once and cache the features in CACHE/features.h5."""
    with _errors_as_exit_codes():
        from features.download import download_dataset
        from features.extract import extract_features

        if data == ExtractConfig().data and not data.exists():
            report.note(f"{data} not found: downloading the tutorial dataset")
            with report.progress("download", unit="B") as on_progress:
                download_dataset(data, on_progress=on_progress)
        config = ExtractConfig(data, cache, weights, preprocess, device, batch_size, workers, precision)

        def on_start(summary) -> None:
            if summary.weights.kind == "none":
                report.warn("--weights none: features come from a randomly initialised backbone, NOT pretrained")
            if summary.resumed:
                report.note("resuming: reusing the rows an interrupted run had finished")
            if summary.rebuild_reason:
                report.note(f"re-extracting everything: {summary.rebuild_reason}")

        with report.progress("extract") as on_progress:
            summary = extract_features(config, on_progress, on_start)
        _report_extract(report, summary)


def _report_extract(report: Reporter, summary) -> None:
    table = Table(title=f"{summary.path}  ({summary.weights.describe()}, {summary.device})")
    for column in ("split", "images", "extracted", "reused", "skipped"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for split in summary.splits:
        table.add_row(split.split, str(split.found), str(split.extracted), str(split.reused), str(len(split.skipped)))
    report.table(table)
    for split in summary.splits:
        for name, reason in split.skipped:
            report.warn(f"skipped {name}: {reason}")
    report.note(f"classes: {', '.join(summary.classes)}; done in {summary.seconds:.1f} s")


@cli.command("train-head")
@cache_option
@click.option("--epochs", type=click.IntRange(1), default=TrainConfig().epochs, show_default=True,
              help="Passes over the training features.")
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=TrainConfig().lr, show_default=True,
              help="SGD learning rate.")
@click.option("--momentum", type=click.FloatRange(0, 1), default=TrainConfig().momentum, show_default=True,
              help="SGD momentum.")
@click.option("--batch-size", type=click.IntRange(1), default=TrainConfig().batch_size, show_default=True,
              help="Features per SGD step.")
@click.option("--seed", type=int, default=TrainConfig().seed, show_default=True,
              help="Seeds the head's init and the shuffling: the same seed gives the same head.")
@click.pass_obj
def train_head(report: Reporter, cache: Path, epochs: int, lr: float, momentum: float, batch_size: int,
               seed: int) -> None:
    """Train the linear head on CACHE/features.h5; write CACHE/head.pt and CACHE/metrics.json."""
    with _errors_as_exit_codes():
        from heads import fit_head

        table = Table(title="train-head")
        for column in ("epoch", "train loss", "train acc", "val loss", "val acc"):
            table.add_column(column, justify="right")

        def on_epoch(epoch: int, metrics: dict) -> None:
            table.add_row(str(epoch), *[f"{metrics[key]:.4f}" if key in metrics else "-"
                                        for key in ("train_loss", "train_acc", "val_loss", "val_acc")])

        summary = fit_head(cache, TrainConfig(epochs, lr, momentum, batch_size, seed), on_epoch)
        report.table(table)
        if summary.header["weights"]["kind"] == "none":
            report.warn("these features come from a randomly initialised backbone, NOT pretrained")
        counts = ", ".join(f"{n} {split}" for split, n in summary.counts.items())
        report.note(f"trained on {counts} rows in {summary.seconds:.2f} s -> {summary.head_path}, "
                    f"{summary.metrics_path}")


def _refuse_output_inside_inputs(out: Path, paths: tuple[Path, ...]) -> None:
    target = out.resolve()
    for given in paths:
        source = given.resolve()
        if target == source or (source.is_dir() and target.is_relative_to(source)):
            raise click.UsageError(f"--out {out} is inside the input {given}: write the CSV somewhere else")


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="CSV file to write: path, label, confidence, prob_<class>..., error.")
@cache_option
@click.option("--weights", default=None,
              help="Backbone weights  [default: the weights the head records]; must match what the head was "
                   "trained on.")
@device_option
@batch_option
@workers_option
@click.pass_obj
def predict(report: Reporter, paths: tuple[Path, ...], out: Path, cache: Path, weights: str | None, device: str,
            batch_size: int, workers: int | None) -> None:
    """Label every image in PATHS (files, or folders searched recursively) with the head in CACHE; write CSV."""
    _refuse_output_inside_inputs(out, paths)
    with _errors_as_exit_codes():
        from features import find_images
        from heads import HEAD_FILE, Predictor, write_predictions

        predictor = Predictor.load(cache / HEAD_FILE, PredictConfig(weights, device, batch_size, workers))
        entries = find_images(list(paths))
        if not entries:
            raise click.ClickException(f"no images found in {', '.join(map(str, paths))}")
        with report.progress("predict") as on_progress:
            counts = write_predictions(out, predictor.classes,
                                       predictor.predict(entries, batch_size, workers, on_progress))
        report.note(f"{counts['predicted']} images labelled, {counts['failed']} could not be read -> {out}")


def main() -> None:
    signal.signal(signal.SIGTERM, _raise_terminated)
    cli(prog_name="headstart")


if __name__ == "__main__":
    main()
