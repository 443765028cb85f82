"""cli.py: the three commands end to end (CliRunner), their one-line errors and exit codes (real subprocesses)."""

from __future__ import annotations

import functools
import http.server
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import h5py
import pytest
import torch
from cli_helpers import assert_error, assert_ok, read_csv, run
from click.testing import Result
from conftest import ROOT, make_dataset, make_image

from headstart.features.store import FeatureStore
from headstart.heads.checkpoint import load_head

# --- the real dataset, once per module: extract -> train-head -> predict ------------------------------------------


@dataclass
class Pipeline:
    cache: Path
    extract: Result
    train: Result
    predict: Result
    predictions: Path


@pytest.fixture(scope="module")
def real_pipeline(real_data, tmp_path_factory) -> Pipeline:
    work = tmp_path_factory.mktemp("real")
    cache, out = work / "cache", work / "predictions.csv"
    extract = run("extract", "--data", real_data, "--cache", cache, "--weights", "none")
    assert_ok(extract)
    train = run("train-head", "--cache", cache)
    assert_ok(train)
    predict = run("predict", real_data / "val", "--out", out, "--cache", cache)
    assert_ok(predict)
    return Pipeline(cache, extract, train, predict, out)


def test_extract_reports_rows_per_split(real_pipeline):
    output = real_pipeline.extract.output
    assert re.search(r"train\W+245\W+244\W+0\W+0\W+1\W", output), output
    assert re.search(r"val\W+153\W+153\W+0\W+0\W+0\W", output), output
    assert "classes: ants, bees" in output
    assert "NOT pretrained" in output  # --weights none is loudly not ImageNet


def test_extract_writes_features_file(real_pipeline):
    path = real_pipeline.cache / "features.h5"
    with h5py.File(path, "r") as raw:
        assert raw["train/features"].shape == (244, 512)
        assert raw["val/features"].shape == (153, 512)
    with FeatureStore(path) as store:
        assert sorted(store.splits) == ["train", "val"]
        assert store.header.classes == ["ants", "bees"]
        assert store.header.weights.kind == "none"
        train = store.read("train")
        assert sorted(set(train.labels.tolist())) == [0, 1]
        assert all(p.startswith("train/") for p in train.paths)
    assert list(real_pipeline.cache.glob("features.h5.partial*")) == []


def test_train_head_writes_head_and_metrics(real_pipeline):
    metrics = json.loads((real_pipeline.cache / "metrics.json").read_text())
    for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
        assert isinstance(metrics[key], float)
    assert len(metrics["history"]) == 5
    assert [entry["epoch"] for entry in metrics["history"]] == [1, 2, 3, 4, 5]
    assert metrics["history"][-1]["val_acc"] == metrics["val_acc"]
    assert metrics["counts"] == {"train": 244, "val": 153}
    assert metrics["classes"] == ["ants", "bees"]
    checkpoint = load_head(real_pipeline.cache / "head.pt")
    assert checkpoint.classes == ["ants", "bees"]
    assert checkpoint.metrics["val_acc"] == metrics["val_acc"]
    recipe = {"epochs": 5, "lr": 0.001, "momentum": 0.9, "batch_size": 32, "seed": 0}
    assert {key: checkpoint.train_config.get(key) for key in recipe} == recipe
    assert "244 train, 153 val" in real_pipeline.train.output


def test_predict_accuracy_equals_val_acc_exactly(real_pipeline, real_data):
    rows = read_csv(real_pipeline.predictions)
    assert len(rows) == 153
    paths = [row["path"] for row in rows]
    assert paths == sorted(paths)
    assert all(Path(p).is_relative_to(real_data / "val") for p in paths)
    assert all(row["error"] == "" and row["label"] in ("ants", "bees") for row in rows)
    for row in rows:
        assert float(row["prob_ants"]) + float(row["prob_bees"]) == pytest.approx(1.0, abs=2e-6)
        assert float(row["confidence"]) == max(float(row["prob_ants"]), float(row["prob_bees"]))
    correct = sum(row["label"] == Path(row["path"]).parent.name for row in rows)
    metrics = json.loads((real_pipeline.cache / "metrics.json").read_text())
    assert correct / len(rows) == metrics["val_acc"]
    assert "153 images labelled, 0 could not be read" in real_pipeline.predict.output


