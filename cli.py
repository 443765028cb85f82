"""headstart: cache a frozen backbone's features once, train a head in seconds, predict folders to CSV."""

from __future__ import annotations

from headstart.features.interrupts import Stopped, accept_signals, ignore_late_signals, install_handlers

if __name__ == "__main__":  # first of all: a Ctrl-C while the libraries below import is then handled like any other
    install_handlers()

import sys
from pathlib import Path

import click

from headstart.console import apply, suggest
from headstart.console.audit import audit_options
from headstart.console.backbones import backbones_command
from headstart.console.embeddings import embeddings_command
from headstart.console.errors import errors_as_exit_codes, interrupted
from headstart.console.info import info_command
from headstart.console.options import (
    address_option,
    batch_option,
    cache_option,
    compile_option,
    device_option,
    engine_option,
    forward_options,
    head_backbone_option,
    head_run_options,
    head_weights_option,
    pick_backbone_option,
    prediction_options,
    quiet_option,
    refuse_address_without_ray,
    refuse_output_inside_inputs,
    train_options,
    workers_option,
)
from headstart.console.reporter import Reporter
from headstart.console.similar import similar_command
from headstart.console.sources import evaluate_table_options, source_options
from headstart.console.sweep import show_sweep, sweep_options
from headstart.console.trust import TrustConfig, show_prediction, trust_options
from headstart.features import __version__
from headstart.features.config import ExtractConfig
from headstart.features.files.outputs import STDOUT
from headstart.features.provenance import PREPROCESSINGS
from headstart.heads.audit.config import AuditConfig
from headstart.heads.config import EvaluateTable, PredictConfig, SweepConfig, TrainConfig
from headstart.heads.export.config import EXPORT_FORMATS, ExportConfig


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="headstart")
@quiet_option
def cli() -> None:
    """Transfer learning the fast way: frozen ResNet18 features cached in HDF5, a linear head on top."""


@cli.command()
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    default=ExtractConfig().data,
    show_default=True,
    help="Dataset folder with train/ and val/ (and test/), one sub-folder per class, or only class sub-folders "
    "(split for you by --val-fraction), or the folder a --labels table's paths are relative to; downloaded from the "
    "PyTorch tutorial when the default is missing.",
)
@source_options
@cache_option
@click.option(
    "--backbone",
    default=ExtractConfig().backbone,
    show_default=True,
    help="The frozen network (`headstart backbones` lists them); each backbone's features are kept in CACHE.",
)
@click.option(
    "--weights",
    default=ExtractConfig().weights,
    show_default=True,
    help="imagenet (the backbone's torchvision ImageNet weights), a state_dict file of the backbone, "
    "or none (random init, for offline tests).",
)
@click.option(
    "--preprocess",
    type=click.Choice(list(PREPROCESSINGS)),
    default=ExtractConfig().preprocess,
    show_default=True,
    help="imagenet: the backbone's weights' own resize, crop, interpolation and mean/std; "
    "notebook: the tutorial's Resize((224, 224)) and Normalize(0.5, 0.5).",
)
@device_option
@batch_option
@workers_option
@forward_options
@engine_option
@address_option
@compile_option
@quiet_option
@click.pass_context
def extract(
    ctx: click.Context,
    data: Path,
    cache: Path,
    backbone: str,
    weights: str,
    preprocess: str,
    device: str,
    batch_size: int,
    workers: int | None,
    precision: str,
    runtime: str,
    engine: str,
    address: str | None,
    compile_backbone: bool,
    sources: dict,
) -> None:
    """Run the frozen backbone over every image once and cache its features in CACHE (features.h5 for resnet18)."""
    report = ctx.ensure_object(Reporter)
    refuse_address_without_ray(ctx, engine)
    with errors_as_exit_codes():
        from headstart.console.views import show_extract, show_extract_start
        from headstart.features.download import download_dataset
        from headstart.features.extract import extract_features

        if data == ExtractConfig().data and not data.exists():
            report.note(f"{data} not found: downloading the tutorial dataset")
            with report.progress("download", unit="B") as on_progress:
                download_dataset(data, on_progress=on_progress)
        config = ExtractConfig(
            data=data,
            cache=cache,
            backbone=backbone,
            weights=weights,
            preprocess=preprocess,
            device=device,
            batch_size=batch_size,
            workers=workers,
            precision=precision,
            runtime=runtime,
            engine=engine,
            address=address,
            compile=compile_backbone,
            **sources,
        )
        with report.progress("extract") as on_progress:
            summary = extract_features(
                config, on_progress, lambda started: show_extract_start(report, started), report.warn
            )
        show_extract(report, summary)


