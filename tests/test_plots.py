"""heads/plots.py: train-head's plots drawn in a helper process are the plots drawn here, and any trouble with the
helper means drawing here, never a missing plot, a crash or a hang."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT
from PIL import Image

import headstart.heads.plots as plots_module
from headstart.heads.plots import PlotsAhead, PlotsHere

HISTORY = [
    {
        "epoch": epoch,
        "train_loss": 1 / epoch,
        "train_acc": 0.5 + epoch / 20,
        "val_loss": 1.1 / epoch,
        "val_acc": 0.45 + epoch / 20,
    }
    for epoch in range(1, 6)
]
RELIABILITY = {"confidence": [0.55, 0.75, 0.95], "accuracy": [0.5, 0.8, 0.9], "counts": [10, 20, 30]}
REQUESTS = [
    ("curves", {"history": HISTORY}),
    ("calibration", {"before": RELIABILITY, "after": RELIABILITY, "temperature": 1.5}),
    ("calibration", {"before": None, "after": None, "temperature": None}),
]


def drawn_here() -> list[bytes]:
    return [PlotsHere().start(kind, data)() for kind, data in REQUESTS]


def not_here(monkeypatch) -> None:
    """Drawing in this process fails from now on: whatever arrives was drawn by the helper."""

    def refuse(kind, data):
        raise AssertionError(f"{kind} drawn in this process")

    monkeypatch.setattr(plots_module, "render", refuse)


def fake_python(tmp_path: Path, monkeypatch, script: str) -> None:
    """The helper started as this shell script instead of Python."""
    path = tmp_path / "fake-python"
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(path))


def test_the_helper_draws_the_same_pngs_as_this_process(monkeypatch):
    expected = drawn_here()
    not_here(monkeypatch)
    with PlotsAhead() as plots:
        pending = [plots.start(kind, data) for kind, data in REQUESTS]  # all asked for before any is read
        pngs = [png() for png in pending]
    assert pngs == expected
    assert [Image.open(io.BytesIO(png)).size for png in pngs] == [(1000, 400), (550, 500), (550, 500)]


def test_the_helper_and_the_plots_import_no_torch():
    """The helper's head start is its matplotlib import beside torch's; importing torch itself would waste it."""
    code = (
        "import sys, headstart.heads.plots, headstart.heads.curves, headstart.heads.trust.plot; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_a_heads_package_in_the_current_folder_does_not_shadow_the_helpers(tmp_path, monkeypatch):
    (tmp_path / "heads").mkdir()
    (tmp_path / "heads" / "__init__.py").write_text("raise SystemExit('the wrong heads')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    expected = drawn_here()[0]
    not_here(monkeypatch)
    with PlotsAhead() as plots:
        assert plots.start(*REQUESTS[0])() == expected


@pytest.mark.parametrize("script", ["exec /nonexistent/python", "exit 1", "echo 'not a reply'; exec sleep 30"])
def test_without_a_working_helper_the_plots_are_drawn_here(monkeypatch, tmp_path, script):
    fake_python(tmp_path, monkeypatch, script)  # cannot start, exits at once, or answers nonsense
    with PlotsAhead() as plots:
        pngs = [plots.start(kind, data)() for kind, data in REQUESTS]
    monkeypatch.undo()
    assert pngs == drawn_here()


def test_a_helper_that_cannot_start_at_all_means_drawing_here(monkeypatch):
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    with PlotsAhead() as plots:
        png = plots.start(*REQUESTS[0])()
    monkeypatch.undo()
    assert png == drawn_here()[0]


@pytest.mark.parametrize("epochs", [5, 2000])  # 2,000 epochs: a request larger than the pipe's buffer
def test_a_helper_that_stalls_is_given_up_on(monkeypatch, tmp_path, epochs):
    fake_python(tmp_path, monkeypatch, "exec sleep 30")
    monkeypatch.setattr(plots_module, "REPLY_TIMEOUT_S", 0.5)
    history = [{"epoch": epoch, "train_loss": 1.0, "train_acc": 0.5} for epoch in range(1, epochs + 1)]
    started = time.monotonic()
    with PlotsAhead() as plots:
        png = plots.start("curves", {"history": history})()
    waited = time.monotonic() - started
    monkeypatch.undo()
    assert png == PlotsHere().start("curves", {"history": history})()
    assert waited < 15  # half a second of waiting for the helper, then drawing here


def test_a_plot_the_helper_cannot_draw_fails_here_as_it_would_without_it(monkeypatch):
    with PlotsAhead() as plots:
        with pytest.raises(ValueError, match="no plot named 'pie'"):
            plots.start("pie", {})()
        expected = drawn_here()[0]
        not_here(monkeypatch)
        assert plots.start(*REQUESTS[0])() == expected  # the helper still answers the next request
