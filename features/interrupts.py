"""Ctrl-C and SIGTERM stop the CLI cleanly whenever they come, even while torch or numpy is still being imported.

A KeyboardInterrupt raised inside an import leaves the module half-initialised: numpy then refuses to load
again ("cannot load module more than once"), pybind11 aborts the process, or library code swallows it. So
the handlers installed here never raise inside an import: they note the signal and deliver it again a moment
later, once the import is over. Outside imports they raise Stopped, which no library catches as it would a
KeyboardInterrupt (click turns that into "Aborted!" and exit 1), so the CLI alone decides the exit code.
Forked children (decoding workers) get a plain KeyboardInterrupt, which torch's worker loop ends on quietly.
A Stopped raised where Python cannot propagate it (a __del__, an at-fork callback) is delivered again.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

RETRY_SECONDS = 0.05
_accepting = True  # False from install_handlers() until accept_signals()
HANDLED = (signal.SIGINT, signal.SIGTERM)
_installed_by: int | None = None  # the pid that installed the handlers: its forks are workers


class Stopped(BaseException):
    """Raised in the main thread on SIGINT or SIGTERM; `signum` says which, the exit code is 128 + signum."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _importing(frame) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _deliver_later(signum: int) -> None:
    # To the main thread itself: raise_signal() from the timer's thread would interrupt only that thread, and a main
    # thread blocked in a system call (a sleep, a read, a wait on workers) would notice the signal only when it returns.
    timer = threading.Timer(RETRY_SECONDS, signal.pthread_kill, (threading.main_thread().ident, signum))
    timer.daemon = True
    timer.start()


def _handler(signum: int, frame) -> None:
    if os.getpid() != _installed_by:
        raise KeyboardInterrupt
    if _importing(frame) or not _accepting:
        _deliver_later(signum)
        return
    raise Stopped(signum)


def _unraisable(unraisable) -> None:
    """Python drops exceptions raised where it cannot propagate them (a __del__, an at-fork callback such as
    logging's): a Stopped lost that way would let the run go on as if never signalled, so it is delivered again."""
    if isinstance(unraisable.exc_value, Stopped):
        _deliver_later(unraisable.exc_value.signum)
    else:
        sys.__unraisablehook__(unraisable)


def install_handlers() -> None:
    """Route SIGINT and SIGTERM through Stopped for this process (call first thing, before heavy imports). Until
    accept_signals() is called, a signal is held and delivered again a moment later, as inside an import: `python
    cli.py` runs its module body (click's decorators) outside any import and before main()'s handler exists."""
    global _installed_by, _accepting
    _installed_by = os.getpid()
    _accepting = False
    sys.unraisablehook = _unraisable
    for signum in HANDLED:
        signal.signal(signum, _handler)


def accept_signals() -> None:
    """From here on a signal raises Stopped at once (call it where Stopped is caught)."""
    global _accepting
    _accepting = True


def ignore_late_signals() -> None:
    """Once the exit code is decided, a signal changes nothing: ignore it rather than raise during shutdown."""
    for signum in HANDLED:
        signal.signal(signum, signal.SIG_IGN)
