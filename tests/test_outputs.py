"""files.outputs: every output option refuses the cache's own files and a second output's file, and a device or
a named pipe given as an output is written in place (streamed text) or refused, never unlinked or replaced."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

import pytest
from cli_helpers import assert_error, assert_ok, run
from conftest import make_dataset

from headstart.features.files.atomic import atomic_write
from headstart.features.files.outputs import Output, OutputError, check_outputs
from headstart.features.files.regular import UnsafeFileError

UNUSED_DEVICE = os.makedev(240, 77)  # a number in the "local/experimental" range: no driver behind it here


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    """A cache folder with its own files, as bytes to compare: the refusals come before anything is loaded."""
    folder = tmp_path / "cache"
    for name in ("head.pt", "features.h5", "metrics.json", "calibration.png", "sweep.csv", "audit/report.html"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(f"kept {name}".encode())
    return folder


def _contents(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    work = tmp_path_factory.mktemp("trained")
    data, cache = make_dataset(work / "data"), work / "cache"
    assert_ok(run("extract", "--data", data, "--cache", cache, "--weights", "none", "--workers", 0))
    assert_ok(run("train-head", "--cache", cache, "--epochs", 2))
    return data, cache


def _node(path: Path, kind: int) -> Path:
    try:
        if kind == stat.S_IFIFO:
            os.mkfifo(path)
        else:
            os.mknod(path, kind | 0o600, UNUSED_DEVICE if kind == stat.S_IFBLK else os.makedev(1, 3))
    except PermissionError:
        pytest.skip("making device nodes needs CAP_MKNOD")
    return path


# --- the cache's own files ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, ours",
    [
        (["evaluate", "{data}", "--html", "{cache}/head.pt"], "head.pt"),
        (["evaluate", "{data}", "--html", "{cache}/audit/report.html"], "audit/report.html"),
        (["evaluate", "{data}", "--out", "{cache}/features.h5"], "features.h5"),
        (["export", "--out", "{cache}/calibration.png"], "calibration.png"),
        (["export", "--out", "{cache}/sweep.csv", "--format", "torchvision"], "sweep.csv"),
        (["export", "--out", "{cache}/audit/new.pt"], "audit/new.pt"),
        (["predict", "{data}", "--out", "{cache}/metrics.json"], "metrics.json"),
    ],
)
def test_no_output_option_replaces_a_cache_file(cache, tmp_path, args, ours):
    before = _contents(cache)
    filled = [arg.format(cache=cache, data=tmp_path / "data") for arg in args]
    result = run(*filled, "--cache", cache)
    assert_error(result, ours, "one of headstart's own files", "write it somewhere else")
    assert _contents(cache) == before


@pytest.mark.parametrize("link", [os.link, os.symlink])
def test_a_link_to_a_cache_file_is_refused(cache, tmp_path, link):
    before = _contents(cache)
    link(cache / "head.pt", tmp_path / "page.html")
    result = run("evaluate", tmp_path / "data", "--cache", cache, "--html", tmp_path / "page.html")
    assert_error(result, "would replace head.pt")
    assert _contents(cache) == before


@pytest.mark.parametrize("how", ["same name", "hard link", "symbolic link"])
def test_two_outputs_of_one_command_may_not_be_one_file(cache, tmp_path, how):
    out, html = tmp_path / "wrong.csv", tmp_path / "page.html"
    out.write_text("previous mistakes\n")
    if how == "same name":
        html = out
    elif how == "hard link":
        os.link(out, html)
    else:
        html.symlink_to(out)
    result = run("evaluate", tmp_path / "data", "--cache", cache, "--out", out, "--html", html)
    assert_error(result, "are the same file", "--out", "--html")
    assert out.read_text() == "previous mistakes\n"


def test_distinct_outputs_pass(cache, tmp_path):
    check_outputs(cache, Output("--out", tmp_path / "a.csv", streamed=True), Output("--html", tmp_path / "a.html"))
    with pytest.raises(OutputError, match="one of headstart's own"):
        check_outputs(cache, Output("--out", cache))


# --- devices and named pipes --------------------------------------------------------------------------------------


def test_predict_streams_into_a_character_device_in_place(trained, tmp_path):
    data, cache = trained
    device = _node(tmp_path / "sink", stat.S_IFCHR)
    assert_ok(run("predict", data / "val", "--out", device, "--cache", cache))
    assert stat.S_ISCHR(os.lstat(device).st_mode)
    assert os.lstat(device).st_rdev == os.makedev(1, 3)
    assert sorted(os.listdir(tmp_path)) == ["sink"]  # no temporary file left beside it


def test_evaluate_streams_its_csv_into_a_device_and_refuses_its_page_there(trained, tmp_path):
    data, cache = trained
    device = _node(tmp_path / "sink", stat.S_IFCHR)
    assert_ok(run("evaluate", data / "val", "--cache", cache, "--out", device))
    result = run("evaluate", data / "val", "--cache", cache, "--out", tmp_path / "x.csv", "--html", device)
    assert_error(result, "--html", "is a character device", "never replaced")
    assert stat.S_ISCHR(os.lstat(device).st_mode)
    assert not (tmp_path / "x.csv").exists()


def _read_fifo(path: Path, into: list[bytes], ready: threading.Event, deadline: float) -> None:
    """Hold path open for reading (at once, without waiting for a writer) and read until the writer closes it."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    ready.set()
    try:
        while time.monotonic() < deadline:
            try:
                chunk = os.read(descriptor, 65536)
            except BlockingIOError:  # a writer is there, nothing written yet
                chunk = None
            if chunk:
                into.append(chunk)
            elif chunk == b"" and into:  # end of file after the writer wrote: done
                return
            else:
                time.sleep(0.01)
    finally:
        os.close(descriptor)


