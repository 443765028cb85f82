"""headstart: cache frozen ResNet18 features once, train a linear head in seconds, predict folders to CSV."""

from __future__ import annotations

import json
import signal
import sys
import time
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Callable, Iterator

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from features import __version__
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
    """The one place that prints: results to stdout, progress and warnings to stderr; plain when not a terminal."""

    def __init__(self, quiet: bool = False):
        # markup=False: paths and class names like "IMG [edited].jpg" are printed as they are.
        self.out = Console(quiet=quiet, highlight=False, markup=False)
        self.err = Console(stderr=True, quiet=quiet, highlight=False, markup=False)

    def set_quiet(self) -> None:
        self.out.quiet = self.err.quiet = True

    def results_to_stderr(self) -> None:
        """When stdout carries data (predict --out -), everything else goes to stderr."""
        self.out = self.err

    def note(self, message: str) -> None:
        self.out.print(message)

    def warn(self, message: str) -> None:
        self.err.print(Text.assemble(("warning:", "yellow"), f" {message}"))

    def table(self, table: Table) -> None:
        self.out.print(table)

    @contextmanager
    def progress(self, description: str, unit: str = "img", delay: float = 0.5) -> Iterator[Callable[[int, int], None]]:
        """A callback(done, total) driving a bar with rate and time left; shown only once a step lasts `delay` s."""
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _RateColumn(unit),
                   TimeRemainingColumn()]
        progress = Progress(*columns, console=self.err, disable=self.err.quiet)
        task = progress.add_task(description, total=None)
        started, shown = time.monotonic(), False

        def update(done: int, total: int) -> None:
            nonlocal shown
            progress.update(task, completed=done, total=total or None)
            if not shown and (not total or done < total) and time.monotonic() - started >= delay:
                progress.start()
                shown = True

        try:
            yield update
        finally:
            if shown:
                progress.stop()


def _one_line(message: str) -> str:
    """Library messages can carry newlines (HDF5's include a timestamp); an error is one line."""
    return " ".join(message.split())


@contextmanager
def _errors_as_exit_codes() -> Iterator[None]:
    """Library errors -> one-line message and exit 1; Ctrl-C -> 130; SIGTERM -> 143. Nothing else prints tracebacks."""
    from features import CacheBusyError
    from features.download import DownloadError

    try:
        yield
    except (ValueError, CacheBusyError, DownloadError) as error:  # every library error names the path and the fix
        raise click.ClickException(_one_line(str(error))) from None
    except OSError as error:
        where = f" ({error.filename})" if error.filename else ""
        raise click.ClickException(_one_line(f"{error.strerror or error}{where}")) from None
    except KeyboardInterrupt:
        raise Interrupted("interrupted: previous results are untouched") from None
    except Terminated:
        click.echo("Error: terminated: previous results are untouched", err=True)
        sys.exit(EXIT_TERMINATED)


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
    "--engine", type=click.Choice(["local", "ray"]), default=ExtractConfig().engine, show_default=True,
    help="local: decoding workers and the backbone in this process; ray: a Ray Data pipeline on a Ray cluster, "
         "one backbone per actor, on GPUs where the cluster has them (pip install -e '.[ray]').")
address_option = click.option(
    "--address", envvar="RAY_ADDRESS", show_envvar=True, default=None,
    help="Ray cluster to join with --engine ray (HOST:PORT or auto)  [default: a local Ray for this run]")
head_weights_option = click.option(
    "--weights", default=None,
    help="Backbone weights  [default: the weights the head records]; must match what the head was trained on.")


def head_run_options(command):
    """The options of the commands that run a trained head over images: predict and evaluate."""
    for option in (workers_option, batch_option, device_option, head_weights_option):
        command = option(command)
    return command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="headstart")
@quiet_option
def cli() -> None:
    """Transfer learning the fast way: frozen ResNet18 features cached in HDF5, a linear head on top."""


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
@engine_option
@address_option
@quiet_option
@click.pass_context
def extract(ctx: click.Context, data: Path, cache: Path, weights: str, preprocess: str, device: str,
            batch_size: int, workers: int | None, precision: str, engine: str, address: str | None) -> None:
    """Run the frozen backbone over every image once and cache the features in CACHE/features.h5."""
    report = ctx.ensure_object(Reporter)
    _refuse_address_without_ray(ctx, engine)
    with _errors_as_exit_codes():
        from features.download import download_dataset
        from features.extract import extract_features

        if data == ExtractConfig().data and not data.exists():
            report.note(f"{data} not found: downloading the tutorial dataset")
            with report.progress("download", unit="B") as on_progress:
                download_dataset(data, on_progress=on_progress)
        config = ExtractConfig(data, cache, weights, preprocess, device, batch_size, workers, precision, engine,
                               address)

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


