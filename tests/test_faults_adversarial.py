"""Fault suite, round two (issue 10): what an adversarial run broke, one test per finding, and the harness that found
them: real processes stopped by SIGINT, SIGTERM or SIGKILL at random moments, from the first second on.

Each trial checks the exit code, a one-line message, the previous outputs byte-identical or completely new, no stray
files, and that an immediate re-run is accepted. `pytest -m long tests/test_faults_adversarial.py` runs the long
variant (enough trials to catch a 1-in-10 window); the suite runs a short one.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, make_dataset
from test_faults import (
    HEAD_OUTPUTS,
    SUBPROCESS_ENV,
    Outcome,
    assert_error,
    assert_ok,
    command,
    copy_cache,
    hashes,
    invoke,
    leftovers,
    private_mounts,
    read_csv,
    run_on_tmpfs,
    spawn,
    split_counts,
    trained,
    write_previous_csv,
)

from headstart.features.files.atomic import replace_together
from headstart.features.images import ImageDecodeError, read_file
from headstart.heads.checkpoint import load_head

INJECT = ROOT / "tests" / "signal_at_import"


def strict_json(path: Path):
    """JSON as the standard has it: NaN and Infinity are not JSON."""

    def refuse(constant):
        raise ValueError(f"{path} holds {constant}, which is not JSON")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


# --- 1. the lock file is a link: refused, and nothing it points to is truncated -------------------------------------


@pytest.mark.parametrize("kind", ["symlink", "hardlink"])
def test_lock_file_that_is_a_link_is_refused_and_its_target_kept(trained, tmp_path, kind):
    cache = copy_cache(trained.cache, tmp_path / "cache")
    victim = tmp_path / "precious.txt"
    victim.write_text("someone's work\n")
    (os.symlink if kind == "symlink" else os.link)(victim, cache / ".lock")
    before = hashes(*(cache / name for name in HEAD_OUTPUTS))
    assert_error(invoke("train-head", "--cache", cache), 1, ".lock", "remove it")
    assert victim.read_text() == "someone's work\n"
    assert hashes(*map(Path, before)) == before


# --- 2. a signal while torch or numpy is importing ----------------------------------------------------------------


@pytest.mark.parametrize(
    "step, module, signum",
    [
        pytest.param("predict", "numpy.linalg", signal.SIGINT, id="predict-numpy-SIGINT"),
        pytest.param("predict", "numpy.linalg", signal.SIGTERM, id="predict-numpy-SIGTERM"),
        pytest.param("train-head", "numpy.linalg", signal.SIGINT, id="train-head-numpy-SIGINT"),
    ],
)
def test_signal_while_importing_stops_cleanly(trained, tmp_path, step, module, signum):
    """The signal is sent from inside the import, so the moment is exact (sampled timing found it 1 run in 3)."""
    cache = copy_cache(trained.cache, tmp_path / "cache")
    out = write_previous_csv(tmp_path / "out" / "predictions.csv")
    args = (
        ["predict", trained.data / "val", "--out", out, "--cache", cache, "--workers", 0]
        if step == "predict"
        else ["train-head", "--cache", cache, "--epochs", 2]
    )
    before = hashes(out, *(cache / name for name in HEAD_OUTPUTS))
    env = {**SUBPROCESS_ENV, "PYTHONPATH": str(INJECT), "SIGNAL_AT_IMPORT": f"{module}:{signum.name}"}
    outcome = spawn(command(*args), env=env)
    assert_error(outcome, 128 + signum, "previous results are untouched")
    assert len(outcome.output.strip().splitlines()) == 1, outcome.output
    assert hashes(*map(Path, before)) == before
    assert leftovers(cache) == leftovers(out.parent) == []


HELD_UNTIL_ACCEPTED = """
import os, signal, sys, threading
from headstart.features.interrupts import Stopped, accept_signals, install_handlers
install_handlers()
signal.raise_signal(signal.SIGINT)  # as `python cli.py` runs click's decorators: main()'s handler does not exist yet
print("held", flush=True)
read_end, write_end = os.pipe()
woken = threading.Event()
def wake():  # ends the blocking read below, if the held signal never interrupted it
    woken.set()
    os.write(write_end, b"x")
timer = threading.Timer(20, wake)
timer.daemon = True
timer.start()
try:
    accept_signals()
    os.read(read_end, 1)  # main() blocked in a system call, as in a wait on workers
except Stopped as stop:
    print("stopped", stop.signum, "after-the-read-ended" if woken.is_set() else "during-the-read")
    sys.exit(0)