def test_predict_corrupt_image_is_a_row_not_a_failure(real_pipeline, tmp_path):
    folder = tmp_path / "photos"
    make_image(folder / "a.jpg", seed=1)
    make_image(folder / "sub" / "c.png", seed=2, fmt="PNG")
    (folder / "b.jpg").write_bytes(b"this is not a jpeg")
    out = tmp_path / "out" / "p.csv"
    result = run("predict", folder, "--out", out, "--cache", real_pipeline.cache, "--workers", 0)
    assert_ok(result)
    rows = {Path(row["path"]).name: row for row in read_csv(out)}
    assert set(rows) == {"a.jpg", "b.jpg", "c.png"}
    assert rows["b.jpg"]["label"] == "" and rows["b.jpg"]["confidence"] == ""
    assert rows["b.jpg"]["prob_ants"] == "" and rows["b.jpg"]["prob_bees"] == ""
    assert rows["b.jpg"]["error"] != ""
    for name in ("a.jpg", "c.png"):
        assert rows[name]["label"] in ("ants", "bees") and rows[name]["error"] == ""
    assert "2 images labelled, 1 could not be read" in result.output


def test_predict_missing_path(real_pipeline, tmp_path):
    missing = tmp_path / "nowhere.jpg"
    result = run("predict", missing, "--out", tmp_path / "p.csv", "--cache", real_pipeline.cache)
    assert_error(result, str(missing), "does not exist")
    assert not (tmp_path / "p.csv").exists()


