"""The sweep command's options, and what it prints: the ten best settings, the chosen one and its val score."""

from __future__ import annotations

import click
from rich import box
from rich.table import Table

from headstart.console.options import SEED_MAX, cache_option, pick_backbone_option
from headstart.console.reporter import Reporter
from headstart.console.views import confusion_table, scores_table
from headstart.heads.config import SweepConfig

TOP = 10
_OPTIONS = [
    cache_option,
    click.option(
        "--folds",
        type=click.IntRange(2),
        default=SweepConfig().folds,
        show_default=True,
        help="Stratified cross-validation folds of the train split.",
    ),
    click.option(
        "--grid",
        type=click.Path(dir_okay=False),
        default=SweepConfig().grid,
        help="A .toml or .json grid of head settings (format in heads/sweep/grid.py)  "
        "[default: 99 settings around the tutorial's recipe]",
    ),
    click.option(
        "--seed",
        type=click.IntRange(0, SEED_MAX),
        default=SweepConfig().seed,
        show_default=True,
        help="Seeds the folds and every head: the same seed gives the same choice.",
    ),
    pick_backbone_option,
]
_COLUMNS = {
    "lr": "lr",
    "epochs": "ep",
    "momentum": "mom",
    "weight_decay": "wd",
    "batch_size": "batch",
    "c": "C",
    "class_weight": "weights",
}


def _cell(setting, key: str, keys: tuple[str, ...]) -> str:
    if key not in keys:
        return ""
    return setting.class_weight if key == "class_weight" else f"{getattr(setting, key):g}"


def sweep_options(command):
    """The sweep command's options: --cache, and one per SweepConfig field (defaulting to it)."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def sweep_table(result, path) -> Table:
    """The TOP best settings, best first, as sweep.csv ranks them; a cell a head has no setting for stays empty."""
    from headstart.heads.sweep.grid import SECTIONS

    table = Table(
        title=f"top {min(TOP, len(result.scores))} of {len(result.scores)} settings, {result.folds}-fold "
        f"cross-validation of the train split (all in {path}); a C is logreg's",
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
    )
    scored = "cv mAP" if result.metric == "map" else "cv acc"  # mAP: a multi-label sweep's
    for column in ("#", *_COLUMNS.values(), scored, "cv loss"):
        table.add_column(column, justify="left" if column == "weights" else "right", no_wrap=True)
    for rank, scores in enumerate(result.ranked()[:TOP], 1):
        setting = scores.setting
        table.add_row(
            str(rank),
            *[_cell(setting, key, SECTIONS[setting.head]) for key in _COLUMNS],
            f"{scores.acc_mean:.3f}±{scores.acc_std:.3f}",
            f"{scores.loss_mean:.3f}±{scores.loss_std:.3f}",
        )
    return table


def show_sweep(report: Reporter, summary) -> None:
    """The ranking, the chosen setting refit on the whole train split, its one val score, and the files written."""
    from headstart.heads.sweep.grid import describe_setting

    result, fit = summary.cross_validation, summary.fit
    report.table(sweep_table(result, summary.sweep_path))
    kinds = {kind: sum(s.setting.head == kind for s in result.scores) * result.folds for kind in result.head_seconds}
    report.note(
        f"{result.heads} heads ({len(result.scores)} settings x {result.folds} folds) in {result.seconds:.2f} s: "
        + ", ".join(
            f"{count} {kind} in {result.head_seconds[kind]:.2f} s "
            f"({count / max(result.head_seconds[kind], 1e-9):.0f}/s)"
            for kind, count in kinds.items()
        )
    )
    sampled = fit.metrics.get("sweep", {}).get("sampled_train_rows")
    if sampled is not None:  # a cache above the in-memory limit (heads/fit.py's _streamed_choice)
        left_out = fit.metrics["sweep"].get("logreg_left_out", 0)
        report.note(
            f"cross-validated on a stratified sample of {sampled:,} of the {fit.metrics['sweep']['train_rows']:,} "
            f"train rows (the features are above the in-memory limit); {left_out} logreg settings left out"
        )
    winner = result.winner
    scored = "cv mAP" if result.metric == "map" else "cv acc"
    report.note(
        f"chosen: {describe_setting(winner.setting)} ({scored} {winner.acc_mean:.4f} ± {winner.acc_std:.4f}), "
        f"refit on all {fit.counts['train']} train rows"
    )
    metrics = fit.metrics
    if result.metric == "map":
        _show_multilabel_sweep(report, summary)
    elif "val_acc" in metrics:
        report.note(
            f"val ({fit.counts['val']} rows, read once, after the choice): acc {metrics['val_acc']:.4f}, "
            f"loss {metrics['val_loss']:.4f} — an honest estimate of the chosen head"
        )
        report.table(scores_table(metrics["val_report"], "val split, the chosen head"))
        report.table(confusion_table(metrics["val_report"]))
    if fit.header.weights.kind == "none":
        report.warn("these features come from a randomly initialised backbone, NOT pretrained")
    report.note(f"-> {fit.head_path}, {fit.metrics_path}, {fit.curves_path}, {summary.sweep_path}")
    if summary.previous_head is not None:
        report.note(
            f"the head this sweep replaced is kept as {summary.previous_head} "
            f"(copy it over {fit.head_path} to go back to it)"
        )


def _show_multilabel_sweep(report: Reporter, summary) -> None:
    """A multi-label sweep's chosen head on val (per label, then overall) and the logreg settings left out."""
    from headstart.console.multilabel import multilabel_table, overall_line

    left_out = summary.fit.metrics.get("sweep", {}).get("logreg_left_out", 0)
    if left_out:
        report.note(f"{left_out} logreg setting(s) of the grid left out: a multi-label head is trained by SGD")
    scored = summary.fit.metrics.get("val_report")
    if scored:
        report.table(multilabel_table(scored, "val split, the chosen head (read once, after the choice)"))
        report.note(f"val: {overall_line(scored)}")