def test_predict_streams_into_a_named_pipe_its_reader_holds_open(trained, tmp_path):
    data, cache = trained
    fifo = _node(tmp_path / "pipe", stat.S_IFIFO)
    received: list[bytes] = []
    ready = threading.Event()
    reader = threading.Thread(target=_read_fifo, args=(fifo, received, ready, time.monotonic() + 120), daemon=True)
    reader.start()
    assert ready.wait(30)
    assert_ok(run("predict", data / "val", "--out", fifo, "--cache", cache, "--format", "jsonl"))
    reader.join(60)
    assert not reader.is_alive()
    lines = b"".join(received).decode().splitlines()
    assert len(lines) == 4 and all(line.startswith('{"path"') for line in lines)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_named_pipe_no_one_reads_is_refused_at_once(trained, tmp_path):
    data, cache = trained
    fifo = _node(tmp_path / "pipe", stat.S_IFIFO)
    result = run("predict", data / "val", "--out", fifo, "--cache", cache)
    assert_error(result, str(fifo), "no one is reading")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.mark.parametrize(
    "args, kind, node",
    [
        (["export", "--out", "{node}"], "a named pipe", stat.S_IFIFO),
        (["export", "--out", "{node}"], "a character device", stat.S_IFCHR),
        (["predict", "{data}", "--out", "{node}"], "a block device", stat.S_IFBLK),
        (["evaluate", "{data}", "--out", "{node}"], "a block device", stat.S_IFBLK),
    ],
)
def test_outputs_that_cannot_stream_refuse_special_files(cache, tmp_path, args, kind, node):
    made = _node(tmp_path / "node", node)
    result = run(*[arg.format(node=made, data=tmp_path / "data") for arg in args], "--cache", cache)
    assert_error(result, kind, "never replaced")
    assert stat.S_IFMT(os.lstat(made).st_mode) == node


def test_write_then_rename_never_replaces_a_special_file(tmp_path):
    fifo = _node(tmp_path / "pipe", stat.S_IFIFO)
    with pytest.raises(UnsafeFileError, match="never replaces"):
        with atomic_write(fifo) as handle:
            handle.write(b"x")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(os.listdir(tmp_path)) == ["pipe"]