def test_predict_folder_without_images(real_pipeline, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no pictures here")
    result = run("predict", tmp_path / "empty", "--out", tmp_path / "p.csv", "--cache", real_pipeline.cache)
    assert_error(result, "no images found")
    assert not (tmp_path / "p.csv").exists()


# --- a weights file: predict rebuilds the backbone the head records ------------------------------------------------


@dataclass
class WeightsPipeline:
    data: Path
    cache: Path
    other_weights: Path


@pytest.fixture(scope="module")
def weights_pipeline(weights_file, tmp_path_factory) -> WeightsPipeline:
    work = tmp_path_factory.mktemp("weights-pipeline")
    data, cache = make_dataset(work / "data"), work / "cache"
    assert_ok(run("extract", "--data", data, "--cache", cache, "--weights", weights_file, "--workers", 0))
    assert_ok(run("train-head", "--cache", cache))
    state = torch.load(weights_file, weights_only=True)
    state["conv1.weight"] = state["conv1.weight"] * 1.5
    other = work / "other-resnet18.pth"
    torch.save(state, other)
    return WeightsPipeline(data, cache, other)


def test_predict_uses_the_recorded_weights_file(weights_pipeline, tmp_path):
    out = tmp_path / "p.csv"
    assert_ok(
        run("predict", weights_pipeline.data / "val", "--out", out, "--cache", weights_pipeline.cache, "--workers", 0)
    )
    rows = read_csv(out)
    assert len(rows) == 4
    # The CSV's probabilities are the head applied to the cached features: the same backbone made both.
    head = load_head(weights_pipeline.cache / "head.pt").head
    with FeatureStore(weights_pipeline.cache / "features.h5") as store:
        val = store.read("val")
    with torch.no_grad():
        expected = torch.softmax(head(torch.from_numpy(val.features)), dim=1)
    by_name = {Path(row["path"]).relative_to(weights_pipeline.data).as_posix(): row for row in rows}
    assert set(by_name) == set(val.paths)
    for name, probabilities in zip(val.paths, expected.tolist()):
        got = [float(by_name[name]["prob_ants"]), float(by_name[name]["prob_bees"])]
        assert got == pytest.approx(probabilities, abs=1e-5)


def test_evaluate_on_copies_of_training_images_warns_and_lists_other_files(weights_pipeline, tmp_path):
    copied = tmp_path / "copied"  # other paths, same content: found by content, as the cache keys its rows
    shutil.copytree(weights_pipeline.data / "train", copied)
    (copied / "ants" / "readme.md").write_text("notes")
    result = run("evaluate", copied, "--cache", weights_pipeline.cache, "--out", tmp_path / "wrong.csv", "--workers", 0)
    assert_ok(result)
    said = " ".join(result.output.split())
    assert "8 of the 8 images evaluated are training images of this cache" in said
    assert "not a held-out score" in said and "skipped, by kind: 1 not an image" in said
    assert "readme.md" in "".join(said.split())


def test_predict_weights_none_against_file_head(weights_pipeline, tmp_path):
    result = run(
        "predict",
        weights_pipeline.data / "val",
        "--out",
        tmp_path / "p.csv",
        "--cache",
        weights_pipeline.cache,
        "--weights",
        "none",
    )
    assert_error(result, "--weights none", "is not what the head was trained on")
    assert not (tmp_path / "p.csv").exists()


def test_predict_other_weights_file(weights_pipeline, tmp_path):
    result = run(
        "predict",
        weights_pipeline.data / "val",
        "--out",
        tmp_path / "p.csv",
        "--cache",
        weights_pipeline.cache,
        "--weights",
        weights_pipeline.other_weights,
    )
    assert_error(result, str(weights_pipeline.other_weights), "is not what the head was trained on")
    assert not (tmp_path / "p.csv").exists()


def test_predict_recorded_weights_file_copied_elsewhere_is_accepted(weights_pipeline, weights_file, tmp_path):
    """Identity is the content hash, not the path: the same weights under another name are the same weights."""
    copy = tmp_path / "renamed.pth"
    shutil.copy(weights_file, copy)
    out = tmp_path / "p.csv"
    assert_ok(
        run(
            "predict",
            weights_pipeline.data / "val" / "ants",
            "--out",
            out,
            "--cache",
            weights_pipeline.cache,
            "--weights",
            copy,
            "--workers",
            0,
        )
    )
    assert len(read_csv(out)) == 2


# --- error paths: one line, exit 1 (2 for usage errors) ------------------------------------------------------------


def test_extract_missing_data_folder(tmp_path):
    missing = tmp_path / "no-such-data"
    result = run("extract", "--data", missing, "--cache", tmp_path / "cache", "--weights", "none")
    assert_error(result, str(missing), "does not exist", "--data")
    assert not missing.exists()  # a non-default --data is never downloaded
    assert not (tmp_path / "cache" / "features.h5").exists()


def test_extract_val_classes_differ(tmp_path):
    data = make_dataset(tmp_path / "data", per_class={"train": 1, "val": 1})
    (data / "val" / "bees").rename(data / "val" / "wasps")
    result = run("extract", "--data", data, "--cache", tmp_path / "cache", "--weights", "none")
    assert_error(result, "wasps", "same class folders")


def test_extract_single_class(tmp_path):
    data = make_dataset(tmp_path / "data", classes=("ants",), per_class={"train": 2, "val": 1})
    result = run("extract", "--data", data, "--cache", tmp_path / "cache", "--weights", "none")
    assert_error(result, "at least 2")


def test_extract_weights_file_missing(tiny_dataset, tmp_path):
    missing = tmp_path / "nonexistent.pth"
    result = run("extract", "--data", tiny_dataset, "--cache", tmp_path / "cache", "--weights", missing)
    assert_error(result, str(missing), "does not exist")


def test_extract_weights_text_file(tiny_dataset, tmp_path):
    text = tmp_path / "weights.txt"
    text.write_text("these are not weights\n")
    result = run("extract", "--data", tiny_dataset, "--cache", tmp_path / "cache", "--weights", text)
    assert_error(result, "cannot read weights file", str(text))
    assert not (tmp_path / "cache" / "features.h5").exists()


def test_extract_invalid_option_is_usage_error(tiny_dataset, tmp_path):
    result = run("extract", "--data", tiny_dataset, "--cache", tmp_path / "c", "--batch-size", 0)
    assert_error(result, "--batch-size", code=2)


def test_train_head_without_features(tmp_path):
    result = run("train-head", "--cache", tmp_path / "cache")
    assert_error(result, "features.h5", "run `extract` first")
    assert not (tmp_path / "cache" / "head.pt").exists()


def test_train_head_garbage_features(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "features.h5").write_bytes(b"\x89HDF\r\n" + bytes(range(256)) * 8)
    result = run("train-head", "--cache", cache)
    assert_error(result, "features.h5", "re-run `extract`")
    assert not (cache / "head.pt").exists() and not (cache / "metrics.json").exists()


def test_predict_without_head(tmp_path):
    image = make_image(tmp_path / "a.jpg")
    result = run("predict", image, "--out", tmp_path / "out" / "p.csv", "--cache", tmp_path / "cache")
    assert_error(result, "head.pt", "run `train-head` first")


def test_predict_garbage_head(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "head.pt").write_bytes(b"PK\x03\x04 definitely not a head")
    image = make_image(tmp_path / "a.jpg")
    result = run("predict", image, "--out", tmp_path / "out" / "p.csv", "--cache", cache)
    assert_error(result, "head.pt", "re-run `train-head`")


@pytest.mark.parametrize("weights", [{}, "file", {"kind": "none"}], ids=["empty", "str", "no-name"])
def test_predict_head_with_damaged_weights_record(real_pipeline, tmp_path, weights):
    """A head.pt whose weights record is damaged is a bad head file, not a crash."""
    cache = tmp_path / "cache"
    cache.mkdir()
    data = torch.load(real_pipeline.cache / "head.pt", weights_only=True)
    data["weights"] = weights
    torch.save(data, cache / "head.pt")
    image = make_image(tmp_path / "a.jpg")
    result = run("predict", image, "--out", tmp_path / "p.csv", "--cache", cache)
    assert_error(result, "head.pt", "train-head")
    assert not (tmp_path / "p.csv").exists()


@pytest.mark.parametrize("where", ["inside", "same-file"])
def test_predict_out_inside_input_is_usage_error(tmp_path, where):
    folder = tmp_path / "photos"
    image = make_image(folder / "a.jpg")
    out, given = (folder / "sub" / "p.csv", folder) if where == "inside" else (image, image)
    before = image.read_bytes()
    result = run("predict", given, "--out", out, "--cache", tmp_path / "cache")
    assert_error(result, "inside the input", code=2)
    assert not (folder / "sub").exists()
    assert image.read_bytes() == before


# --- the default --data downloads the dataset ----------------------------------------------------------------------

ORIGINAL_URL = "https://download.pytorch.org/tutorial/hymenoptera_data.zip"


def point_download_at(monkeypatch, url: str) -> None:
    """The default URL is bound when download_dataset is defined, so patch the module constant and that default."""
    import headstart.features.download as download

    monkeypatch.setattr(download, "DATASET_URL", url)
    defaults = download.download_dataset.__defaults__ or ()
    monkeypatch.setattr(
        download.download_dataset, "__defaults__", tuple(url if value == ORIGINAL_URL else value for value in defaults)
    )


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def dataset_server(tmp_path):
    """A local HTTP server with hymenoptera_data.zip holding a tiny dataset, as the tutorial's zip is laid out."""
    source = make_dataset(tmp_path / "source" / "hymenoptera_data", per_class={"train": 2, "val": 1})
    served = tmp_path / "served"
    served.mkdir()
    with zipfile.ZipFile(served / "hymenoptera_data.zip", "w") as archive:
        for file in sorted(source.rglob("*")):
            archive.write(file, file.relative_to(source.parent).as_posix())
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hymenoptera_data.zip"
    server.shutdown()
    server.server_close()


def test_default_data_missing_is_downloaded(dataset_server, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    point_download_at(monkeypatch, dataset_server)
    result = run("extract", "--cache", "cache", "--weights", "none", "--workers", 0)
    assert_ok(result)
    assert "downloading" in result.output
    assert sorted(p.name for p in (work / "hymenoptera_data" / "train" / "ants").iterdir()) == [
        "ants_0.jpg",
        "ants_1.jpg",
    ]
    with FeatureStore(work / "cache" / "features.h5") as store:
        assert store.count("train") == 4 and store.count("val") == 2
    assert [p.name for p in work.iterdir() if p.name.startswith(".download")] == []


def test_default_data_offline_says_pass_data(tmp_path, monkeypatch):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    point_download_at(monkeypatch, f"http://127.0.0.1:{port}/hymenoptera_data.zip")
    result = run("extract", "--cache", "cache", "--weights", "none")
    assert_error(result, "cannot download", "--data")
    assert sorted(p.name for p in work.iterdir() if p.name != "cache") == []


# --- real processes: exit codes and signals -----------------------------------------------------------------------


def cli_process(*args) -> list[str]:
    return [sys.executable, "cli.py", *map(str, args)]


@pytest.mark.parametrize("case, code", [("missing data", 1), ("out inside input", 2)])
def test_process_exit_codes(tmp_path, case, code):
    if case == "missing data":
        args = ("extract", "--data", tmp_path / "missing", "--cache", tmp_path / "cache")
    else:
        make_image(tmp_path / "photos" / "a.jpg")
        args = ("predict", tmp_path / "photos", "--out", tmp_path / "photos" / "p.csv")
    done = subprocess.run(cli_process(*args), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, done.stderr


HELP_SCRIPT = """
import sys, cli
for args in (["--help"], ["extract", "--help"], ["train-head", "--help"], ["predict", "--help"]):
    try:
        cli.cli(args, prog_name="headstart")
    except SystemExit as exit:
        assert exit.code == 0, (args, exit.code)
print("torch imported:", "torch" in sys.modules)
"""


def test_help_does_not_import_torch():
    done = subprocess.run([sys.executable, "-c", HELP_SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for text in ("extract", "train-head", "predict", "--weights", "--out", "--seed"):
        assert text in done.stdout
    assert done.stdout.rstrip().endswith("torch imported: False")


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_signal_during_extract_keeps_previous_features(real_pipeline, real_data, tmp_path, signum, code):
    cache = tmp_path / "cache"
    cache.mkdir()
    previous = cache / "features.h5"
    shutil.copy(real_pipeline.cache / "features.h5", previous)
    before = previous.read_bytes()

    def partials() -> list[Path]:
        return sorted(cache.glob("features.h5.partial*"))

    # Another preprocessing makes every cached row unusable, so the run re-extracts all 397 images.
    process = subprocess.Popen(
        cli_process("extract", "--data", real_data, "--cache", cache, "--weights", "none", "--preprocess", "notebook"),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while not partials() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert partials(), f"extract never started writing: {process.poll()=}"
        time.sleep(1.0)  # well into the extraction loop
        assert process.poll() is None, "extract finished before it could be interrupted"
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == code, stderr
    assert "Traceback" not in stdout + stderr
    assert "previous results are untouched" in stderr
    assert previous.read_bytes() == before
    with FeatureStore(previous) as store:
        assert store.count("train") == 244 and store.count("val") == 153
        assert store.header.preprocessing.name == "imagenet"
    # Whatever partial file the interrupted run leaves (for the next run to resume from) is a readable store.
    for partial in partials():
        with FeatureStore(partial) as store:
            assert store.header.preprocessing.name == "notebook"
