"""The train-head step: cached features -> trained head -> head.pt, metrics.json, curves.png and calibration.png."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

import torch

from headstart.features import FeaturesHeader, FeatureStore, StoreError, cache_lock
from headstart.features.chunks import ReadingPlan, iter_chunks, read_labels, reading_plan
from headstart.features.files.atomic import replace_together
from headstart.features.files.cachedir import CALIBRATION_FILE, CURVES_FILE, HEAD_FILE, METRICS_FILE, chosen_features
from headstart.heads.checkpoint import HeadCheckpoint, save_head
from headstart.heads.config import TrainConfig
from headstart.heads.logreg import train_logreg
from headstart.heads.multilabel.fit import fit_multilabel
from headstart.heads.plots import Plots, PlotsHere, Png
from headstart.heads.report import classification_summary
from headstart.heads.streaming import has_rows, predicted_streamed, train_streamed
from headstart.heads.train import TrainResult, train_sgd
from headstart.heads.trust.config import TrustConfig
from headstart.heads.trust.fit import Trust, fit_trust
from headstart.heads.trust.streamed import fit_trust_streamed, read_sample, sample_rows


@dataclass(frozen=True)
class Choice:
    """A setting chosen from the train rows alone (the sweep), before val is read, and what is saved with it."""

    config: TrainConfig
    metrics: dict  # merged into metrics.json and the head's metrics
    outputs: dict[str, Callable[[Path], None]]  # file name in the cache -> writer, replaced together with the head


@dataclass
class FitSummary:
    """What a train-head run wrote and measured, for the report."""

    head_path: Path
    metrics_path: Path
    curves_path: Path
    classes: list[str]
    counts: dict[str, int]
    header: FeaturesHeader
    result: TrainResult
    metrics: dict
    seconds: float
    trust: Trust
    calibration_path: Path | None = None
    untrained_classes: list[str] = field(default_factory=list)  # classes with no training row: never learned
    reading: str = ""  # how the rows were read: into memory, or streamed in chunks (features/chunks.py)


@dataclass
class _Fitted:
    """What either path (rows in memory, or streamed) trained and measured, before it is saved."""

    choice: Choice
    result: TrainResult
    trusted: Trust
    metrics: dict
    counts: dict[str, int]
    untrained: list[str]
    pngs: dict[str, Png]


def _tensors(store: FeatureStore, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    rows = store.read(split)
    return torch.from_numpy(rows.features), torch.from_numpy(rows.labels)


def best_epoch(history: list[dict]) -> dict | None:
    """The epoch with the highest val accuracy (then lowest val loss). Chosen on val, so its score is optimistic."""
    scored = [entry for entry in history if "val_acc" in entry]
    return max(scored, key=lambda entry: (entry["val_acc"], -entry["val_loss"])) if scored else None


def _val_summary(result: TrainResult, val: tuple[torch.Tensor, torch.Tensor] | None, classes: list[str]) -> dict | None:
    if val is None:
        return None
    with torch.inference_mode():
        predicted = result.head(val[0]).argmax(1).numpy()
    return classification_summary(val[1].numpy(), predicted, classes)


def _read_rows(store: FeatureStore, given: Choice, choose: Callable | None):
    """The train rows, the setting (chosen from the train rows alone when `choose` is given), then the val rows."""
    train = _tensors(store, "train")
    if not len(train[1]):
        raise StoreError(f"{store.path} has no training rows: check the dataset and re-run `extract`")
    if len(train[1]) > 1 and not bool((train[0] != train[0][:1]).any()):  # nothing to learn, nor a covariance
        raise StoreError(f"{store.path}: every training row has the same features (all zero?): re-run `extract`")
    choice = choose(train, list(store.header.classes)) if choose else given
    val = _tensors(store, "val") if "val" in store.splits and store.count("val") else None
    return train, val, choice


def _train(
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor] | None,
    num_classes: int,
    config: TrainConfig,
    on_epoch: Callable[[int, dict], None] | None,
) -> TrainResult:
    if config.head == "logreg":
        result = train_logreg(train, val, num_classes, config)
        if on_epoch:
            on_epoch(1, result.final)
        return result
    return train_sgd(train, val, num_classes, config, on_epoch)


def _metrics(result: TrainResult, val_report: dict | None, choice: Choice, trusted: Trust) -> dict:
    """What metrics.json and the head record: the last epoch, the history, the best epoch, val's report, the
    sweep's choice and the trust records."""
    return {
        **result.final,
        "history": result.history,
        "best_epoch": best_epoch(result.history),
        "val_report": val_report,
        **choice.metrics,
        **trusted.metrics(),
    }