sys.exit(3)
"""


def test_a_signal_before_main_is_held_until_main_can_catch_it():
    """The adversarial harness's find: SIGINT 0.22 s into `python cli.py train-head`, while cli.py's own module body
    ran (outside any import, before main()'s try), was a traceback and exit 1."""
    done = subprocess.run(
        [sys.executable, "-c", HELD_UNTIL_ACCEPTED], env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=60
    )
    # delivered to the main thread itself: one raised in the retry timer's thread left a main thread blocked in a
    # system call unaware of it until the call returned (here the read, ended by the watchdog 20 s later)
    expected = ["held", "stopped", str(int(signal.SIGINT)), "during-the-read"]
    assert (done.returncode, done.stdout.split()) == (0, expected), done.stderr


# --- 3. a failed or interrupted commit of train-head's three files -----------------------------------------------


def test_failed_rename_of_the_head_keeps_all_three_previous_files(trained, tmp_path):
    cache = copy_cache(trained.cache, tmp_path / "cache", ["features.h5", "metrics.json", "curves.png"])
    (cache / "head.pt").mkdir()  # cannot be replaced by a file
    before = hashes(cache / "metrics.json", cache / "curves.png")
    assert_error(invoke("train-head", "--cache", cache, "--epochs", 2), 1, "head.pt")
    assert hashes(*map(Path, before)) == before
    assert leftovers(cache) == []


def test_rename_that_fails_midway_puts_back_what_was_replaced(tmp_path, monkeypatch):
    targets = [tmp_path / name for name in ("a", "b", "c")]
    for target in targets:
        target.write_text(f"old {target.name}")
    real_replace = os.replace

    def failing_on_c(source, target, **kwargs):
        if Path(target).name == "c":
            raise PermissionError(1, "Operation not permitted", str(target))
        return real_replace(source, target, **kwargs)

    monkeypatch.setattr(os, "replace", failing_on_c)
    with pytest.raises(PermissionError):
        with replace_together(*targets) as temporaries:
            for temporary in temporaries:
                temporary.write_text("new")
    monkeypatch.undo()
    assert [target.read_text() for target in targets] == ["old a", "old b", "old c"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]


def test_interrupt_during_the_renames_does_not_claim_untouched(trained, tmp_path, monkeypatch):
    cache = copy_cache(trained.cache, tmp_path / "cache")
    real_replace = os.replace
    sent = []

    def interrupted_while_renaming(source, target, **kwargs):
        if Path(target).name == "curves.png" and not sent:
            sent.append(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)  # held until all three are renamed
        return real_replace(source, target, **kwargs)

    # Python's own SIGINT handler, whatever this process inherited: a suite started in the background (`&`) inherits
    # SIGINT ignored, and the signal raised above would then be lost (the train-head run exited 0)
    monkeypatch.setattr(os, "replace", interrupted_while_renaming)
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    before = hashes(*(cache / name for name in HEAD_OUTPUTS))
    try:
        error = assert_error(invoke("train-head", "--cache", cache, "--epochs", 2), 130, "interrupted")
    finally:
        signal.signal(signal.SIGINT, inherited)
    monkeypatch.undo()
    assert "untouched" not in error and "head.pt" in error
    assert all(sha != before[path] for path, sha in hashes(*map(Path, before)).items())
    assert load_head(cache / "head.pt").train_config["epochs"] == 2


# --- 4. a huge file is a skip, read with bounded memory -------------------------------------------------------------


def test_huge_sparse_file_is_refused_unread(tmp_path):
    huge = tmp_path / "huge.jpg"
    with open(huge, "wb") as handle:
        handle.truncate(30 << 30)  # 30 GiB of holes: more than this machine's memory, no disk used
    with pytest.raises(ImageDecodeError, match="too large"):
        read_file(huge)


def test_truncated_jpeg_whose_header_claims_a_huge_image_is_skipped(tmp_path):
    from PIL import Image

    from headstart.features.images import decode_image

    buffer = io.BytesIO()
    Image.new("RGB", (9000, 9000), (200, 10, 10)).save(buffer, "JPEG")
    truncated = buffer.getvalue()[:634] + b"\xff\xd9"  # cut, then an end marker: libjpeg pads the rest with grey
    with pytest.raises(ImageDecodeError, match="truncated"):
        decode_image(truncated, draft_size=256)
    small = io.BytesIO()
    Image.new("RGB", (64, 48), (128, 128, 128)).save(small, "JPEG")  # a real, tiny, flat JPEG still decodes
    assert decode_image(small.getvalue()).size == (64, 48)


# --- 6. non-finite and out-of-range options; non-finite heads --------------------------------------------------------


@pytest.mark.parametrize(
    "option, value",
    [
        ("--lr", "nan"),
        ("--lr", "inf"),
        ("--momentum", "nan"),
        ("--lr", "1e300"),
        ("--seed", str(2**64)),
        ("--seed", "-1"),
    ],
)
def test_non_finite_or_out_of_range_option_is_a_usage_error(trained, tmp_path, option, value):
    cache = copy_cache(trained.cache, tmp_path / "cache")
    before = hashes(*(cache / name for name in HEAD_OUTPUTS))
    assert_error(invoke("train-head", "--cache", cache, option, value), 2, option)
    assert hashes(*map(Path, before)) == before


def test_head_that_diverged_is_not_saved(trained, tmp_path):
    cache = copy_cache(trained.cache, tmp_path / "cache")
    before = hashes(*(cache / name for name in HEAD_OUTPUTS))
    assert_error(invoke("train-head", "--cache", cache, "--lr", "3e38", "--epochs", 5), 1, "not finite")
    assert hashes(*map(Path, before)) == before
    strict_json(cache / "metrics.json")


def test_nan_head_left_by_an_older_version_is_refused_on_load(trained, tmp_path):
    path = copy_cache(trained.cache, tmp_path / "cache", ["head.pt"]) / "head.pt"
    data = torch.load(path, weights_only=True)
    del data["digest"]
    data["format_version"] = 1  # as the version before this one saved it, NaN and all
    data["state_dict"]["weight"][0, 0] = float("nan")
    torch.save(data, path)
    out = tmp_path / "predictions.jsonl"
    assert_error(
        invoke(
            "predict", trained.data / "val", "--out", out, "--format", "jsonl", "--cache", path.parent, "--workers", 0
        ),
        1,
        "head.pt",
        "not finite",
    )
    assert not out.exists()


# --- 12. smaller ones ---------------------------------------------------------------------------------------------


def test_out_name_of_the_longest_allowed_length(trained, tmp_path):
    out = tmp_path / ("p" * 251 + ".csv")  # 255 bytes, the longest name a Linux file system takes
    assert_ok(invoke("predict", trained.data / "val", "--out", out, "--cache", trained.cache, "--workers", 0))
    assert len(read_csv(out)) == 4


# --- 13. temporary files of killed runs are swept -------------------------------------------------------------------


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_temporaries_of_dead_writers_are_swept_and_live_ones_kept(trained, tmp_path):
    cache = copy_cache(trained.cache, tmp_path / "cache")
    stale, live = cache / f".hs-{_dead_pid()}-abc123.tmp", cache / f".hs-{os.getppid()}-def456.tmp"
    stale.touch()
    live.touch()
    assert_ok(invoke("train-head", "--cache", cache, "--epochs", 2))
    assert not stale.exists() and live.exists()


# --- 7. silent corruption of the head ---------------------------------------------------------------------------


def _flip_inside_weights(path: Path) -> None:
    """One flipped bit inside the stored weight tensor (found by its bytes, so the zip stays readable)."""
    data = bytearray(path.read_bytes())
    weight = load_head(path).head.weight.detach().numpy().tobytes()
    at = data.find(weight[:64])
    assert at > 0
    data[at + 5] ^= 0x10
    path.write_bytes(bytes(data))


def test_flipped_bit_in_the_head_weights_is_an_error_not_wrong_labels(trained, tmp_path):
    cache = copy_cache(trained.cache, tmp_path / "cache", ["head.pt"])
    _flip_inside_weights(cache / "head.pt")
    out = write_previous_csv(tmp_path / "out" / "predictions.csv")
    before = hashes(out)
    assert_error(
        invoke("predict", trained.data / "val", "--out", out, "--cache", cache, "--workers", 0),
        1,
        "head.pt",
        "checksum",
        "train-head`",
    )
    assert hashes(out) == before


def test_format_1_head_without_digest_still_loads(trained, tmp_path):
    path = copy_cache(trained.cache, tmp_path / "cache", ["head.pt"]) / "head.pt"
    data = torch.load(path, weights_only=True)
    del data["digest"]
    data["format_version"] = 1
    torch.save(data, path)
    assert load_head(path).classes == ["ants", "bees"]


# --- 9. a pipe (or anything not a regular file) under the name of a cache file -----------------------------------


def test_fifo_named_head_pt_is_refused_at_once(trained, tmp_path):
    cache = copy_cache(trained.cache, tmp_path / "cache", ["features.h5"])
    os.mkfifo(cache / "head.pt")
    outcome = spawn(command("predict", trained.data / "val", "--out", tmp_path / "p.csv", "--cache", cache), timeout=60)
    assert_error(outcome, 1, "head.pt", "not a regular file")


# --- 12. smaller ones (see also the temporary-name length below) ------------------------------------------------------


def test_csv_written_over_the_head_is_named_for_what_it_is(trained, tmp_path):
    cache = copy_cache(trained.cache, tmp_path / "cache", ["head.pt"])
    write_previous_csv(cache / "head.pt")
    error = assert_error(
        invoke("predict", trained.data / "val", "--out", tmp_path / "p.csv", "--cache", cache),
        1,
        "head.pt",
        "not a PyTorch checkpoint",
    )
    assert "not plain data" not in error


def test_write_error_names_the_file_being_replaced_not_its_temporary(tmp_path):
    target = tmp_path / "predictions.csv"
    with pytest.raises(OSError) as caught:
        with replace_together(target):
            raise OSError(28, "No space left on device")  # as a write() to a full disk raises it: no file name
    assert caught.value.filename == str(target) and ".tmp" not in str(caught.value)


# --- 5. any time stamp the OS can return ---------------------------------------------------------------------------


def test_modification_time_after_2262_is_stored_and_reused(tmp_path):
    data = make_dataset(tmp_path / "data")
    far = (1 << 63) + 10**18  # past the int64 nanoseconds of 2262
    os.utime(data / "train" / "ants" / "ants_0.jpg", ns=(far, far))
    extract = ["extract", "--data", data, "--cache", tmp_path / "cache", "--weights", "none", "--workers", 0]
    assert_ok(invoke(*extract))
    again = invoke(*extract)
    assert_ok(again)
    assert split_counts(again.stdout)["train"] == (8, 0, 8, 0)


# --- 7. silent corruption of the features ---------------------------------------------------------------------------


def _flip_inside_features(path: Path) -> None:
    from headstart.features.store import FeatureStore

    with FeatureStore(path) as store:
        row = store.read("train", slice(0, 1)).features[0].tobytes()
    data = bytearray(path.read_bytes())
    at = data.find(row[:64])
    assert at > 0
    data[at + 9] ^= 0x04
    path.write_bytes(bytes(data))


def test_flipped_bit_in_the_features_is_an_error_and_extract_recomputes_the_rows(trained, tmp_path):
    from headstart.features.store import FeatureStore

    cache = copy_cache(trained.cache, tmp_path / "cache")
    with FeatureStore(cache / "features.h5") as store:
        clean = store.read("train").features
    _flip_inside_features(cache / "features.h5")
    before = hashes(*(cache / name for name in HEAD_OUTPUTS))
    assert_error(invoke("train-head", "--cache", cache), 1, "features.h5", "checksum", "extract`")
    assert hashes(*map(Path, before)) == before
    again = invoke("extract", "--data", trained.data, "--cache", cache, "--weights", "none", "--workers", 0)
    assert_ok(again)
    assert split_counts(again.stdout)["train"][1] > 0  # the damaged rows were computed again, not copied
    with FeatureStore(cache / "features.h5") as store:
        np.testing.assert_allclose(store.read("train").features, clean, rtol=1e-5, atol=1e-5)


# --- 8. predict and evaluate never write over the cache's own files ---------------------------------------------------


@pytest.mark.parametrize(
    "step, name",
    [("predict", "head.pt"), ("predict", "features.h5"), ("predict", "metrics.json"), ("evaluate", "head.pt")],
)
def test_output_over_a_cache_file_is_refused(trained, tmp_path, step, name):
    cache = copy_cache(trained.cache, tmp_path / "cache")
    before = hashes(*(cache / n for n in ("features.h5", *HEAD_OUTPUTS)))
    assert_error(invoke(step, trained.data / "val", "--out", cache / name, "--cache", cache, "--workers", 0), 1, name)
    assert hashes(*map(Path, before)) == before


# --- 9. pipes under the names of cache files --------------------------------------------------------------------------


@pytest.mark.parametrize("step", ["train-head", "info", "extract", "extract-partial"])
def test_fifo_named_like_the_features_file_is_refused_at_once(trained, tmp_path, step):
    cache = copy_cache(
        trained.cache, tmp_path / "cache", ["head.pt"] if step != "extract-partial" else ["features.h5", "head.pt"]
    )
    fifo = cache / ("features.h5.partial-1-1" if step == "extract-partial" else "features.h5")
    os.mkfifo(fifo)
    args = {"train-head": ["train-head", "--cache", cache], "info": ["info", "--cache", cache]}.get(
        step, ["extract", "--data", trained.data, "--cache", cache, "--weights", "none", "--workers", 0]
    )
    outcome = spawn(command(*args), timeout=90)
    if step == "extract-partial":  # an unusable partial file is not resumed from, and goes with the others
        assert_ok(outcome)
        assert not fifo.exists()
    else:
        assert_error(outcome, 1, "features.h5", "not a regular file")


# --- 11. a features file another program holds open for writing --------------------------------------------------

HOLD_OPEN = "import h5py, sys, time; f = h5py.File(sys.argv[1], 'r+'); print('open', flush=True); time.sleep(60)"


@pytest.mark.parametrize("step", ["train-head", "extract"])
def test_features_open_in_another_program_is_said_and_the_cache_kept(trained, tmp_path, step):
    from headstart.features.store import FeatureStore

    cache = copy_cache(trained.cache, tmp_path / "cache")
    with FeatureStore(cache / "features.h5") as store:
        rows = store.read("train").features
    holder = subprocess.Popen([sys.executable, "-c", HOLD_OPEN, str(cache / "features.h5")], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b"open\n"
        args = (
            ["train-head", "--cache", cache]
            if step == "train-head"
            else ["extract", "--data", trained.data, "--cache", cache, "--weights", "none", "--workers", 0]
        )
        assert_error(invoke(*args), 1, "features.h5", "another program")
    finally:
        holder.kill()
        holder.wait()
    with FeatureStore(cache / "features.h5") as store:  # the holder's own open rewrote a flag: compare the rows
        np.testing.assert_array_equal(store.read("train").features, rows)


# --- 12. smaller ones --------------------------------------------------------------------------------------------


def test_closed_stdout_is_not_a_failure_of_the_work(trained, tmp_path):
    cache = tmp_path / "cache"
    extract = " ".join(
        map(str, command("extract", "--data", trained.data, "--cache", cache, "--weights", "none", "--workers", 0))
    )
    done = subprocess.run(
        ["bash", "-c", f'{extract} | head -c 20 > /dev/null; echo "${{PIPESTATUS[0]}}"'],
        cwd=ROOT,
        env=SUBPROCESS_ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.strip() == "0", done.stderr
    assert "Traceback" not in done.stderr
    assert (cache / "features.h5").exists()


def test_no_resuming_message_when_no_row_is_reused(trained, tmp_path):
    other = make_dataset(
        tmp_path / "other", classes=("ants", "bees"), per_class={"train": 1, "val": 1}, first_seed=1000
    )
    for image in other.rglob("*.jpg"):
        image.rename(image.with_name("renamed_" + image.name))
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy(trained.cache / "features.h5", cache / "features.h5.partial-1-1")  # compatible, no row of `other`
    outcome = invoke("extract", "--data", other, "--cache", cache, "--weights", "none", "--workers", 0)
    assert_ok(outcome)
    assert not [line for line in outcome.output.splitlines() if line.startswith("resuming")], outcome.output


def test_class_without_training_rows_is_warned_about(tmp_path):
    data = make_dataset(tmp_path / "data")
    for image in (data / "train" / "bees").iterdir():
        image.write_bytes(b"not an image")
    cache = tmp_path / "cache"
    assert_ok(invoke("extract", "--data", data, "--cache", cache, "--weights", "none", "--workers", 0))
    trained_head = invoke("train-head", "--cache", cache)
    assert_ok(trained_head)
    assert any(
        line.startswith("warning:") and "bees" in line and "no training rows" in line
        for line in trained_head.output.splitlines()
    ), trained_head.output


def test_small_disk_that_holds_the_result_is_enough(private_mounts, trained, tmp_path):
    """3 MB, the previous 1.1 MB features file on it, and a re-extract (another preprocessing) writing 1.1 MB more:
    it fits, so it must not be refused for want of a fixed 2 MB margin."""
    argv = command(
        "extract",
        "--data",
        trained.data,
        "--cache",
        tmp_path / "mnt" / "cache",
        "--weights",
        "none",
        "--workers",
        0,
        "--preprocess",
        "notebook",
    )
    outcome, sums = run_on_tmpfs(
        tmp_path, {"cache/features.h5": trained.cache / "features.h5"}, argv, size_kb=3072, free_kb=None
    )
    assert_ok(outcome)
    assert sums["cache/features.h5"] != hashes(trained.cache / "features.h5")[str(trained.cache / "features.h5")]


# --- 14. an unreachable Ray cluster ----------------------------------------------------------------------------------


def test_unreachable_ray_address_is_a_clear_error(trained, tmp_path):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outcome = spawn(
        command(
            "extract",
            "--data",
            trained.data,
            "--cache",
            tmp_path / "cache",
            "--weights",
            "none",
            "--engine",
            "ray",
            "--address",
            f"127.0.0.1:{port}",
        ),
        timeout=90,
    )
    assert_error(outcome, 1, f"127.0.0.1:{port}", "cannot reach")


def test_a_listener_that_is_not_ray_is_a_clear_error_not_minutes_of_retries(trained, tmp_path):
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]

    def serve():  # accepts and stays silent, the connection kept open: ray.init retried this for minutes
        kept = []
        while True:
            try:
                kept.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=serve, daemon=True).start()
    try:
        outcome = spawn(
            command(
                "extract",
                "--data",
                trained.data,
                "--cache",
                tmp_path / "cache",
                "--weights",
                "none",
                "--engine",
                "ray",
                "--address",
                f"127.0.0.1:{port}",
            ),
            timeout=90,  # a hang guard: the probe gives up after CONNECT_SECONDS + ANSWER_SECONDS (8 s)
        )
    finally:
        listener.close()
    assert_error(outcome, 1, f"127.0.0.1:{port}", "something else listens there")
    assert not (tmp_path / "cache" / "features.h5").exists()


# --- 10. the lock dies with its process, whatever its children do ---------------------------------------------------

HOLD_LOCK_AND_FORK = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, sys.argv[2])
    from headstart.features.files.lock import cache_lock
    with cache_lock(sys.argv[1], "extract"):
        started, running = os.pipe()
        if os.fork() == 0:   # a decoding worker that outlives its parent, as DataLoader's do for seconds
            os.write(running, b"1")  # fork has returned here: the at-fork handler that drops the lock has run
            time.sleep(60)
            os._exit(0)
        os.read(started, 1)  # "locked" only once the worker runs: a loaded machine may start it late
        print("locked", flush=True)
        time.sleep(60)
