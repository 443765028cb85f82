"""How each command's result is shown: rich tables and summary lines, handed to the Reporter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.table import Table

from headstart.console.multilabel import multilabel_table, overall_line, show_multilabel_training, trust_line
from headstart.console.reporter import Reporter
from headstart.console.trust import show_flagged, show_trust
from headstart.features.folder import count_kinds

if TYPE_CHECKING:
    from headstart.features.extract import ExtractSummary
    from headstart.heads.fit import FitSummary
    from headstart.heads.predict.evaluation import Evaluation

EPOCH_COLUMNS = ("train_loss", "train_acc", "val_loss", "val_acc")
SKIPS_LISTED = 50  # a label table's skipped rows listed one per line; the rest counted


def show_extract_start(report: Reporter, summary: ExtractSummary) -> None:
    """Before any image is read: random weights, a resumed run, or why everything is re-extracted."""
    if summary.weights.kind == "none":
        report.warn("--weights none: features come from a randomly initialised backbone, NOT pretrained")
    if summary.resumed:
        report.note(f"resuming: reusing {summary.resumed} rows an interrupted run had finished")
    if summary.rebuild_reason:
        report.note(f"re-extracting everything: {summary.rebuild_reason}")


def show_extract(report: Reporter, summary: ExtractSummary) -> None:
    """Rows per split, the skipped files and their reasons, the classes and the time taken."""
    table = Table(title=f"{summary.path}  ({summary.weights.describe()}, {summary.device})")
    for column in ("split", "images", "extracted", "reused", "relabelled", "skipped"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for split in summary.splits:
        counts = (split.found, split.extracted, split.reused, split.relabelled, len(split.skipped))
        table.add_row(split.split, *map(str, counts))
    report.table(table)
    if summary.split:
        report.note(summary.split.describe())
    if summary.merged:
        report.note(f"multi-label: {summary.merged} copies in other class folders merged into their images' label sets")
    relabelled = sum(split.relabelled for split in summary.splits)
    if relabelled:
        report.note(
            f"{relabelled} cached image(s) changed class or split: their labels are updated, nothing recomputed"
        )
    for split in summary.splits:
        for name, reason in split.skipped:
            report.warn(f"skipped {name}: {reason}")
    kinds = count_kinds([item for split in summary.splits for item in split.skipped])
    if kinds:
        report.note("skipped, by kind: " + ", ".join(f"{count} {kind}" for kind, count in kinds.items()))
    show_table_skipped(report, summary.table_skipped)
    if summary.excluded:
        report.note(f"{summary.excluded} image(s) left out by --exclude")
    show_shards(report, summary)
    report.note(f"classes: {', '.join(summary.classes)}; done in {summary.seconds:.1f} s")


def show_shards(report: Reporter, summary: ExtractSummary) -> None:
    """The shards an interrupted run left (resumed, discarded) and those the Ray workers wrote."""
    shards = summary.shards
    if shards.resumed or shards.discarded:
        report.note(f"shards of an interrupted run: {shards.resumed} resumed, {shards.discarded} discarded")
    if shards.written:
        report.note(
            f"shards: {shards.written} written by the workers and merged; {shards.driver_bytes} bytes reached this "
            f"process, {shards.feature_bytes} of them feature rows"
        )


def scores_table(summary: dict, title: str) -> Table:
    """scikit-learn's classification report as a table."""
    table = Table(title=title)
    for column in ("class", "precision", "recall", "f1", "support"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name in [*summary["classes"], "macro avg", "weighted avg"]:
        row = summary["report"][name]
        table.add_row(
            name, f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1-score']:.3f}", str(int(row["support"]))
        )
    return table


def confusion_table(summary: dict) -> Table:
    """The confusion matrix as a table, rows the true class."""
    table = Table(title="confusion matrix (rows: true class, columns: predicted)")
    table.add_column("true \\ predicted")
    for name in summary["classes"]:
        table.add_column(name, justify="right")
    for name, row in zip(summary["classes"], summary["confusion"]):
        table.add_row(name, *map(str, row))
    return table


class EpochTable:
    """A callback on_epoch(epoch, metrics) filling a table of the losses and accuracies of each epoch."""

    def __init__(self, head_kind: str):
        self.table = Table(title=f"train-head ({head_kind})")
        for column in ("epoch", "train loss", "train acc", "val loss", "val acc"):
            self.table.add_column(column, justify="right")

    def __call__(self, epoch: int, metrics: dict) -> None:
        self.table.add_row(str(epoch), *[f"{metrics[key]:.4f}" if key in metrics else "-" for key in EPOCH_COLUMNS])


def show_training(report: Reporter, summary: FitSummary, epochs: EpochTable) -> None:
    """The epochs, the last and best epoch on val, val's report and confusion matrix, and the files written."""
    report.table(epochs.table)
    if summary.reading:
        report.note(f"features {summary.reading}")
    metrics = summary.metrics
    if metrics.get("task") == "multi-label":
        return show_multilabel_training(report, summary)
    if "val_acc" in metrics:
        best = metrics["best_epoch"]
        report.note(
            f"last epoch ({metrics['epoch']}): val acc {metrics['val_acc']:.4f}, "
            f"val loss {metrics['val_loss']:.4f} — this is the head saved"
        )
        report.note(
            f"best epoch ({best['epoch']}): val acc {best['val_acc']:.4f}, val loss {best['val_loss']:.4f}"
            " — chosen on val itself, so an optimistic estimate"
        )
        report.table(scores_table(metrics["val_report"], "val split, last epoch"))
        report.table(confusion_table(metrics["val_report"]))
    else:
        report.warn(
            "no val rows: nothing held out scores this head; run `headstart sweep` to choose and score it by "
            "cross-validation on train, or extract with a val split (--val-fraction for a folder without train/)"
        )
    if metrics.get("test_report"):
        test = metrics["test_report"]
        report.table(scores_table(test, "test split, scored once, never used to choose"))
        report.note(f"test accuracy {test['accuracy']:.4f} (the head saved; test chose nothing)")
    show_trust(report, metrics)
    if summary.trust.skipped:
        report.warn(f"no unknown-image model and no temperature: {summary.trust.skipped}")
    if summary.header.weights.kind == "none":
        report.warn("these features come from a randomly initialised backbone, NOT pretrained")
    for name in summary.untrained_classes:
        report.warn(f"class {name} has no training rows: the head never learned it (add images to train/{name})")
    counts = ", ".join(f"{n} {split}" for split, n in summary.counts.items())
    report.note(
        f"trained on {counts} rows in {summary.seconds:.2f} s -> {summary.head_path}, "
        f"{summary.metrics_path}, {summary.curves_path}, {summary.calibration_path}"
    )


def show_table_skipped(report: Reporter, skipped: list[tuple[str, str]]) -> None:
    """A label table's skipped rows: the first few listed, then the count."""
    for name, reason in skipped[:SKIPS_LISTED]:
        report.warn(f"skipped {name}: {reason}")
    if skipped:
        more = len(skipped) - SKIPS_LISTED
        report.warn(
            f"{len(skipped)} table row(s) skipped{f' ({more} more not listed)' if more > 0 else ''}; "
            "--strict makes such a row fatal"
        )


def _mistakes_table(mistakes: list, show: int, title: str) -> Table:
    """The `show` most confidently wrong images (or label sets) of an evaluation."""
    table = Table(title=f"{title} ({min(show, len(mistakes))} of {len(mistakes)})")
    for column in ("path", "true", "predicted", "confidence"):
        table.add_column(column, justify="right" if column == "confidence" else "left", overflow="fold")
    for mistake in mistakes[:show]:
        table.add_row(mistake.path, mistake.true, mistake.predicted, f"{mistake.confidence:.4f}")
    return table


def show_multilabel_evaluation(report: Reporter, folder: Path, evaluation: Evaluation, show: int, out: Path) -> None:
    """A multi-label head on a folder: per-label scores, the overall line, the `show` most confidently wrong sets."""
    summary, mistakes = evaluation.summary, evaluation.mistakes
    report.table(multilabel_table(summary, f"{folder}: {summary['rows']} images"))
    if mistakes and show:
        report.table(_mistakes_table(mistakes, show, "most confidently wrong sets"))
    for path, reason in evaluation.failed:
        report.warn(f"could not read {path}: {reason}")
    report.note(f"{overall_line(summary)}; {len(mistakes)} wrong sets -> {out}")


def show_evaluation(report: Reporter, folder: Path, evaluation: Evaluation, show: int, out: Path) -> None:
    """Accuracy, the per-class report, the confusion matrix and the `show` most confidently wrong images."""
    summary, mistakes = evaluation.summary, evaluation.mistakes
    if summary.get("task") == "multi-label":
        return show_multilabel_evaluation(report, folder, evaluation, show, out)
    report.table(scores_table(summary, f"{folder}: accuracy {summary['accuracy']:.4f}"))
    report.table(confusion_table(summary))
    if mistakes and show:
        report.table(_mistakes_table(mistakes, show, "most confidently wrong"))
    for path, reason in evaluation.failed:
        report.warn(f"could not read {path}: {reason}")
    if evaluation.from_table:
        show_table_skipped(report, evaluation.skipped)
    else:
        for path, reason in evaluation.skipped:
            report.warn(f"skipped {path}: {reason}")
        if evaluation.skipped:
            kinds = count_kinds(evaluation.skipped)
            report.note("skipped, by kind: " + ", ".join(f"{count} {kind}" for kind, count in kinds.items()))
    if evaluation.training:
        report.warn(
            f"{evaluation.training} of the {evaluation.images - len(evaluation.failed)} images evaluated are training "
            "images of this cache (same content as its train split): this accuracy is not a held-out score"
        )
    scored = evaluation.images - len(evaluation.failed)
    show_flagged(report, evaluation.flagged, scored, evaluation.unknown_rate, None, evaluation.no_unknown)
    report.note(f"{evaluation.images} images, accuracy {summary['accuracy']:.4f}; {len(mistakes)} wrong -> {out}")


def show_info(report: Reporter, cache: Path, described: dict) -> None:
    """describe_cache's dict as a table of rows per split and class, the provenance line and the head's scores."""
    if not described["backbones"]:
        report.note(f"{cache} holds no features.h5: run `extract`")
    for features in described["backbones"].values():
        _show_features(report, cache, features)
    head = described["head"]
    if head is None:
        report.note(f"{cache} holds no head.pt: run `train-head`")
    else:
        metrics = head["metrics"]
        scores = ", ".join(f"{key} {metrics[key]:.4f}" for key in EPOCH_COLUMNS if key in metrics)
        report.note(f"head ({head['train_config'].get('head', 'sgd')}): {scores}")
        if head.get("task") != "multi-label":
            show_trust(report, metrics)
            return
        report.note(trust_line(metrics))
        if head["no_unknown"]:
            report.warn(f"the head carries no unknown model ({head['no_unknown']})")


def _show_features(report: Reporter, cache: Path, features: dict) -> None:
    table = Table(title=f"{cache / features['file']} (created {features['created']})")
    table.add_column("split")
    for name in features["classes"]:
        table.add_column(name, justify="right")
    table.add_column("rows", justify="right")
    table.add_column("skipped", justify="right")
    for split, counts in features["splits"].items():
        table.add_row(split, *map(str, counts["per_class"].values()), str(counts["rows"]), str(counts["skipped"]))
    if features.get("pool"):
        pool = features["pool"]
        table.add_row("pool (unlabeled)", *["-"] * len(features["classes"]), str(pool["rows"]), str(pool["skipped"]))
    report.table(table)
    if features.get("task") == "multi-label":
        empty = ", ".join(f"{split} {counts.get('no_label', 0)}" for split, counts in features["splits"].items())
        report.note(f"multi-label: a row counts under each of its labels; rows with no label: {empty}")
    for split, counts in features["splits"].items():
        if counts.get("skipped_by_kind"):
            kinds = ", ".join(f"{count} {kind}" for kind, count in counts["skipped_by_kind"].items())
            report.note(f"{split} skipped, by kind: {kinds}")
    if features.get("split"):
        from headstart.features.sources.rule import SplitRule

        report.note(SplitRule.from_dict(features["split"]).describe())
    weights = features["weights"]
    report.note(
        f"backbone {features['backbone']}, weights {weights['name']} "
        f"({weights['sha256'][:12] or 'random init, NOT pretrained'}), preprocessing "
        f"{features['preprocessing']['name']}, precision {features['precision']}, "
        f"torch {features['torch_version']}, torchvision {features['torchvision_version']}"
    )


def show_backbones(report: Reporter, described: list[dict], as_json: bool = False) -> None:
    """describe_backbones' list as one table, a row per backbone and one for the timm form (or as JSON)."""
    if as_json:
        click.echo(json.dumps(described, indent=2, allow_nan=False))
        return
    table = Table(title="backbones (extract --backbone NAME)")
    for column in ("name", "width", "input", "GFLOPs", "preprocessing", "default weights", "cached"):
        table.add_column(column, justify="right" if column in ("width", "input", "GFLOPs") else "left", overflow="fold")
    for entry in described:
        if entry["source"] == "timm":
            state = f"timm {entry['timm_version']} installed" if entry["installed"] else f"no timm: {entry['install']}"
            table.add_row(entry["name"], "model's", "model's", "-", "timm's data config", "timm's cache", state)
            continue
        table.add_row(
            entry["name"],
            str(entry["width"]),
            str(entry["input_size"]),
            f"{entry['gflops']:.2f}",
            _preprocessing_cell(entry["preprocessing"]),
            entry["weights"],
            "yes" if entry["weights_cached"] else "no",
        )
    report.table(table)


def _preprocessing_cell(preprocessing: dict) -> str:
    """resize -> crop, interpolation, and mean/std when they are not ImageNet's."""
    from headstart.features.provenance import IMAGENET_MEAN, IMAGENET_STD

    cell = f"{preprocessing['resize']}->{preprocessing['crop']} {preprocessing['interpolation'].split(',')[0]}"
    if (tuple(preprocessing["mean"]), tuple(preprocessing["std"])) != (IMAGENET_MEAN, IMAGENET_STD):
        cell += f", mean {preprocessing['mean']}, std {preprocessing['std']}"
    return cell