def _check_trained(result: TrainResult, config: TrainConfig, labels: torch.Tensor, classes: list[str]) -> list[str]:
    """The classes without a training row (the head never learned them); a head whose weights or losses are not
    finite labels everything wrong, so it is refused: it never replaces a good one."""
    train_finite, val_finite = (
        all(math.isfinite(entry.get(key, 0.0)) for entry in result.history) for key in ("train_loss", "val_loss")
    )
    weights_finite = all(bool(torch.isfinite(tensor).all()) for tensor in result.head.state_dict().values())
    if weights_finite and train_finite and not val_finite:
        raise ValueError(
            "the val loss is not finite while training's is: some val features are not finite or too "
            "large (a damaged or foreign features.h5?): the previous head is kept; extract again into "
            "a new --cache"
        )
    if not weights_finite or not train_finite:
        raise ValueError(
            f"training diverged: the head's {'loss' if weights_finite else 'weights'} became not finite "
            f"(--lr {config.lr} is too large for these features): the previous head is kept; "
            "lower --lr and run again"
        )
    return [name for label, name in enumerate(classes) if not bool((labels == label).any())]


def _save(
    cache: Path, choice: Choice, pngs: dict[str, Png], metrics: dict, checkpoint: HeadCheckpoint, features_file: Path
) -> None:
    """All or none: a failure (a full disk, Ctrl-C) leaves the previous head, metrics, plots (and sweep) together.
    The head is renamed into place last: the other files describe it."""
    paths = [cache / name for name in (*choice.outputs, *pngs, METRICS_FILE, HEAD_FILE)]
    with replace_together(*paths) as (*temporaries, metrics_tmp, head_tmp):
        writers = [*choice.outputs.values(), *(lambda path, png=png: path.write_bytes(png()) for png in pngs.values())]
        for write, temporary in zip(writers, temporaries):
            write(temporary)
        with open(metrics_tmp, "w", encoding="utf-8") as out:
            json.dump(metrics, out, indent=2, allow_nan=False)
        save_head(head_tmp, checkpoint, features_file=str(features_file))


def _fit_multilabel(
    store: FeatureStore, cache: Path, config: TrainConfig, on_epoch, choose, plots: Plots, started: float, unset, trust
) -> FitSummary:
    """train-head on a multi-label features file (heads/multilabel/): head.pt, metrics.json, curves.png and
    calibration.png (val's reliability, every label pooled); the
    options in `unset` follow the multi-label recipe (heads/multilabel/recipe.py). With `choose` (the sweep), its
    chosen setting is trained as it is."""
    choice = _multilabel_choice(store, config, choose)
    fitted = fit_multilabel(store, choice.config, on_epoch, unset if choose is None else (), trust)
    fitted.metrics |= choice.metrics
    config, trusted = fitted.config, fitted.trust
    _check_trained(fitted.result, config, torch.zeros(0, dtype=torch.int64), [])
    header, classes = store.header, list(store.header.classes)
    head = trusted.head
    records = (header.backbone, header.weights.to_dict(), header.preprocessing.describe(), header.precision)
    checkpoint = HeadCheckpoint(
        head, classes, *records, config.to_dict(), fitted.metrics, trusted.unknown, trusted.calibration, fitted.record
    )
    record = {**fitted.metrics, "classes": classes, "counts": fitted.counts, "train_config": config.to_dict()}
    curves = plots.start("curves", {"history": fitted.result.history})
    calibration = plots.start("calibration", trusted.plot)
    _save(cache, choice, {CURVES_FILE: curves, CALIBRATION_FILE: calibration}, record, checkpoint, store.path)
    return FitSummary(
        *(cache / HEAD_FILE, cache / METRICS_FILE, cache / CURVES_FILE, classes, fitted.counts, header),
        *(fitted.result, fitted.metrics, time.perf_counter() - started),
        trust=Trust(head, None, trusted.unknown, None, None, skipped=trusted.skipped),
        calibration_path=cache / CALIBRATION_FILE,
        untrained_classes=fitted.untrained,
    )