""")


def test_lock_is_free_once_its_holder_is_killed_even_if_its_children_live(trained, tmp_path):
    cache = copy_cache(trained.cache, tmp_path / "cache")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK_AND_FORK, str(cache), str(ROOT)],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert holder.stdout.readline() == b"locked\n"
        holder.kill()  # the main process only, as the OOM killer does
        holder.wait()
        assert_ok(invoke("train-head", "--cache", cache, "--epochs", 2))
    finally:
        _kill_group(holder.pid)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# --- the harness: stop real runs at random moments ------------------------------------------------------------------


@dataclass
class Step:
    """One command of the harness: the outputs it replaces, and how to tell a complete new output from the old."""

    name: str
    outputs: list[Path]  # replaced all together or not at all
    folder: Path  # where stray files would be

    def args(self, bench: Bench, variant: int) -> list:
        if self.name == "extract":  # two preprocessings: each run rebuilds every row, so its file is new
            return [
                "extract",
                "--data",
                bench.data,
                "--cache",
                bench.cache,
                "--weights",
                "none",
                "--preprocess",
                ("imagenet", "notebook")[variant],
            ]
        if self.name == "train-head":  # many epochs, so that some signals land in the training itself
            return ["train-head", "--cache", bench.cache, "--epochs", 1500 + variant]
        if self.name in EXTENDED_STEPS:
            return _extended_args(self.name, bench, variant)
        return ["predict", bench.data, "--out", bench.out, "--cache", bench.cache, "--top-k", 1 + variant]

    def is_new(self, bench: Bench, variant: int) -> bool:
        """Every output complete and made with this variant's options."""
        if self.name == "extract":
            from headstart.features.store import FeatureStore

            with FeatureStore(bench.cache / "features.h5") as store:
                return (
                    store.header.preprocessing.name == ("imagenet", "notebook")[variant]
                    and store.count("train") == 8
                    and store.count("val") == 4
                )
        if self.name == "train-head":
            metrics = strict_json(bench.cache / "metrics.json")
            epochs = 1500 + variant
            return (
                load_head(bench.cache / "head.pt").train_config["epochs"] == epochs
                and metrics["train_config"]["epochs"] == epochs
                and len(metrics["history"]) == epochs
            )
        if self.name in EXTENDED_STEPS:
            return _extended_is_new(self.name, bench, variant)
        rows = read_csv(bench.out)
        return len(rows) == 12 and ("label_2" in rows[0]) == (variant == 1)


