"""heads/plots.py: train-head's plots drawn in a helper process are the plots drawn here, and any trouble with the
helper means drawing here, never a missing plot or a hang."""

from __future__ import annotations

import io
import subprocess
import sys
import time

import pytest
from PIL import Image

import heads.plots
from conftest import ROOT
from heads.plots import PlotsAhead, PlotsHere

HISTORY = [{"epoch": epoch, "train_loss": 1 / epoch, "train_acc": 0.5 + epoch / 20, "val_loss": 1.1 / epoch,
            "val_acc": 0.45 + epoch / 20} for epoch in range(1, 6)]
RELIABILITY = {"confidence": [0.55, 0.75, 0.95], "accuracy": [0.5, 0.8, 0.9], "counts": [10, 20, 30]}
REQUESTS = [("curves", {"history": HISTORY}),
            ("calibration", {"before": RELIABILITY, "after": RELIABILITY, "temperature": 1.5}),
            ("calibration", {"before": None, "after": None, "temperature": None})]


def drawn_here() -> list[bytes]:
    return [PlotsHere().start(kind, data)() for kind, data in REQUESTS]


def test_the_helper_draws_the_same_pngs_as_this_process():
    with PlotsAhead() as plots:
        pending = [plots.start(kind, data) for kind, data in REQUESTS]  # all asked for before any is read
        pngs = [png() for png in pending]
    assert pngs == drawn_here()
    sizes = [Image.open(io.BytesIO(png)).size for png in pngs]
    assert sizes == [(1000, 400), (550, 500), (550, 500)]


def test_the_helper_and_the_plots_import_no_torch():
    """The helper's head start is its matplotlib import beside torch's; importing torch itself would waste it."""
    code = "import sys, heads.plots, heads.curves, heads.trust.plot; print(sorted(m for m in sys.modules if m == 'torch'))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("executable", ["/nonexistent/python", "/bin/false"])
def test_without_a_working_helper_the_plots_are_drawn_here(monkeypatch, executable):
    monkeypatch.setattr(sys, "executable", executable)  # cannot start, or exits at once
    with PlotsAhead() as plots:
        pngs = [plots.start(kind, data)() for kind, data in REQUESTS]
    monkeypatch.undo()
    assert pngs == drawn_here()


def test_a_helper_that_stalls_is_given_up_on(monkeypatch, tmp_path):
    stalling = tmp_path / "stalling-python"
    stalling.write_text("#!/bin/sh\nexec sleep 30\n")
    stalling.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(stalling))
    monkeypatch.setattr(heads.plots, "REPLY_TIMEOUT_S", 0.5)
    started = time.monotonic()
    with PlotsAhead() as plots:
        png = plots.start(*REQUESTS[0])()
    monkeypatch.undo()
    assert png == drawn_here()[0]
    assert time.monotonic() - started < 20  # 0.5 s waiting, 2 s for it to end before it is killed, then drawing here


def test_a_plot_the_helper_cannot_draw_fails_here_as_it_would_without_it():
    with PlotsAhead() as plots:
        with pytest.raises(ValueError, match="no plot named 'pie'"):
            plots.start("pie", {})()
        assert plots.start(*REQUESTS[0])() == drawn_here()[0]  # the helper still answers the next request
