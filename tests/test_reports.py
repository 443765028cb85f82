"""cli.py's reports: train-head's scores, curves and logreg head; evaluate; predict --top-k, --format, --out -;
info; and the CLI's manners (help, version, console script, --quiet, colour, progress bars)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
import pytest
import torch
from cli_helpers import assert_error, assert_ok, read_csv
from cli_helpers import run as _run
from click.testing import CliRunner, Result
from conftest import ROOT, make_dataset, make_image
from PIL import Image

import headstart.console.reporter as reporter_module
from headstart import cli
from headstart.features import __version__
from headstart.features.store import FeatureStore
from headstart.heads.checkpoint import load_head

CLASSES = ["ants", "bees", "wasps"]
WIDE = {"COLUMNS": "250"}  # rich wraps at 80 columns when not a terminal; a wide console keeps one row per line
COLOUR_VARIABLES = ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLORTERM", "CLICOLOR_FORCE")


def run(*args) -> Result:
    return _run(*args, env=WIDE)


def csv_header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as handle:
        return next(csv.reader(handle))


def table_rows(output: str) -> list[list[str]]:
    """The body rows of every rich table in output, as lists of stripped cells."""
    return [
        [cell.strip() for cell in line.strip().strip("│").split("│")]
        for line in output.splitlines()
        if line.strip().startswith("│")
    ]


def scores_rows(summary: dict) -> list[list[str]]:
    """The rows cli.py's per-class table should show for a classification summary."""
    return [
        [name, f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1-score']:.3f}", str(int(row["support"]))]
        for name, row in (
            (name, summary["report"][name]) for name in [*summary["classes"], "macro avg", "weighted avg"]
        )
    ]


def sklearn_summary(truth: list[int], predicted: list[int], classes: list[str]) -> dict:
    """classification_report and confusion_matrix computed here, independently of heads/report.py."""
    from sklearn.metrics import classification_report, confusion_matrix

    labels = list(range(len(classes)))
    return {
        "classes": classes,
        "report": classification_report(
            truth, predicted, labels=labels, target_names=classes, output_dict=True, zero_division=0
        ),
        "confusion": confusion_matrix(truth, predicted, labels=labels).tolist(),
    }


def plain_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in COLOUR_VARIABLES}
    return env | WIDE | extra


def cli_process(*args, env: dict | None = None, timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "cli.py", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or plain_env(),
    )


def console_script() -> str:
    """The `headstart` entry point of setup.cfg, installed beside this interpreter (pip install -e .)."""
    beside = Path(sys.executable).with_name("headstart")
    found = str(beside) if beside.is_file() else shutil.which("headstart")
    if not found:
        pytest.fail(f"no `headstart` console script beside {sys.executable}: run `pip install --no-deps -e .`")
    return found


