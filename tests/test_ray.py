"""--engine ray against --engine local: same rows, same skipped files, features equal within float tolerance,
same labels; the local engine never imports Ray, and without Ray the error is one line."""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from conftest import ROOT, make_dataset, make_image

from headstart import cli
from headstart.features.store import FeatureStore

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")  # Ray's own, internal
needs_ray = pytest.mark.skipif(find_spec("ray") is None, reason="Ray is an optional extra: pip install -e '.[ray]'")
NO_RAY_ERROR = "Error: --engine ray needs Ray: pip install -e '.[ray]'"


def run(*args) -> Result:
    result = CliRunner().invoke(cli.cli, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance (2 CPUs) for the module; the engine joins it instead of starting its own."""
    import ray

    on_sigterm = signal.getsignal(signal.SIGTERM)
    ray.init(
        num_cpus=2,
        object_store_memory=512 * 1024**2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.ERROR,
    )
    signal.signal(signal.SIGTERM, on_sigterm)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def mixed_dataset(tmp_path_factory) -> Path:
    """A small dataset with the files that take other paths through decoding: bad, empty, grey, RGBA, PNG."""
    root = make_dataset(tmp_path_factory.mktemp("mixed") / "data", per_class={"train": 5, "val": 3})
    (root / "train" / "ants" / "broken.jpg").write_bytes(b"not a jpeg")
    (root / "val" / "bees" / "empty.png").write_bytes(b"")
    make_image(root / "train" / "bees" / "grey.png", size=(300, 200), seed=90, mode="L")
    make_image(root / "val" / "ants" / "alpha.png", size=(64, 500), seed=91, mode="RGBA")
    return root


def assert_same_stores(local: Path, ray: Path) -> None:
    """Same header (but the creation time), same rows in the same order, features equal within float tolerance."""
    with FeatureStore(local / "features.h5") as a, FeatureStore(ray / "features.h5") as b:
        assert {**a.header.to_dict(), "created": None} == {**b.header.to_dict(), "created": None}
        assert a.splits == b.splits
        for split in a.splits:
            rows_a, rows_b = a.read(split), b.read(split)
            assert rows_a.paths == rows_b.paths
            assert rows_a.sha256 == rows_b.sha256
            np.testing.assert_array_equal(rows_a.labels, rows_b.labels)
            np.testing.assert_array_equal(rows_a.sizes, rows_b.sizes)
            np.testing.assert_array_equal(rows_a.mtimes_ns, rows_b.mtimes_ns)
            np.testing.assert_allclose(rows_a.features, rows_b.features, rtol=0, atol=1e-4)
            assert a.skipped(split) == b.skipped(split)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@needs_ray
def test_extract_and_predict_agree_on_generated_data(local_ray, mixed_dataset, weights_file, tmp_path):
    for engine in ("local", "ray"):
        result = run(
            "extract",
            "--data",
            mixed_dataset,
            "--cache",
            tmp_path / engine,
            "--weights",
            weights_file,
            "--batch-size",
            4,
            "--engine",
            engine,
        )
        assert "skipped train/ants/broken.jpg: not an image file" in result.output
        assert "skipped val/bees/empty.png: empty file (0 bytes)" in result.output
    # The workers wrote the rows: what reached this process was row indices and shard names, no feature rows.
    said = " ".join(result.output.split())  # the line may wrap
    shards = re.search(r"shards: (\d+) written by the workers and merged; (\d+) bytes .*, (\d+) of them", said)
    assert shards is not None, result.output
    written, driver_bytes, feature_bytes = map(int, shards.groups())
    assert written >= 2 and feature_bytes == 0
    assert 0 < driver_bytes < 100 * 20  # 20 files: a few dozen bytes each, where one row of features is 2048
    assert not (tmp_path / "ray" / "features.h5.shards").exists()
    assert_same_stores(tmp_path / "local", tmp_path / "ray")

    run("train-head", "--cache", tmp_path / "local")
    for engine in ("local", "ray"):
        run(
            "predict",
            mixed_dataset,
            "--cache",
            tmp_path / "local",
            "--out",
            tmp_path / f"{engine}.csv",
            "--batch-size",
            4,
            "--engine",
            engine,
        )
    local, ray = read_csv(tmp_path / "local.csv"), read_csv(tmp_path / "ray.csv")
    assert list(local[0]) == list(ray[0])
    assert [(r["path"], r["label"], r["error"]) for r in local] == [(r["path"], r["label"], r["error"]) for r in ray]
    assert sum(bool(r["error"]) for r in ray) == 2
    probabilities = [key for key in local[0] if key.startswith("prob_")]
    for row_a, row_b in zip(local, ray):
        if not row_a["error"]:
            assert [float(row_a[k]) for k in probabilities] == pytest.approx(
                [float(row_b[k]) for k in probabilities], abs=1e-5
            )


@pytest.mark.long  # the generated-data test below checks the same agreement in a third of the time
@needs_ray
def test_extract_and_train_agree_on_the_real_dataset(local_ray, real_data, tmp_path):
    for engine in ("local", "ray"):
        run("extract", "--data", real_data, "--cache", tmp_path / engine, "--weights", "none", "--engine", engine)
        run("train-head", "--cache", tmp_path / engine)
    assert_same_stores(tmp_path / "local", tmp_path / "ray")
    local, ray = (json.loads((tmp_path / engine / "metrics.json").read_text()) for engine in ("local", "ray"))
    assert local["val_acc"] == ray["val_acc"]
    assert local["train_acc"] == ray["train_acc"]
    assert local["val_loss"] == pytest.approx(ray["val_loss"], abs=1e-4)


KILL_AFTER_SHARDS = 2


@pytest.mark.long  # a Ray instance of its own in a subprocess, killed, then a resumed run
@needs_ray
def test_a_driver_killed_mid_run_resumes_shard_by_shard(local_ray, tmp_path):
    data = make_dataset(tmp_path / "data", per_class={"train": 12, "val": 4})
    args = ["extract", "--data", data, "--weights", "none", "--batch-size", 2, "--backbone", "mobilenet_v3_large"]
    run(*args, "--cache", tmp_path / "local")
    cache, folder = tmp_path / "ray", tmp_path / "ray" / "features-mobilenet_v3_large.h5.shards"
    driver = subprocess.Popen(
        [sys.executable, "-m", "headstart", *map(str, args), "--cache", str(cache), "--engine", "ray"],
        cwd=ROOT,
        start_new_session=True,  # its own Ray processes go with it
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 240
        while len(list(folder.glob("*.json"))) < KILL_AFTER_SHARDS and driver.poll() is None:
            assert time.monotonic() < deadline, "no shards written in 240 s"
            time.sleep(0.02)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    assert driver.returncode == -signal.SIGKILL, "the run ended before it was killed: give it more images"
    left = len(list(folder.glob("*.json")))

    result = run(*args, "--cache", cache, "--engine", "ray")
    resumed = re.search(r"shards of an interrupted run: (\d+) resumed", " ".join(result.output.split()))
    assert resumed is not None and int(resumed.group(1)) >= min(left, KILL_AFTER_SHARDS), result.output
    assert not folder.exists()
    for name in ("local", "ray"):  # assert_same_stores reads the default backbone's file name
        (tmp_path / name / "features-mobilenet_v3_large.h5").rename(tmp_path / name / "features.h5")
    assert_same_stores(tmp_path / "local", tmp_path / "ray")


@needs_ray
def test_results_come_back_in_input_order_whatever_order_ray_finishes_in():
    from headstart.features.engines.ray import _in_order
    from headstart.features.folder import ImageEntry

    entries = [ImageEntry(Path(f"{i}.jpg"), f"{i}.jpg") for i in range(7)]

    def result(indices):
        ok = np.asarray([i != 3 for i in indices])
        return {
            "index": np.asarray(indices),
            "ok": ok,
            "size": np.asarray(indices) * 10,
            "mtime_ns": np.asarray(indices),
            "sha256": np.asarray([f"h{i}" for i in indices], object),
            "error": np.asarray(["" if i != 3 else "bad" for i in indices], object),
            "features": np.asarray([np.full(512, i, np.float32) for i in indices]),
        }

    progress = []
    batches = list(
        _in_order(
            entries,
            iter([result([4, 5]), result([0, 1]), result([6]), result([2, 3])]),
            3,
            lambda done, total: progress.append((done, total)),
            512,
        )
    )
    assert [entry for batch in batches for entry in batch.entries] == entries
    assert all(len(batch.entries) <= 3 for batch in batches)
    assert [error for batch in batches for error in batch.errors] == [None, None, None, "bad", None, None, None]
    assert [stamp.size for batch in batches for stamp in batch.stamps if stamp] == [0, 10, 20, 40, 50, 60]
    np.testing.assert_array_equal(np.concatenate([batch.features[:, 0] for batch in batches]), [0, 1, 2, 4, 5, 6])
    assert progress[-1] == (7, 7)


@needs_ray
def test_an_actor_refuses_weights_that_differ_from_the_drivers(weights_file):
    from headstart.features.backbone import WeightsError
    from headstart.features.engines.ray import _Embed

    other = {"kind": "file", "name": str(weights_file), "sha256": "0" * 64}
    with pytest.raises(WeightsError, match="not the driver's .*give every node the same weights file"):
        _Embed(str(weights_file), other, "cpu", "fp32")


@needs_ray
def test_a_failure_inside_the_pipeline_is_one_line(local_ray, tiny_dataset, tmp_path):
    import torch

    from headstart.features import PREPROCESSINGS, find_images
    from headstart.features.backbone import Backbone, WeightsIdentity
    from headstart.features.engines.ray import RayEngine, RayEngineError

    gone = tmp_path / "gone.pth"  # the weights file is missing where the actor runs
    backbone = Backbone(None, WeightsIdentity("file", str(gone), "0" * 64), torch.device("cpu"))
    with pytest.raises(RayEngineError) as raised:
        list(RayEngine().embed(find_images([tiny_dataset]), backbone, PREPROCESSINGS["imagenet"]))
    assert str(raised.value) == (
        f"on Ray: weights file {gone} does not exist (use imagenet, none, or a resnet18 state_dict file)"
    )


LOCAL_SCRIPT = """
import sys
from click.testing import CliRunner
from headstart import cli
data, cache = sys.argv[1], sys.argv[2]
for args in (["extract", "--data", data, "--cache", cache, "--weights", "none"], ["train-head", "--cache", cache],
             ["predict", data, "--cache", cache, "--out", cache + "/p.csv"]):
    result = CliRunner().invoke(cli.cli, args)
    assert result.exit_code == 0, result.output
print(sorted(name for name in sys.modules if name == "ray" or name.startswith("ray.")))
"""


def test_the_local_engine_never_imports_ray(tiny_dataset, tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", LOCAL_SCRIPT, str(tiny_dataset), str(tmp_path / "cache")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


NO_RAY_SCRIPT = """
import sys
sys.modules["ray"] = None  # what Python does for a module that is not installed: import raises ImportError
from headstart import cli
sys.argv = ["headstart", *sys.argv[1:]]
cli.main()
"""


@pytest.mark.parametrize("command", ["extract", "predict"])
def test_without_ray_the_engine_is_a_one_line_error(command, tiny_dataset, tmp_path):
    args = (
        ["extract", "--data", tiny_dataset, "--cache", tmp_path, "--weights", "none"]
        if command == "extract"
        else ["predict", tiny_dataset, "--cache", tmp_path, "--out", tmp_path / "p.csv"]
    )
    done = subprocess.run(
        [sys.executable, "-c", NO_RAY_SCRIPT, *map(str, args), "--engine", "ray"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == NO_RAY_ERROR
    assert done.stdout == ""
    assert not (tmp_path / "features.h5").exists()


def test_address_without_the_ray_engine_is_a_usage_error(tiny_dataset, tmp_path):
    result = CliRunner().invoke(
        cli.cli, ["extract", "--data", str(tiny_dataset), "--cache", str(tmp_path), "--address", "10.0.0.1:6379"]
    )
    assert result.exit_code == 2
    assert "--address joins a Ray cluster: use it with --engine ray" in result.output


def test_ray_address_from_the_environment_does_not_bother_the_local_engine(tiny_dataset, tmp_path):
    result = CliRunner().invoke(
        cli.cli,
        ["extract", "--data", str(tiny_dataset), "--cache", str(tmp_path), "--weights", "none"],
        env={"RAY_ADDRESS": "10.0.0.1:6379"},
    )
    assert result.exit_code == 0, result.output
    assert "ray, device" not in result.output  # the local engine ran: the Ray engine describes itself so
    with FeatureStore(tmp_path / "features.h5") as store:
        assert (store.count("train"), store.count("val")) == (8, 4)