@cli.command("train-head")
@train_options
@pick_backbone_option
@trust_options
@quiet_option
@click.pass_context
def train_head(ctx: click.Context, cache: Path, trust: TrustConfig, backbone: str | None, unset, **settings) -> None:
    """Train the linear head on CACHE's features; write head.pt, metrics.json, curves.png and calibration.png."""
    from headstart.heads.plots import PlotsAhead

    report = ctx.ensure_object(Reporter)
    with errors_as_exit_codes(), PlotsAhead() as plots:  # started first: its matplotlib import overlaps torch's
        from headstart.console.views import EpochTable, show_training
        from headstart.heads import fit_head

        epochs_table = EpochTable(settings["head"])
        config = TrainConfig(**settings)
        summary = fit_head(cache, config, epochs_table, trust=trust, plots=plots, backbone=backbone, unset=unset)
        show_training(report, summary, epochs_table)


@cli.command()
@sweep_options
@quiet_option
@click.pass_context
def sweep(ctx: click.Context, cache: Path, **settings) -> None:
    """Choose the head's settings by k-fold cross-validation on train, refit the best, score it on val once."""
    report = ctx.ensure_object(Reporter)
    with errors_as_exit_codes():
        from headstart.heads import sweep_heads

        with report.progress("sweep", unit="head") as on_progress:
            summary = sweep_heads(cache, SweepConfig(**settings), on_progress)
        show_sweep(report, summary)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    required=True,
    help="File to write (- for stdout): columns path, label, confidence, ood_score, unknown, prob_<class>...",
)
@prediction_options
@cache_option
@head_run_options
@engine_option
@address_option
@compile_option
@quiet_option
@click.pass_context
def predict(
    ctx: click.Context,
    paths: tuple[Path, ...],
    out: Path,
    output_format: str,
    top_k: int,
    reject_unknown: bool,
    cache: Path,
    weights: str | None,
    device: str,
    batch_size: int,
    workers: int | None,
    engine: str,
    address: str | None,
    compile_backbone: bool,
    backbone: str | None,
) -> None:
    """Label every image in PATHS (files, or folders searched recursively) with the head in CACHE."""
    report = ctx.ensure_object(Reporter)
    refuse_address_without_ray(ctx, engine)
    if str(out) == STDOUT:
        report.results_to_stderr()
    else:
        refuse_output_inside_inputs(out, paths)
    with errors_as_exit_codes():
        from headstart.heads import predict_files

        config = PredictConfig(
            weights=weights,
            device=device,
            batch_size=batch_size,
            workers=workers,
            engine=engine,
            address=address,
            compile=compile_backbone,
            backbone=backbone,
        )
        with report.progress("predict") as on_progress:
            summary = predict_files(
                list(paths),
                out,
                cache,
                config,
                output_format=output_format,
                top_k=top_k,
                reject_unknown=reject_unknown,
                on_progress=on_progress,
                on_warning=report.warn,
            )
        show_prediction(report, summary)


@cli.command()
@click.argument("folder", type=click.Path(path_type=Path))
@cache_option
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="CSV of the wrong images, most confident first  [default: CACHE/evaluation_wrong.csv]",
)
@click.option(
    "--show",
    type=click.IntRange(0),
    default=10,
    show_default=True,
    help="How many of the most confidently wrong images to print.",
)
@click.option(
    "--html",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write a self-contained HTML page of the mistakes, each beside an image of the class it "
    "was taken for  [default: no page]",
)
@head_run_options
@evaluate_table_options
@quiet_option
@click.pass_context
def evaluate(
    ctx: click.Context,
    folder: Path,
    cache: Path,
    out: Path | None,
    show: int,
    html: Path | None,
    weights: str | None,
    device: str,
    batch_size: int,
    workers: int | None,
    table: EvaluateTable | None,
    backbone: str | None,
) -> None:
    """Score the head on FOLDER (one sub-folder per class; with --labels, the folder the table's paths are relative
    to): accuracy, per-class report, confusion, mistakes."""
    report = ctx.ensure_object(Reporter)
    out = out or cache / "evaluation_wrong.csv"
    refuse_output_inside_inputs(out, (folder,))
    if html is not None:
        refuse_output_inside_inputs(html, (folder,))
    with errors_as_exit_codes():
        from headstart.console.views import show_evaluation
        from headstart.heads import evaluate_head

        config = PredictConfig(
            weights=weights, device=device, batch_size=batch_size, workers=workers, backbone=backbone
        )
        with report.progress("evaluate") as on_progress:
            evaluation = evaluate_head(folder, cache, out, config, on_progress, html=html, table=table)
        show_evaluation(report, folder, evaluation, show, out)
        if html is not None:
            report.note(f"page of the mistakes -> {html}")