EXTENDED_STEPS = ("audit", "sweep", "export")  # the long variant's: each run takes many seconds
SWEEP_GRID = "[sgd]\nepochs = [1, 2]\nbatch_size = 4\n"


def _extended_args(name: str, bench: Bench, variant: int) -> list:
    """audit (its folds), sweep (its seed) and export (to one file) with a variant's options."""
    if name == "audit":
        return ["audit", "--cache", bench.cache, "--folds", 2 + variant, "--curve-seeds", 1, "--report-rows", 2]
    if name == "sweep":
        grid = bench.out.parent / "grid.toml"
        grid.parent.mkdir(parents=True, exist_ok=True)
        grid.write_text(SWEEP_GRID)
        return ["sweep", "--cache", bench.cache, "--grid", grid, "--folds", 2, "--seed", variant]
    return ["export", "--cache", bench.cache, "--out", bench.out.parent / "classifier.pt", "--sample", 1 + variant]


def _extended_is_new(name: str, bench: Bench, variant: int) -> bool:
    if name == "audit":
        return strict_json(bench.cache / "audit" / "audit.json")["label_issues"]["folds"] == 2 + variant
    if name == "sweep":
        metrics = strict_json(bench.cache / "metrics.json")
        return metrics["sweep"]["seed"] == variant == load_head(bench.cache / "head.pt").metrics["sweep"]["seed"]
    extra = {"headstart.json": ""}
    torch.jit.load(str(bench.out.parent / "classifier.pt"), _extra_files=extra)  # whole: it loads
    return json.loads(extra["headstart.json"])["classes"] == ["ants", "bees"]