def script_process(*args, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [console_script(), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        env=env or plain_env(),
    )


def cached(cache: Path, split: str):
    with FeatureStore(cache / "features.h5") as store:
        return store.read(split)


def head_probabilities(cache: Path, features: np.ndarray) -> np.ndarray:
    head = load_head(cache / "head.pt").head
    with torch.no_grad():
        return torch.softmax(head(torch.from_numpy(features)), dim=1).numpy()


# --- one small 3-class dataset, extracted and trained once for the module ---------------------------------------


@dataclass
class Pipeline:
    data: Path
    cache: Path
    train: Result | None = None

    @property
    def metrics(self) -> dict:
        return json.loads((self.cache / "metrics.json").read_text())


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> Pipeline:
    """Unequal classes (train 5/4/4, val 3/3/2), so per-class counts are told apart; SGD head over 6 epochs."""
    work = tmp_path_factory.mktemp("reports")
    data = make_dataset(work / "data", classes=CLASSES, per_class={"train": 4, "val": 3})
    make_image(data / "train" / "ants" / "ants_extra.jpg", seed=500)
    (data / "val" / "wasps" / "wasps_2.jpg").unlink()
    cache = work / "cache"
    assert_ok(run("extract", "--data", data, "--cache", cache, "--weights", "none", "--workers", 0))
    train = run("train-head", "--cache", cache, "--epochs", 6, "--lr", 0.01)
    assert_ok(train)
    return Pipeline(data, cache, train)


@pytest.fixture(scope="module")
def binary(tmp_path_factory) -> Pipeline:
    """A 2-class dataset, extracted only (the logreg tests train on copies of its features)."""
    work = tmp_path_factory.mktemp("binary")
    data = make_dataset(work / "data", per_class={"train": 5, "val": 3})
    cache = work / "cache"
    assert_ok(run("extract", "--data", data, "--cache", cache, "--weights", "none", "--workers", 0))
    return Pipeline(data, cache)


def copy_features(source: Path, cache: Path) -> Path:
    cache.mkdir(parents=True)
    shutil.copy(source / "features.h5", cache / "features.h5")
    return cache


# --- train-head: curves, val report, last vs best epoch ------------------------------------------------------------


def test_train_head_writes_curves_png(pipeline):
    path = pipeline.cache / "curves.png"
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (1000, 400)  # figsize (10, 4) at dpi 100
        pixels = np.asarray(image.convert("RGB")).astype(int)
    assert pixels.var() > 0
    # The train (matplotlib's C0 blue) and val (C1 orange) curves are drawn, not only empty axes.
    for colour in ((31, 119, 180), (255, 127, 14)):
        assert (np.abs(pixels - colour).sum(axis=2) <= 6).sum() > 100, colour


def test_train_head_val_report_matches_sklearn(pipeline):
    metrics = pipeline.metrics
    val = cached(pipeline.cache, "val")
    predicted = head_probabilities(pipeline.cache, val.features).argmax(1)
    expected = sklearn_summary(val.labels.tolist(), predicted.tolist(), CLASSES)
    summary = metrics["val_report"]
    assert summary["classes"] == CLASSES
    assert summary["report"] == expected["report"]
    assert summary["confusion"] == expected["confusion"]
    confusion = np.array(summary["confusion"])
    assert confusion.sum() == len(val) == metrics["counts"]["val"] == 8
    assert confusion.sum(axis=1).tolist() == [3, 3, 2]  # rows are the true classes
    assert np.trace(confusion) / confusion.sum() == metrics["val_acc"]
    assert summary["accuracy"] == metrics["val_acc"]


def test_train_head_prints_report_and_confusion(pipeline):
    output = pipeline.train.output
    summary = pipeline.metrics["val_report"]
    assert "val split, last epoch" in output
    assert "confusion matrix (rows: true class, columns: predicted)" in " ".join(output.split())  # title may wrap
    rows = table_rows(output)
    for row in scores_rows(summary):
        assert row in rows, (row, output)
    supports = {row[0]: row[-1] for row in rows if len(row) == 5}
    assert [supports[name] for name in [*CLASSES, "macro avg"]] == ["3", "3", "2", "8"]  # the val rows per class
    for name, counts in zip(CLASSES, summary["confusion"]):
        assert [name, *map(str, counts)] in rows, (name, counts, output)


def test_train_head_reports_last_and_best_epoch(pipeline):
    metrics = pipeline.metrics
    history = metrics["history"]
    assert [entry["epoch"] for entry in history] == [1, 2, 3, 4, 5, 6]
    best = metrics["best_epoch"]
    assert best in history
    assert best["val_acc"] == max(entry["val_acc"] for entry in history)
    assert best == max(history, key=lambda entry: (entry["val_acc"], -entry["val_loss"]))  # ties: lowest val loss
    assert history[-1] == {key: metrics[key] for key in history[-1]}  # the saved head is the last epoch's
    lines = pipeline.train.output.splitlines()
    last_line = [line for line in lines if line.startswith("last epoch")]
    best_line = [line for line in lines if line.startswith("best epoch")]
    assert last_line == [
        f"last epoch (6): val acc {metrics['val_acc']:.4f}, val loss {metrics['val_loss']:.4f} — this is the head saved"
    ]
    assert len(best_line) == 1
    assert best_line[0].startswith(
        f"best epoch ({best['epoch']}): val acc {best['val_acc']:.4f}, val loss {best['val_loss']:.4f}"
    )
    assert "optimistic" in best_line[0]


# --- train-head --head logreg ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", ["binary", "pipeline"], ids=["2-classes", "3-classes"])
def test_logreg_head_matches_sklearn(request, dataset, tmp_path):
    from sklearn.linear_model import LogisticRegression

    source: Pipeline = request.getfixturevalue(dataset)
    cache = copy_features(source.cache, tmp_path / "cache")
    # --no-calibrate: the head saved is then exactly scikit-learn's (a temperature would divide its logits).
    result = run("train-head", "--cache", cache, "--head", "logreg", "--no-calibrate")
    assert_ok(result)
    assert "train-head (logreg)" in result.output
    train, val = cached(cache, "train"), cached(cache, "val")
    classes = load_head(cache / "head.pt").classes
    model = LogisticRegression(max_iter=2000, random_state=0).fit(train.features, train.labels)
    for rows in (train, val):
        np.testing.assert_allclose(
            head_probabilities(cache, rows.features), model.predict_proba(rows.features), atol=1e-5
        )
    metrics = json.loads((cache / "metrics.json").read_text())
    assert metrics["train_config"]["head"] == "logreg"
    assert load_head(cache / "head.pt").train_config["head"] == "logreg"
    assert metrics["val_acc"] == float(np.mean(model.predict(val.features) == val.labels))

    # predict works with the logreg head and writes the same columns as with an SGD head
    out = tmp_path / "p.csv"
    assert_ok(run("predict", source.data / "val", "--out", out, "--cache", cache, "--workers", 0))
    assert csv_header(out) == [
        "path",
        "label",
        "confidence",
        "ood_score",
        "unknown",
        *[f"prob_{name}" for name in classes],
        "error",
    ]
    rows = {Path(row["path"]).relative_to(source.data).as_posix(): row for row in read_csv(out)}
    assert set(rows) == set(val.paths)
    expected = model.predict_proba(val.features)
    for path, probabilities in zip(val.paths, expected):
        got = [float(rows[path][f"prob_{name}"]) for name in classes]
        assert got == pytest.approx(probabilities.tolist(), abs=1e-4), path
        assert rows[path]["label"] == classes[int(np.argmax(probabilities))]


# --- evaluate ------------------------------------------------------------------------------------------------------


@dataclass
class Evaluated:
    folder: Path
    result: Result
    predictions: list[dict[str, str]]


@pytest.fixture(scope="module")
def evaluated(pipeline, tmp_path_factory) -> Evaluated:
    """evaluate (default --out, --show) and predict over the same 18 fresh labelled images."""
    work = tmp_path_factory.mktemp("evaluate")
    folder = work / "labelled"
    for offset, name in enumerate(CLASSES):
        for index in range(6):
            make_image(folder / name / f"{name}_eval_{index}.jpg", seed=1000 + 10 * offset + index)
    result = run("evaluate", folder, "--cache", pipeline.cache, "--workers", 0)
    assert_ok(result)
    out = work / "predictions.csv"
    assert_ok(run("predict", folder, "--out", out, "--cache", pipeline.cache, "--workers", 0))
    return Evaluated(folder, result, read_csv(out))


def wrong_predictions(evaluated: Evaluated) -> dict[str, dict[str, str]]:
    return {
        Path(row["path"]).name: row for row in evaluated.predictions if row["label"] != Path(row["path"]).parent.name
    }


def test_evaluate_accuracy_equals_predict(evaluated):
    rows = evaluated.predictions
    assert len(rows) == 18 and all(row["error"] == "" for row in rows)
    correct = sum(row["label"] == Path(row["path"]).parent.name for row in rows)
    match = re.search(r"^(\d+) images, accuracy (\d\.\d{4}); (\d+) wrong -> ", evaluated.result.output, re.M)
    assert match, evaluated.result.output
    assert int(match[1]) == 18
    assert match[2] == f"{correct / 18:.4f}"
    assert int(match[3]) == 18 - correct
    assert f"accuracy {correct / 18:.4f}" in evaluated.result.output  # the table title too


def test_evaluate_prints_report_and_confusion(evaluated):
    rows = evaluated.predictions
    truth = [CLASSES.index(Path(row["path"]).parent.name) for row in rows]
    guesses = [CLASSES.index(row["label"]) for row in rows]
    expected = sklearn_summary(truth, guesses, CLASSES)
    printed = table_rows(evaluated.result.output)
    for row in scores_rows(expected):
        assert row in printed, (row, evaluated.result.output)
    for name, counts in zip(CLASSES, expected["confusion"]):
        assert [name, *map(str, counts)] in printed, (name, counts, evaluated.result.output)
    assert "confusion matrix" in evaluated.result.output


def test_evaluate_writes_wrong_images_csv(evaluated, pipeline):
    path = pipeline.cache / "evaluation_wrong.csv"
    assert csv_header(path) == ["path", "true", "predicted", "confidence"]
    rows = read_csv(path)
    wrong = wrong_predictions(evaluated)
    assert len(wrong) >= 2, "too few mistakes to check their order: change the evaluation images' seeds"
    assert sorted(Path(row["path"]).name for row in rows) == sorted(wrong)  # one row per wrong image
    for row in rows:
        predicted = wrong[Path(row["path"]).name]
        assert row["true"] == Path(row["path"]).parent.name
        assert row["predicted"] != row["true"]
        assert row["predicted"] == predicted["label"]
        assert float(row["confidence"]) == pytest.approx(float(predicted["confidence"]), abs=1e-5)
    confidences = [float(row["confidence"]) for row in rows]
    assert confidences == sorted(confidences, reverse=True)
    # the default --show 10 prints the first rows of that file
    shown = [line for line in evaluated.result.output.splitlines() if ".jpg" in line]
    assert len(shown) == min(10, len(rows))
    assert f"most confidently wrong ({min(10, len(rows))} of {len(rows)})" in evaluated.result.output
    assert Path(rows[0]["path"]).name in shown[0]


@pytest.mark.parametrize("show", [0, 1])
def test_evaluate_out_and_show(evaluated, pipeline, tmp_path, show):
    out = tmp_path / "wrong.csv"
    result = run("evaluate", evaluated.folder, "--cache", pipeline.cache, "--workers", 0, "--out", out, "--show", show)
    assert_ok(result)
    rows = read_csv(out)
    assert len(rows) == len(wrong_predictions(evaluated))
    shown = [line for line in result.output.splitlines() if ".jpg" in line]
    assert len(shown) == show
    if show:
        assert f"most confidently wrong (1 of {len(rows)})" in result.output
        assert Path(rows[0]["path"]).name in shown[0]
    else:
        assert "most confidently wrong" not in result.output
    assert str(out) in result.output


def test_evaluate_unknown_class_folder(pipeline, tmp_path):
    folder = tmp_path / "labelled"
    make_image(folder / "ants" / "a.jpg", seed=1)
    make_image(folder / "hornets" / "h.jpg", seed=2)
    out = tmp_path / "wrong.csv"
    result = run("evaluate", folder, "--cache", pipeline.cache, "--out", out)
    assert_error(result, "hornets", "does not know")
    assert not out.exists()


# --- predict --top-k, --format jsonl, --out - ------------------------------------------------------------------


@pytest.mark.parametrize("top_k", [2, 7], ids=["k=2", "k>classes"])
def test_predict_top_k_columns(pipeline, tmp_path, top_k):
    out = tmp_path / "p.csv"
    assert_ok(
        run("predict", pipeline.data / "val", "--out", out, "--cache", pipeline.cache, "--workers", 0, "--top-k", top_k)
    )
    k = min(top_k, len(CLASSES))  # clamped to the class count
    ranks = [column for rank in range(2, k + 1) for column in (f"label_{rank}", f"confidence_{rank}")]
    assert csv_header(out) == [
        "path",
        "label",
        "confidence",
        "ood_score",
        "unknown",
        *ranks,
        *[f"prob_{name}" for name in CLASSES],
        "error",
    ]
    rows = read_csv(out)
    assert len(rows) == 8
    for row in rows:
        probabilities = {name: float(row[f"prob_{name}"]) for name in CLASSES}
        ranked = sorted(CLASSES, key=lambda name: -probabilities[name])
        labels = [row["label"], *[row[f"label_{rank}"] for rank in range(2, k + 1)]]
        confidences = [row["confidence"], *[row[f"confidence_{rank}"] for rank in range(2, k + 1)]]
        assert labels == ranked[:k]
        assert confidences == [row[f"prob_{name}"] for name in labels]
        assert [float(c) for c in confidences] == sorted((float(c) for c in confidences), reverse=True)


def test_predict_jsonl(pipeline, tmp_path):
    out = tmp_path / "p.jsonl"
    assert_ok(
        run(
            "predict",
            pipeline.data / "val",
            "--out",
            out,
            "--cache",
            pipeline.cache,
            "--workers",
            0,
            "--format",
            "jsonl",
            "--top-k",
            2,
        )
    )
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 8
    assert [record["path"] for record in records] == sorted(record["path"] for record in records)
    for record in records:
        assert set(record) == {"path", "label", "confidence", "ood_score", "unknown", "top_k", "probabilities", "error"}
        assert record["error"] is None
        assert list(record["probabilities"]) == CLASSES
        assert sum(record["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        ranked = sorted(CLASSES, key=lambda name: -record["probabilities"][name])
        assert [entry["label"] for entry in record["top_k"]] == ranked[:2]
        assert [entry["confidence"] for entry in record["top_k"]] == [record["probabilities"][n] for n in ranked[:2]]
        assert record["top_k"][0] == {"label": record["label"], "confidence": record["confidence"]}
        assert record["confidence"] == max(record["probabilities"].values())


@pytest.mark.parametrize("output_format", ["csv", "jsonl"])
def test_predict_to_stdout_writes_only_data(pipeline, output_format):
    done = cli_process(
        "predict",
        pipeline.data / "val",
        "--out",
        "-",
        "--cache",
        pipeline.cache,
        "--workers",
        0,
        "--format",
        output_format,
    )
    assert done.returncode == 0, done.stderr
    if output_format == "csv":
        header, *rows = list(csv.reader(io.StringIO(done.stdout)))
        assert header == [
            "path",
            "label",
            "confidence",
            "ood_score",
            "unknown",
            *[f"prob_{name}" for name in CLASSES],
            "error",
        ]
        records = [dict(zip(header, row)) for row in rows]
        assert all(len(row) == len(header) for row in rows)
    else:
        records = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(records) == 8
    assert all(record["label"] in CLASSES for record in records)
    assert "images labelled" not in done.stdout
    assert "8 images labelled, 0 could not be read" in done.stderr
    assert "\x1b[" not in done.stdout + done.stderr  # plain when piped


# --- info ------------------------------------------------------------------------------------------------------


def test_info_table(pipeline):
    result = run("info", "--cache", pipeline.cache)
    assert_ok(result)
    rows = table_rows(result.output)
    assert ["train", "5", "4", "4", "13", "0"] in rows, result.output
    assert ["val", "3", "3", "2", "8", "0"] in rows, result.output
    header = next(line for line in result.output.splitlines() if line.strip().startswith("┃"))
    assert [cell.strip() for cell in header.strip().strip("┃").split("┃")] == ["split", *CLASSES, "rows", "skipped"]
    assert "(random init, NOT pretrained)" in result.output
    assert "preprocessing imagenet" in result.output
    assert "head (sgd): " in result.output
    assert f"val_acc {pipeline.metrics['val_acc']:.4f}" in result.output


def test_info_json(pipeline):
    result = run("info", "--cache", pipeline.cache, "--json")
    assert_ok(result)
    described = json.loads(result.stdout)
    features = described["features"]
    assert features["classes"] == CLASSES
    assert features["splits"]["train"] == {
        "rows": 13,
        "per_class": {"ants": 5, "bees": 4, "wasps": 4},
        "skipped": 0,
        "skipped_by_kind": {},
    }
    assert features["splits"]["val"] == {
        "rows": 8,
        "per_class": {"ants": 3, "bees": 3, "wasps": 2},
        "skipped": 0,
        "skipped_by_kind": {},
    }
    assert features["weights"]["kind"] == "none"
    assert features["preprocessing"]["name"] == "imagenet"
    metrics = pipeline.metrics
    head = described["head"]
    assert head["classes"] == CLASSES
    assert head["train_config"] == metrics["train_config"]
    for key in ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "best_epoch"):
        assert head["metrics"][key] == metrics[key], key


def test_info_empty_cache(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    result = run("info", "--cache", cache)
    assert_ok(result)
    assert "holds no features.h5: run `extract`" in result.output
    assert "holds no head.pt: run `train-head`" in result.output
    described = json.loads(run("info", "--cache", cache, "--json").stdout)
    assert described["features"] is None and described["head"] is None


def test_info_garbage_features(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "features.h5").write_bytes(b"not an HDF5 file at all\n" * 64)
    assert_error(run("info", "--cache", cache), "features.h5")
    assert_error(run("info", "--cache", cache, "--json"), "features.h5")


# --- help, version, console script ---------------------------------------------------------------------------


def test_version_same_for_script_and_module(tmp_path):
    script = script_process("--version", cwd=tmp_path)
    module = cli_process("--version")
    assert script.returncode == module.returncode == 0, script.stderr + module.stderr
    assert script.stdout == module.stdout == f"headstart, version {__version__}\n"


@pytest.mark.parametrize("command", ["train-head", "evaluate"])
def test_console_script_behaves_like_cli_py(tmp_path, command):
    script = script_process(command, "--help", cwd=tmp_path)
    module = cli_process(command, "--help")
    assert script.returncode == module.returncode == 0, script.stderr + module.stderr
    assert script.stdout == module.stdout
    assert script.stdout.startswith(f"Usage: headstart {command} [OPTIONS]")


def all_commands() -> list[tuple[str, click.Command]]:
    return [("headstart", cli.cli), *cli.cli.commands.items()]


@pytest.mark.parametrize("name, command", all_commands(), ids=[name for name, _ in all_commands()])
def test_every_option_has_help_and_shows_its_default(name, command):
    context = click.Context(command, info_name=name)
    options = [param for param in command.get_params(context) if isinstance(param, click.Option)]
    assert options
    for option in options:
        record = option.get_help_record(context)
        assert record is not None and option.help, f"{name} {option.opts} has no help text"
        if option.is_flag or option.required:
            continue
        assert "[default: " in record[1], f"{name} {option.opts} does not show its default: {record[1]!r}"
    rendered = CliRunner().invoke(cli.cli, ([] if command is cli.cli else [name]) + ["--help"], env=WIDE)
    assert_ok(rendered)
    for option in options:
        assert option.opts[0] in rendered.output


# --- --quiet ----------------------------------------------------------------------------------------------


def test_quiet_group_flag_prints_nothing(pipeline, tmp_path):
    cache = tmp_path / "cache"
    result = run("-q", "extract", "--data", pipeline.data, "--cache", cache, "--weights", "none", "--workers", 0)
    assert_ok(result)
    assert result.stdout == ""
    assert "NOT pretrained" not in result.stderr and "━" not in result.stderr  # --quiet: errors only
    with FeatureStore(cache / "features.h5") as store:
        assert store.count("train") == 13


def test_quiet_command_flag_prints_nothing(pipeline, tmp_path):
    result = run(
        "extract",
        "--data",
        pipeline.data,
        "--cache",
        tmp_path / "cache",
        "--weights",
        "none",
        "--workers",
        0,
        "--quiet",
    )
    assert_ok(result)
    assert result.stdout == ""
    assert "NOT pretrained" not in result.stderr and "━" not in result.stderr
    assert (tmp_path / "cache" / "features.h5").is_file()


def test_quiet_still_prints_errors(tmp_path):
    missing = tmp_path / "missing"
    done = script_process("-q", "extract", "--data", missing, "--cache", tmp_path / "cache", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and str(missing) in errors[0], done.stderr
    result = run("train-head", "--cache", tmp_path / "cache", "--quiet")
    assert_error(result, "features.h5")
    assert result.stdout == ""


# --- colour and progress ---------------------------------------------------------------------------------

SGR = re.compile(r"\x1b\[([0-9;]*)m")


def colour_codes(text: str) -> list[str]:
    """The SGR sequences in text that set a foreground or background colour (not bold, italic, reset)."""
    found = []
    for params in SGR.findall(text):
        numbers = [int(p) for p in params.split(";") if p]
        if any(n in (38, 48) or 30 <= n <= 37 or 40 <= n <= 47 or 90 <= n <= 97 or 100 <= n <= 107 for n in numbers):
            found.append(params)
    return found


def test_output_is_plain_when_piped(pipeline, tmp_path):
    """A real process with stdout and stderr piped: tables and the yellow warning come out without escape codes."""
    cache = copy_features(pipeline.cache, tmp_path / "cache")
    done = cli_process("train-head", "--cache", cache)
    assert done.returncode == 0, done.stderr
    assert "NOT pretrained" in done.stderr and "val split, last epoch" in done.stdout
    assert "\x1b[" not in done.stdout + done.stderr


@pytest.mark.parametrize("no_color", [False, True], ids=["colour", "NO_COLOR"])
def test_no_color_even_on_a_terminal(pipeline, tmp_path, no_color):
    """rich forced to see a terminal (TTY_COMPATIBLE=1) colours the warning, unless NO_COLOR is set."""
    cache = copy_features(pipeline.cache, tmp_path / "cache")
    env = {name: None for name in COLOUR_VARIABLES} | WIDE | {"TERM": "xterm-256color", "TTY_COMPATIBLE": "1"}
    if no_color:
        env["NO_COLOR"] = "1"
    result = CliRunner().invoke(cli.cli, ["train-head", "--cache", str(cache)], env=env)
    assert_ok(result)
    assert "NOT pretrained" in result.stderr
    assert SGR.search(result.stdout), "rich was forced to a terminal, yet the tables have no styles"
    if no_color:
        assert colour_codes(result.stdout + result.stderr) == []
    else:
        assert colour_codes(result.stderr), "rich was forced to a terminal, yet the warning has no colour"


def test_short_predict_shows_no_progress_bar(pipeline, tmp_path):
    """Labelling one image is one batch: its only progress update is the last, so no bar is worth drawing.

    A real process, because the first forward pass of a process is the slow one (cold start), as for a user.
    """
    out = tmp_path / "p.csv"
    done = cli_process(
        "predict",
        pipeline.data / "val" / "ants" / "ants_0.jpg",
        "--out",
        out,
        "--cache",
        pipeline.cache,
        "--workers",
        0,
    )
    assert done.returncode == 0, done.stderr
    assert "1 images labelled" in done.stdout
    assert "━" not in done.stdout + done.stderr, done.stderr


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now


def test_progress_bar_not_started_by_the_final_update(monkeypatch, capsys):
    """Past the delay, a bar starts mid-step; an update that completes the step draws no after-the-fact bar."""
    clock = FakeClock()
    monkeypatch.setattr(reporter_module, "time", clock)
    reporter = cli.Reporter()
    with reporter.progress("one batch") as update:
        clock.now += 2.0  # one slow batch, then done
        update(1, 1)
    assert "━" not in capsys.readouterr().err
    with reporter.progress("many batches") as update:
        clock.now += 0.1
        update(1, 4)
        clock.now += 1.0  # past the delay, with work left: the bar is worth showing
        update(2, 4)
        update(4, 4)
    err = capsys.readouterr().err
    assert "━" in err and "4/4" in err


def test_progress_bar_only_after_delay(capsys):
    """Reporter.progress: quick updates under the delay show nothing; with no delay the same updates show a bar."""
    reporter = cli.Reporter()
    with reporter.progress("quick") as update:
        update(1, 2)
        update(2, 2)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    with reporter.progress("slow", delay=0.0) as update:
        update(1, 2)
        update(2, 2)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "━" in captured.err and "2/2" in captured.err and "slow" in captured.err