def _multilabel_choice(store: FeatureStore, config: TrainConfig, choose: Callable | None) -> Choice:
    """The sweep's choice on multi-label features, from the train rows' label sets alone (before val is read); without
    `choose`, the given setting."""
    if choose is None:
        return Choice(config, {}, {})
    rows = store.read("train") if "train" in store.splits else None
    if rows is None or not len(rows) or rows.label_sets is None:
        raise StoreError(f"{store.path} has no training rows: check the dataset and re-run `extract`")
    label_sets = torch.from_numpy(rows.label_sets.astype("float32"))
    return choose((torch.from_numpy(rows.features), label_sets), list(store.header.classes))


def fit_head(
    cache: str | Path,
    config: TrainConfig = TrainConfig(),
    on_epoch: Callable[[int, dict], None] | None = None,
    choose: Callable[..., Choice] | None = None,
    trust: TrustConfig = TrustConfig(),
    command: str = "train-head",
    plots: Plots = PlotsHere(),
    backbone: str | None = None,
    unset: Collection[str] = (),
) -> FitSummary:
    """Train on the cached train split, score on val each epoch, fit the unknown-image model and the temperature
    (heads/trust), save the head, its metrics and its plots (drawn by `plots`). With `choose` (the sweep), the setting
    is choose(train rows, classes)'s, decided before val is read; `command` names the lock's holder to a concurrent
    command. `backbone` picks the features file when the cache holds several (features/files/cachedir.py). `unset`:
    the options the user left at their defaults, which a multi-label head takes from its own recipe."""
    started = time.perf_counter()
    cache = Path(cache)
    features = chosen_features(cache, backbone)
    if not cache.is_dir():  # checked before taking the lock, which would create the folder
        raise StoreError(f"{features} does not exist: run `extract` first")
    with cache_lock(cache, command):
        with FeatureStore(features) as store:
            if store.header.multi_label:
                return _fit_multilabel(store, cache, config, on_epoch, choose, plots, started, unset, trust)
            header, plan = store.header, reading_plan(store)
            fitting = _fit_streamed if plan.streamed else _fit_in_memory
            fitted = fitting(store, plan, config, on_epoch, choose, trust, plots)
        classes, config = list(header.classes), fitted.choice.config
        checkpoint = HeadCheckpoint(
            fitted.trusted.head,
            classes,
            header.backbone,
            header.weights.to_dict(),
            header.preprocessing.describe(),
            header.precision,
            config.to_dict(),
            fitted.metrics,
            **fitted.trusted.records(),
        )
        record = {**fitted.metrics, "classes": classes, "counts": fitted.counts, "train_config": config.to_dict()}
        _save(cache, fitted.choice, fitted.pngs, record, checkpoint, store.path)
    return FitSummary(
        cache / HEAD_FILE,
        cache / METRICS_FILE,
        cache / CURVES_FILE,
        classes,
        fitted.counts,
        header,
        fitted.result,
        fitted.metrics,
        time.perf_counter() - started,
        trust=fitted.trusted,
        calibration_path=cache / CALIBRATION_FILE,
        untrained_classes=fitted.untrained,
        reading=plan.describe(),
    )