@dataclass
class Bench:
    data: Path
    cache: Path
    out: Path
    variants: dict  # step name -> the variant its current outputs were made with


def _bench(tmp: Path, extended: bool = False) -> Bench:
    data, cache = make_dataset(tmp / "data"), tmp / "cache"
    bench = Bench(data, cache, tmp / "out" / "predictions.csv", {})
    for name, step in _steps(bench, extended).items():
        assert_ok(invoke(*step.args(bench, 0)))
        bench.variants[name] = 0
    return bench


def _steps(bench: Bench, extended: bool = False) -> dict[str, Step]:
    """The harness's commands; extended: audit, sweep and export too."""
    steps = {
        "extract": Step("extract", [bench.cache / "features.h5"], bench.cache),
        "train-head": Step("train-head", [bench.cache / name for name in HEAD_OUTPUTS], bench.cache),
        "predict": Step("predict", [bench.out], bench.out.parent),
    }
    if extended:
        audit = bench.cache / "audit"
        steps["audit"] = Step("audit", [audit / "audit.json", audit / "label_issues.csv"], audit)
        sweep = [bench.cache / name for name in ("head.pt", "metrics.json", "sweep.csv")]
        steps["sweep"] = Step("sweep", sweep, bench.cache)
        steps["export"] = Step("export", [bench.out.parent / "classifier.pt"], bench.out.parent)
    return steps