def _refuse_address_without_ray(ctx: click.Context, engine: str) -> None:
    if engine == "local" and ctx.get_parameter_source("address") == click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError("--address joins a Ray cluster: use it with --engine ray")


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


def _scores_table(summary: dict, title: str) -> Table:
    """scikit-learn's classification report as a table."""
    table = Table(title=title)
    for column in ("class", "precision", "recall", "f1", "support"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name in [*summary["classes"], "macro avg", "weighted avg"]:
        row = summary["report"][name]
        table.add_row(name, f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1-score']:.3f}",
                      str(int(row["support"])))
    return table


def _confusion_table(summary: dict) -> Table:
    table = Table(title="confusion matrix (rows: true class, columns: predicted)")
    table.add_column("true \\ predicted")
    for name in summary["classes"]:
        table.add_column(name, justify="right")
    for name, row in zip(summary["classes"], summary["confusion"]):
        table.add_row(name, *map(str, row))
    return table


@cli.command("train-head")
@cache_option
@click.option("--head", "head_kind", type=click.Choice(["sgd", "logreg"]), default=TrainConfig().head,
              show_default=True, help="sgd: the tutorial's recipe; logreg: scikit-learn's LogisticRegression, "
                                      "to compare against (ignores the SGD options).")
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
@quiet_option
@click.pass_context
def train_head(ctx: click.Context, cache: Path, head_kind: str, epochs: int, lr: float, momentum: float,
               batch_size: int, seed: int) -> None:
    """Train the linear head on CACHE/features.h5; write head.pt, metrics.json and curves.png."""
    report = ctx.ensure_object(Reporter)
    with _errors_as_exit_codes():
        from heads import fit_head

        table = Table(title=f"train-head ({head_kind})")
        for column in ("epoch", "train loss", "train acc", "val loss", "val acc"):
            table.add_column(column, justify="right")

        def on_epoch(epoch: int, metrics: dict) -> None:
            table.add_row(str(epoch), *[f"{metrics[key]:.4f}" if key in metrics else "-"
                                        for key in ("train_loss", "train_acc", "val_loss", "val_acc")])

        summary = fit_head(cache, TrainConfig(epochs, lr, momentum, batch_size, seed, head_kind), on_epoch)
        report.table(table)
        metrics = summary.metrics
        if "val_acc" in metrics:
            best = metrics["best_epoch"]
            report.note(f"last epoch ({metrics['epoch']}): val acc {metrics['val_acc']:.4f}, "
                        f"val loss {metrics['val_loss']:.4f} — this is the head saved")
            report.note(f"best epoch ({best['epoch']}): val acc {best['val_acc']:.4f}, val loss {best['val_loss']:.4f}"
                        " — chosen on val itself, so an optimistic estimate")
            report.table(_scores_table(metrics["val_report"], "val split, last epoch"))
            report.table(_confusion_table(metrics["val_report"]))
        if summary.header["weights"]["kind"] == "none":
            report.warn("these features come from a randomly initialised backbone, NOT pretrained")
        counts = ", ".join(f"{n} {split}" for split, n in summary.counts.items())
        report.note(f"trained on {counts} rows in {summary.seconds:.2f} s -> {summary.head_path}, "
                    f"{summary.metrics_path}, {summary.curves_path}")


def _refuse_output_inside_inputs(out: Path, paths: tuple[Path, ...]) -> None:
    target = out.resolve()
    for given in paths:
        source = given.resolve()
        if target == source or (source.is_dir() and target.is_relative_to(source)):
            raise click.UsageError(f"--out {out} is inside the input {given}: write it somewhere else")


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path), required=True,
              help="File to write (- for stdout): CSV columns path, label, confidence, prob_<class>..., error.")
@click.option("--format", "output_format", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True,
              help="CSV, or JSON Lines (one object per image).")
@click.option("--top-k", type=click.IntRange(1), default=1, show_default=True,
              help="Also report the K most probable labels per image.")
@cache_option
@head_run_options
@engine_option
@address_option
@quiet_option
@click.pass_context
def predict(ctx: click.Context, paths: tuple[Path, ...], out: Path, output_format: str, top_k: int, cache: Path,
            weights: str | None, device: str, batch_size: int, workers: int | None, engine: str,
            address: str | None) -> None:
    """Label every image in PATHS (files, or folders searched recursively) with the head in CACHE."""
    report = ctx.ensure_object(Reporter)
    _refuse_address_without_ray(ctx, engine)
    to_stdout = str(out) == "-"
    if to_stdout:
        report.results_to_stderr()
    else:
        _refuse_output_inside_inputs(out, paths)
    with _errors_as_exit_codes():
        from features import find_images
        from heads import HEAD_FILE, Predictor, write_predictions

        predictor = Predictor.load(cache / HEAD_FILE, PredictConfig(weights, device, batch_size, workers, engine,
                                                                    address))
        entries = find_images(list(paths))
        if not entries:
            raise click.ClickException(f"no images found in {', '.join(map(str, paths))}")
        with report.progress("predict") as on_progress, closing(predictor.predict(entries, on_progress)) as rows:
            counts = write_predictions("-" if to_stdout else out, predictor.classes, rows, output_format, top_k)
        report.note(f"{counts['predicted']} images labelled, {counts['failed']} could not be read -> {out}")