def _fit_in_memory(store: FeatureStore, plan: ReadingPlan, config, on_epoch, choose, trust, plots) -> _Fitted:
    """Every labelled row in memory (the plan is within the limit): today's path, bit for bit."""
    train, val, choice = _read_rows(store, Choice(config, {}, {}), choose)
    test = _tensors(store, "test") if "test" in store.splits and store.count("test") else None
    classes, config = list(store.header.classes), choice.config
    result = _train(train, val, len(classes), config, on_epoch)
    untrained = _check_trained(result, config, train[1], classes)
    curves_png = plots.start("curves", {"history": result.history})  # drawn while the trust models are fitted
    trusted = fit_trust(result.head, train, val, config, trust)
    calibration_png = plots.start("calibration", trusted.reliability_plot())
    counts = {"train": len(train[1]), "val": len(val[1]) if val is not None else 0}
    metrics = _metrics(result, _val_summary(result, val, classes), choice, trusted)
    if test is not None:  # scored once, after everything is chosen: reported, never used to choose
        counts["test"] = len(test[1])
        metrics["test_report"] = _val_summary(result, test, classes)
    pngs = {CURVES_FILE: curves_png, CALIBRATION_FILE: calibration_png}
    return _Fitted(choice, result, trusted, metrics, counts, untrained, pngs)


def _refuse_streamed(store: FeatureStore, plan: ReadingPlan, config: TrainConfig, trust: TrustConfig) -> None:
    """The steps that hold every row refuse a streamed cache, naming the alternative; so do untrainable rows."""
    if config.head == "logreg":
        plan.refuse("--head logreg", "use --head sgd (the default recipe), which streams a cache of any size")
    if trust.unknown_method == "knn":
        plan.refuse("--unknown-method knn", "use --unknown-method mahalanobis, which is fitted a chunk at a time")
    if not has_rows(store, "train"):
        raise StoreError(f"{store.path} has no training rows: check the dataset and re-run `extract`")
    first = store.read_vectors("train", slice(0, 1))[0]
    for _, features, _ in iter_chunks(store, "train", plan.chunk_rows):  # usually the first chunk settles it
        if bool((features != first).any()):
            return
    raise StoreError(f"{store.path}: every training row has the same features (all zero?): re-run `extract`")


def _fit_streamed(store: FeatureStore, plan: ReadingPlan, config, on_epoch, choose, trust, plots) -> _Fitted:
    """The rows above the in-memory limit: SGD, trust and the reports a chunk at a time (heads/streaming.py)."""
    choice = Choice(config, {}, {}) if choose is None else _streamed_choice(store, plan, config, choose)
    config = choice.config
    _refuse_streamed(store, plan, config, trust)
    classes = list(store.header.classes)
    result = train_streamed(store, plan, len(classes), config, on_epoch)
    labels = torch.from_numpy(read_labels(store, "train"))
    untrained = _check_trained(result, config, labels, classes)
    curves_png = plots.start("curves", {"history": result.history})
    trusted = fit_trust_streamed(result.head, store, plan, config, trust)
    calibration_png = plots.start("calibration", trusted.reliability_plot())
    counts = {"train": len(labels), "val": store.count("val") if has_rows(store, "val") else 0}
    reports = {
        split: classification_summary(*predicted_streamed(result.head, store, split, plan), classes)
        for split in ("val", "test")
        if has_rows(store, split)
    }
    metrics = {**_metrics(result, reports.get("val"), choice, trusted), "reading": plan.describe()}
    if "test" in reports:
        counts["test"] = store.count("test")
        metrics["test_report"] = reports["test"]
    pngs = {CURVES_FILE: curves_png, CALIBRATION_FILE: calibration_png}
    return _Fitted(choice, result, trusted, metrics, counts, untrained, pngs)


def _streamed_choice(store: FeatureStore, plan: ReadingPlan, config: TrainConfig, choose: Callable) -> Choice:
    """The sweep above the limit: its grid's SGD settings cross-validated on a seeded stratified sample of the train
    rows as large as the limit (heads/trust/streamed.py's), before val is read; the winner then trains on every row,
    streamed. Its record says how many rows the sample held."""
    labels = read_labels(store, "train")
    sample = read_sample(store, plan, sample_rows(labels, plan.limit_rows, config.seed))
    choice = choose(sample, list(store.header.classes), streamed=True)
    choice.metrics.setdefault("sweep", {}).update({"sampled_train_rows": len(sample[1]), "train_rows": len(labels)})
    return choice
