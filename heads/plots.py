"""train-head's two PNGs (curves, calibration) as bytes, drawn in this process or in a helper process.

matplotlib's import is a large share of train-head's start-up (docs/benchmark.md). The CLI starts the helper
(PlotsAhead) before it imports torch: the helper imports matplotlib on the other core meanwhile, and draws the curves
while this process fits the trust models. The helper needs no torch, takes plain values (JSON) and sends PNG bytes
back, so it never writes a file; whatever goes wrong with it, this process draws the plot itself.
"""

from __future__ import annotations

import functools
import json
import os
import select
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from typing import IO, BinaryIO, Protocol

Png = Callable[[], bytes]  # the plot, drawn (or received) when called
_REPLY = struct.Struct("<?Q")  # drawn?, length of what follows: the PNG, or why it could not be drawn
REPLY_TIMEOUT_S = 60.0  # for each request sent and each reply read
MAX_REPLY_BYTES = 64 << 20  # a larger length means the helper is not speaking this protocol


def render(kind: str, data: dict) -> bytes:
    """The PNG of a request: "curves" ({"history"}) or "calibration" (Trust.reliability_plot(), or a multi-label
    head's heads/multilabel/trust.py reliability_plot())."""
    if kind == "curves":
        from headstart.heads.curves import curves_png

        return curves_png(data["history"])
    if kind == "calibration":
        from headstart.heads.trust.bins import Reliability
        from headstart.heads.trust.plot import reliability_png

        before, after = (data[key] and Reliability(**data[key]) for key in ("before", "after"))
        return reliability_png(before, after, data["temperature"], data.get("pooled"))
    raise ValueError(f"no plot named {kind!r}")


class Plots(Protocol):
    """Where train-head's plots are drawn: here (PlotsHere) or in a helper process (PlotsAhead)."""

    def start(self, kind: str, data: dict) -> Png:
        """Begin drawing a plot (see render); call the result for its PNG."""


class PlotsHere:
    """Each plot drawn in this process, when its PNG is asked for."""

    def start(self, kind: str, data: dict) -> Png:
        return functools.partial(render, kind, data)


class PlotsAhead:
    """A helper process, started on entering, that imports matplotlib at once and draws requests in order. Every
    exchange with it has a deadline, and anything unexpected ends it: the plot is then drawn here."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._sent = 0
        self._replies: list[bytes | None] = []  # by request number; None: draw it here

    def __enter__(self) -> PlotsAhead:
        # Isolated (-I): neither the current folder nor PYTHONPATH can put another `headstart` first; the installed
        # package (an editable install maps it to the checkout) is the one imported.
        code = "from headstart.heads.plots import serve; serve()"
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-I", "-c", code],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
        except OSError:
            return self
        os.set_blocking(self._pipes()[0].fileno(), False)  # a request larger than the pipe must not block
        return self

    def __exit__(self, *exception) -> None:
        self._stop()

    def start(self, kind: str, data: dict) -> Png:
        here = functools.partial(render, kind, data)
        if self._process is None or not self._write(json.dumps({"kind": kind, "data": data}).encode() + b"\n"):
            self._stop()
            return here
        number, self._sent = self._sent, self._sent + 1
        return lambda: self._reply(number) or here()

    def _reply(self, number: int) -> bytes | None:
        """The helper's PNG for request `number` (replies come in order), or None if it has none."""
        while len(self._replies) <= number and self._process is not None:
            header = self._read(_REPLY.size)
            drawn, length = _REPLY.unpack(header) if header else (False, 0)
            payload = self._read(length) if header and length <= MAX_REPLY_BYTES else None
            if payload is None:  # ended, stalled, or not speaking this protocol
                self._stop()
                break
            self._replies.append(payload if drawn else None)
        return self._replies[number] if number < len(self._replies) else None

    def _pipes(self) -> tuple[IO[bytes], IO[bytes]]:
        """The running helper's stdin and stdout (both pipes, as Popen was asked for)."""
        process = self._process
        if process is None or process.stdin is None or process.stdout is None:
            raise RuntimeError("the plot helper is not running")
        return process.stdin, process.stdout

    def _write(self, data: bytes) -> bool:
        """All of data to the helper before the deadline, or False."""
        stdin, deadline = self._pipes()[0].fileno(), time.monotonic() + REPLY_TIMEOUT_S
        while data:
            _, ready, _ = select.select([], [stdin], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                return False
            try:
                data = data[os.write(stdin, data[: 1 << 16]) :]
            except BlockingIOError:
                continue
            except OSError:  # the helper has gone
                return False
        return True

    def _read(self, size: int) -> bytes | None:
        """size bytes from the helper, or None if it ends or stalls first."""
        out, chunks, deadline = self._pipes()[1].fileno(), [], time.monotonic() + REPLY_TIMEOUT_S
        while size:
            ready, _, _ = select.select([out], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(out, min(size, 1 << 20)) if ready else b""
            if not chunk:
                return None
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def _stop(self) -> None:
        """End the helper at once: it holds nothing worth waiting for (it writes no file)."""
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.wait()
            for pipe in (process.stdin, process.stdout):  # both pipes: Popen was asked for them
                if pipe is not None:
                    pipe.close()


def serve(requests: BinaryIO | None = None, replies: BinaryIO | None = None) -> None:
    """The helper: import matplotlib now, then answer each request (a JSON line) with a reply, until input ends."""
    requests, replies = requests or sys.stdin.buffer, replies or sys.stdout.buffer
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent handles it
    from headstart.heads.curves import pyplot

    pyplot()
    for line in requests:
        try:
            request = json.loads(line)
            drawn, payload = True, render(request["kind"], request["data"])
        except Exception as error:  # noqa: BLE001  anything: the parent draws this plot itself
            drawn, payload = False, f"{type(error).__name__}: {error}".encode()
        replies.write(_REPLY.pack(drawn, len(payload)) + payload)
        replies.flush()