@cli.command()
@click.argument("folder", type=click.Path(path_type=Path))
@cache_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="CSV of the wrong images, most confident first  [default: CACHE/evaluation_wrong.csv]")
@click.option("--show", type=click.IntRange(0), default=10, show_default=True,
              help="How many of the most confidently wrong images to print.")
@head_run_options
@quiet_option
@click.pass_context
def evaluate(ctx: click.Context, folder: Path, cache: Path, out: Path | None, show: int, weights: str | None,
             device: str, batch_size: int, workers: int | None) -> None:
    """Score the head on FOLDER (one sub-folder per class): accuracy, per-class report, confusion, mistakes."""
    report = ctx.ensure_object(Reporter)
    out = out or cache / "evaluation_wrong.csv"
    _refuse_output_inside_inputs(out, (folder,))
    with _errors_as_exit_codes():
        from heads import HEAD_FILE, Predictor
        from heads.evaluate import evaluate_folder, write_mistakes

        predictor = Predictor.load(cache / HEAD_FILE, PredictConfig(weights, device, batch_size, workers))
        with report.progress("evaluate") as on_progress:
            evaluation = evaluate_folder(folder, predictor, on_progress)
        write_mistakes(out, evaluation.mistakes)
        summary = evaluation.summary
        report.table(_scores_table(summary, f"{folder}: accuracy {summary['accuracy']:.4f}"))
        report.table(_confusion_table(summary))
        if evaluation.mistakes and show:
            table = Table(title=f"most confidently wrong ({min(show, len(evaluation.mistakes))} of "
                                f"{len(evaluation.mistakes)})")
            for column in ("path", "true", "predicted", "confidence"):
                table.add_column(column, justify="right" if column == "confidence" else "left", overflow="fold")
            for mistake in evaluation.mistakes[:show]:
                table.add_row(mistake.path, mistake.true, mistake.predicted, f"{mistake.confidence:.4f}")
            report.table(table)
        for path, reason in evaluation.failed:
            report.warn(f"could not read {path}: {reason}")
        report.note(f"{evaluation.images} images, accuracy {summary['accuracy']:.4f}; "
                    f"{len(evaluation.mistakes)} wrong -> {out}")


@cli.command()
@cache_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@quiet_option
@click.pass_context
def info(ctx: click.Context, cache: Path, as_json: bool) -> None:
    """What CACHE holds: splits, counts per class, backbone, weights, preprocessing, head metrics."""
    report = ctx.ensure_object(Reporter)
    with _errors_as_exit_codes():
        from heads.info import describe_cache

        described = describe_cache(cache)
        if as_json:
            click.echo(json.dumps(described, indent=2))
            return
        features = described["features"]
        if features is None:
            report.note(f"{cache} holds no features.h5: run `extract`")
        else:
            table = Table(title=f"{cache / 'features.h5'} (created {features['created']})")
            table.add_column("split")
            for name in features["classes"]:
                table.add_column(name, justify="right")
            table.add_column("rows", justify="right")
            table.add_column("skipped", justify="right")
            for split, counts in features["splits"].items():
                table.add_row(split, *map(str, counts["per_class"].values()), str(counts["rows"]),
                              str(counts["skipped"]))
            report.table(table)
            weights = features["weights"]
            report.note(f"backbone {features['backbone']}, weights {weights['name']} "
                        f"({weights['sha256'][:12] or 'random init, NOT pretrained'}), preprocessing "
                        f"{features['preprocessing']['name']}, precision {features['precision']}, "
                        f"torch {features['torch_version']}, torchvision {features['torchvision_version']}")
        head = described["head"]
        if head is None:
            report.note(f"{cache} holds no head.pt: run `train-head`")
        else:
            metrics = head["metrics"]
            scores = ", ".join(f"{key} {metrics[key]:.4f}" for key in ("train_loss", "train_acc", "val_loss", "val_acc")
                               if key in metrics)
            report.note(f"head ({head['train_config'].get('head', 'sgd')}): {scores}")


def main() -> None:
    signal.signal(signal.SIGTERM, _raise_terminated)
    cli(prog_name="headstart")


if __name__ == "__main__":
    main()