@dataclass
class Trial:
    step: str
    how: str  # SIGINT / SIGTERM / SIGKILL to the process group, or SIGKILL-main to the main process only
    delay: float
    code: int
    problems: list[str]


def _stray(step: Step, killed: bool) -> list[str]:
    """Files that should not be there: a killed or interrupted extract keeps its partial file on purpose, and a
    SIGKILLed run cannot remove its temporaries (the next run sweeps them)."""
    found = leftovers(step.folder)
    if step.name == "extract":
        found = [name for name in found if ".partial-" not in name]
    return [] if killed else found


FIRST_LINE = "from headstart.features.interrupts import"  # cli.py's first statement: the handlers' module


def before_our_handlers(code: int, signum: int, text: str) -> bool:
    """Python's own report of a Ctrl-C that came before cli.py's first statement had installed the handlers (while
    the interpreter started, or while that statement imported their module): no code of ours could catch it, and
    nothing was written yet. A loaded machine stretches that window past any fixed delay (0.16 s, load 17)."""
    lines = text.strip().splitlines()
    if signum != signal.SIGINT or code != -signal.SIGINT or not lines or lines[-1].strip() != "KeyboardInterrupt":
        return False
    frames = [number for number, line in enumerate(lines) if line.strip().startswith('File "')]
    ours = [number for number in frames if lines[number].strip().startswith(f'File "{ROOT / "cli.py"}"')]
    return all(number + 1 < len(lines) and lines[number + 1].strip().startswith(FIRST_LINE) for number in ours)