@cli.command("export")
@click.option(
    "--format",
    "export_format",
    type=click.Choice(EXPORT_FORMATS),
    default=ExportConfig.format,
    show_default=True,
    help="onnx needs pip install -e '.[export]'; torchvision also writes FILE.json.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write  [default: none; required unless --example]",
)
@cache_option
@click.option(
    "--images",
    type=click.Path(exists=True, path_type=Path),
    help="Verify on these images  [default: the val images the cache was extracted from]",
)
@click.option(
    "--sample",
    type=click.IntRange(1),
    default=ExportConfig.sample,
    show_default=True,
    help="Verify on at most this many images, spread evenly.",
)
@head_weights_option
@head_backbone_option
@click.option("--example", is_flag=True, help="Print a script that runs the exported file alone, and exit.")
@quiet_option
@click.pass_context
def export(
    ctx: click.Context,
    export_format: str,
    out: Path | None,
    cache: Path,
    images: Path | None,
    sample: int,
    weights: str | None,
    backbone: str | None,
    example: bool,
) -> None:
    """Write backbone, head and softmax as one file that runs without headstart, checked against predict first."""
    report = ctx.ensure_object(Reporter)
    if not (example or out):
        raise click.UsageError("Missing option '--out' (or --example).")
    with errors_as_exit_codes():
        from headstart.console.export import show_export
        from headstart.heads.export import caller_example, export_head

        if example:
            return click.echo(caller_example(export_format), nl=False)
        assert out is not None  # without --example, a missing --out was refused above
        config = ExportConfig(
            out=out, format=export_format, cache=cache, images=images, sample=sample, weights=weights, backbone=backbone
        )
        show_export(report, export_head(config, on_stage=report.note))


@cli.command()
@cache_option
@audit_options
@quiet_option
@click.pass_context
def audit(
    ctx: click.Context,
    cache: Path,
    head_kind: str,
    folds: int,
    score: str,
    near_threshold: float,
    outlier_quantile: float,
    curve_seeds: int,
    report_rows: int,
    backbone: str | None,
) -> None:
    """Audit CACHE/features.h5: label issues, duplicates and leakage, outliers, learning curve -> CACHE/audit/."""
    report = ctx.ensure_object(Reporter)
    with errors_as_exit_codes():
        from headstart.console.audit import show_audit, stage_progress
        from headstart.heads.audit import audit_cache

        config = AuditConfig(
            cache=cache,
            backbone=backbone,
            train=TrainConfig(head=head_kind),
            folds=folds,
            score=score,
            near_threshold=near_threshold,
            outlier_quantile=outlier_quantile,
            curve_seeds=curve_seeds,
            report_rows=report_rows,
        )
        with stage_progress(report) as on_progress:
            result = audit_cache(config, on_progress)
        show_audit(report, result)


# Commands added since the first round live beside their presentation in console/, one line each here.
cli.add_command(backbones_command)
cli.add_command(embeddings_command)
cli.add_command(similar_command)
cli.add_command(info_command)
cli.add_command(suggest.suggest_command)
cli.add_command(apply.apply_command)


def main() -> None:
    """The `headstart` console script: signals handled from the first line on, so outputs stay whole."""
    install_handlers()
    try:
        accept_signals()
        cli(prog_name="headstart")
    except Stopped as stop:  # outside a command's body: while click parsed the options, or printed and exited
        from headstart.features.files.atomic import replaced_paths

        error = interrupted(stop.signum, replaced_paths())
        error.show()
        sys.exit(error.exit_code)
    finally:
        ignore_late_signals()


if __name__ == "__main__":
    main()