def _one_trial(bench: Bench, steps: dict[str, Step], rng: random.Random) -> Trial:
    name = rng.choice(list(steps))
    how = rng.choice(["SIGINT", "SIGTERM", "SIGKILL", "SIGKILL-main"])
    # half the signals in the first second (imports), the rest spread over the run; not before 0.1 s, when the
    # interpreter itself may still be starting (no code of ours has run: a signal then is Python's to report)
    delay = rng.uniform(0.1, 1.0) if rng.random() < 0.5 else rng.uniform(1.0, 8.0)
    step, variant = steps[name], 1 - bench.variants[name]
    before = hashes(*step.outputs)
    process = subprocess.Popen(
        command(*step.args(bench, variant)),
        cwd=ROOT,
        env=SUBPROCESS_ENV,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    signum = getattr(signal, how.split("-")[0])
    try:
        time.sleep(delay)
        try:
            os.kill(process.pid, signum) if how == "SIGKILL-main" else os.killpg(process.pid, signum)
        except ProcessLookupError:
            pass
        try:
            stdout, stderr = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            _kill_group(process.pid)
            stdout, stderr = process.communicate()
            return Trial(name, how, delay, process.returncode, ["hung for 120 s after the signal"])
        outcome = Outcome(process.returncode, stdout.decode(errors="replace"), stderr.decode(errors="replace"))
        problems = _judge(outcome, signum, step, bench, variant, before)
        # an immediate re-run, while the workers of a main process killed alone may still be alive
        again = invoke(*step.args(bench, variant))
        if again.crash or again.code != 0:
            problems.append(f"the re-run failed ({again.code}): {(again.crash or again.output)[-600:]}")
        else:
            bench.variants[name] = variant
            if not step.is_new(bench, variant):
                problems.append("the re-run's outputs are not what it was asked for")
            if leftovers(step.folder):
                problems.append(f"stray files after the re-run: {leftovers(step.folder)}")
        return Trial(name, how, round(delay, 2), outcome.code, problems)
    finally:
        _kill_group(process.pid)


def _judge(outcome: Outcome, signum: int, step: Step, bench: Bench, variant: int, before: dict) -> list[str]:
    problems = []
    text = outcome.output
    early = before_our_handlers(outcome.code, signum, text)
    if "Traceback" in text and not early:
        problems.append(f"traceback: {text[-800:]}")
    now = hashes(*step.outputs)
    untouched = now == before
    replaced = all(now[path] != before[path] for path in now) and step.is_new(bench, variant)
    if not (untouched or replaced):
        problems.append(f"outputs neither untouched nor all new: {[Path(p).name for p in now if now[p] != before[p]]}")
    errors = [line for line in outcome.stderr.splitlines() if line.startswith("Error:")]  # click writes it there
    if outcome.code == 0:
        if not replaced:
            problems.append("exit 0 without new outputs")
    elif signum != signal.SIGKILL and outcome.code == 128 + signum:
        if len(errors) != 1:
            problems.append(f"not one Error line: {text[-800:]}")
        elif ("untouched" in errors[0]) != untouched:
            problems.append(f"the message does not match the outputs (untouched={untouched}): {errors[0]}")
    elif outcome.code == -signal.SIGKILL == -signum:
        pass  # SIGKILL cannot be handled: only the files are judged
    elif outcome.code == -signum and (early or not text.strip()):
        pass  # a signal before Python ran any code of ours: the interpreter's default action, or its own report
    else:
        problems.append(f"exit {outcome.code} for {signal.Signals(signum).name}: {text[-800:]}")
    stray = _stray(step, killed=signum == signal.SIGKILL)
    if stray:
        problems.append(f"stray files: {stray}")
    return problems


def _run_harness(tmp: Path, trials: int, seed: int, extended: bool = False) -> list[Trial]:
    bench = _bench(tmp, extended)
    steps = _steps(bench, extended)
    rng = random.Random(seed)
    return [_one_trial(bench, steps, rng) for _ in range(trials)]


def _report(results: list[Trial]) -> str:
    return "\n".join(f"{t.step} {t.how} at {t.delay} s -> {t.code}: {'; '.join(t.problems) or 'ok'}" for t in results)


def test_adversarial_stops_short(tmp_path):
    """The suite's variant: a few trials, most of them in the first second, where the windows were (the long
    variants below run 120 and 60; the suite keeps 4, a smoke check of the harness and the commands' handlers). Seed
    14 draws every step and three kinds of stop: extract SIGTERM at 0.33 s, predict SIGINT at 3.12 s, predict
    SIGKILL of the main process at 0.92 s, train-head SIGTERM at 3.21 s."""
    results = _run_harness(tmp_path, trials=4, seed=14)
    assert {t.step for t in results} == {"extract", "train-head", "predict"}
    assert not any(t.problems for t in results), _report(results)


@pytest.mark.long
def test_adversarial_stops_long(tmp_path):
    """120 trials (HEADSTART_TRIALS to change): about 40 per step, so a window that 1 run in 10 of a step falls into
    is missed with probability 0.9 ** 40, 1.5%."""
    results = _run_harness(tmp_path, trials=int(os.environ.get("HEADSTART_TRIALS", 120)), seed=20)
    print(_report(results))
    assert not any(t.problems for t in results), _report(results)


@pytest.mark.long
def test_adversarial_stops_long_audit_sweep_export(tmp_path):
    """audit, sweep and export beside the three above: 60 trials (HEADSTART_TRIALS_EXTENDED), 20 or so per new step
    (each run takes seconds, where the windows are as likely as in the others)."""
    trials = int(os.environ.get("HEADSTART_TRIALS_EXTENDED", 60))
    results = _run_harness(tmp_path, trials=trials, seed=30, extended=True)
    print(_report(results))
    assert not any(t.problems for t in results), _report(results)


# --- apply: stopped at any moment, every file in its old place or its new one ----------------------------------------

APPLY_FILES = 300  # enough renames, each journalled and fsynced first, that signals land among them


@dataclass
class ApplyBench:
    """A dataset (class folders, or a label table), its decisions, and its files before and after a whole apply."""

    data: Path
    quarantine: Path
    decisions: Path
    table: Path | None
    original: dict[str, bytes]
    applied: dict[str, bytes]

    def args(self, *more) -> list:
        return ["apply", *more, "--data", self.data, *(["--labels", self.table] if self.table else [])]


def _apply_tree(data: Path, quarantine: Path) -> dict[str, bytes]:
    """Every file under the dataset and quarantine folders by where it is; the journals, their table copies and the
    temporaries of a killed write left out."""
    found = {}
    for folder, prefix in ((data, "data/"), (quarantine, "quarantine/")):
        for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
            if path.is_file() and not path.name.startswith(("apply-", ".hs-")):
                found[prefix + path.relative_to(folder).as_posix()] = path.read_bytes()
    return found


def _apply_bench(tmp: Path, table: bool) -> ApplyBench:
    from headstart.features.decisions.formats import Decision, write_decisions
    from headstart.features.decisions.plan import file_sha256

    data, rows, decisions = tmp / "data", ["path,label,split"], []
    actions = [("relabel", "bees"), ("remove", ""), ("move-split", "val")]
    for number in range(APPLY_FILES):
        name = f"img/f{number:03d}.png" if table else f"train/ants/f{number:03d}.png"
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        (data / name).write_bytes(f"image {number}\n".encode())
        rows.append(f"{name},ants,train")
        action, argument = actions[number % 3]
        decisions.append(Decision(name, action, argument, file_sha256(data / name) or ""))
    if table:
        (data / "labels.csv").write_text("\n".join(rows) + "\n")
    write_decisions(tmp / "decisions.csv", decisions)
    reference = tmp / "reference"
    shutil.copytree(data, reference / "data")
    bench = ApplyBench(data, tmp / "data-quarantine", tmp / "decisions.csv", data / "labels.csv" if table else None,
                       _apply_tree(data, tmp / "data-quarantine"), {})  # fmt: skip
    labels = ["--labels", reference / "data" / "labels.csv"] if table else []
    assert_ok(invoke("apply", bench.decisions, "--data", reference / "data", *labels, "--yes"))
    bench.applied = _apply_tree(reference / "data", reference / "data-quarantine")
    shutil.rmtree(reference)
    return bench


def _in_old_or_new_place(bench: ApplyBench) -> list[str]:
    """Each file where it was or where apply puts it, byte for byte; none lost, none doubled."""
    now = _apply_tree(bench.data, bench.quarantine)
    misplaced = [path for path, data in now.items() if data not in (bench.original.get(path), bench.applied.get(path))]
    table = "data/labels.csv"
    images = sorted(data for path, data in now.items() if path != table)
    problems = [f"files neither old nor new: {misplaced[:5]}"] if misplaced else []
    if images != sorted(data for path, data in bench.original.items() if path != table):
        problems.append(f"files lost or doubled: {len(images)} images for {len(bench.original)}")
    return problems


def _undo_all(bench: ApplyBench) -> list[str]:
    """apply --undo until no journal is left: the dataset as it was, files and folders."""
    for _ in range(3):
        outcome = invoke(*bench.args("--undo"))
        if outcome.code != 0:
            if "no apply journal to undo" not in outcome.output:
                return [f"undo failed ({outcome.code}): {(outcome.crash or outcome.output)[-600:]}"]
            break
        if "0 left" not in outcome.output:
            return [f"undo left files: {outcome.output[-600:]}"]
    problems = [] if _apply_tree(bench.data, bench.quarantine) == bench.original else ["undo did not restore it all"]
    folders = sorted(str(path.relative_to(bench.data)) for path in bench.data.rglob("*") if path.is_dir())
    if folders != (["img"] if bench.table else ["train", "train/ants"]):
        problems.append(f"folders apply made are left: {folders}")
    return problems


def _apply_trial(tmp: Path, rng: random.Random, table: bool) -> Trial:
    bench = _apply_bench(tmp, table)
    how = rng.choice(["SIGINT", "SIGTERM", "SIGKILL"])
    signum = getattr(signal, how)
    delay = rng.uniform(0.1, 1.0) if rng.random() < 0.5 else rng.uniform(0.8, 2.5)  # imports, then the renames
    process = subprocess.Popen(
        command(*bench.args(bench.decisions, "--yes")),
        cwd=ROOT, env=SUBPROCESS_ENV, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        time.sleep(delay)
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            pass
        stdout, stderr = process.communicate(timeout=120)
    finally:
        _kill_group(process.pid)
    text = (stdout + stderr).decode(errors="replace")
    early = before_our_handlers(process.returncode, signum, text)
    problems = [f"traceback: {text[-800:]}"] if "Traceback" in text and not early else []
    if process.returncode not in (0, 128 + signum, -signal.SIGKILL) and not (
        process.returncode == -signum and (early or not text)
    ):
        problems.append(f"exit {process.returncode} for {how}: {text[-800:]}")
    problems += _in_old_or_new_place(bench)
    now = _apply_tree(bench.data, bench.quarantine)
    moved = sum(path not in bench.original for path in now) if not table else int(now != bench.original)
    if rng.random() < 0.5:  # a re-run completes the apply; then everything is undone
        again = invoke(*bench.args(bench.decisions, "--yes"))
        if again.code != 0 or _apply_tree(bench.data, bench.quarantine) != bench.applied:
            problems.append(f"the re-run did not complete the apply ({again.code}): {again.output[-600:]}")
    problems += _undo_all(bench)
    step = f"apply --labels ({moved}/1 rewritten)" if table else f"apply ({moved}/{APPLY_FILES} moved)"
    return Trial(step, how, round(delay, 2), process.returncode, problems)


def _apply_harness(tmp: Path, trials: int, seed: int) -> list[Trial]:
    rng = random.Random(seed)
    return [_apply_trial(tmp / f"trial-{number}", rng, table=number % 2 == 1) for number in range(trials)]


def test_adversarial_apply_stops_short(tmp_path):
    """apply on class folders, then on a label table, each stopped once at a random moment."""
    results = _apply_harness(tmp_path, trials=2, seed=40)
    assert not any(t.problems for t in results), _report(results)


@pytest.mark.long
def test_adversarial_apply_stops_long(tmp_path):
    """40 trials (HEADSTART_TRIALS_APPLY), half on folders, half on a label table; re-run or undone after each."""
    results = _apply_harness(tmp_path, trials=int(os.environ.get("HEADSTART_TRIALS_APPLY", 40)), seed=50)
    print(_report(results))
    assert not any(t.problems for t in results), _report(results)


def test_a_ctrl_c_before_the_handlers_is_told_apart_from_one_after():
    """The judge forgives Python's own KeyboardInterrupt report only where cli.py had not yet reached its handlers."""
    statements = [line for line in (ROOT / "cli.py").read_text().splitlines() if line.startswith(("from ", "import "))]
    assert statements[1].startswith(FIRST_LINE), "the judge's rule names cli.py's first import (after __future__)"
    cli = ROOT / "cli.py"

    def report(line: str, source: str) -> str:
        return f'Traceback (most recent call last):\n  File "{cli}", line {line}, in <module>\n    {source}\n' + (
            '  File "<frozen importlib._bootstrap>", line 1360, in _find_and_load\nKeyboardInterrupt\n'
        )

    early = report("5", f"{FIRST_LINE} Stopped, install_handlers")
    assert before_our_handlers(-signal.SIGINT, signal.SIGINT, early)
    assert before_our_handlers(-signal.SIGINT, signal.SIGINT, "Traceback (most recent call last):\n  File "
                               '"<frozen site>", line 1, in <module>\nKeyboardInterrupt\n')  # fmt: skip
    assert not before_our_handlers(-signal.SIGINT, signal.SIGINT, report("12", "import click"))
    assert not before_our_handlers(1, signal.SIGINT, early)
    assert not before_our_handlers(-signal.SIGTERM, signal.SIGTERM, early)
    assert not before_our_handlers(-signal.SIGINT, signal.SIGINT, early.replace("KeyboardInterrupt", "ValueError: x"))
