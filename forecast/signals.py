"""Ctrl-C and SIGTERM in every phase of a command: each becomes an exception that unwinds the command (outputs stay
whole: files are written atomically), and the process ends with the shell's code, 130 or 143, within a bounded
time even if its shutdown hangs.

While a fit trains, SIGTERM (what SLURM, Kubernetes and Ray send to preempt a job) is left to Lightning, which stops
at the end of the training batch under way; the run's ``last.ckpt`` is then saved at that step
(:class:`forecast.callbacks.LastCheckpoint`), so the same command with ``--ckpt_path last`` continues from it.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143
PAUSE_AT, PAUSE_FILE = "FORECAST_PAUSE_AT", "FORECAST_PAUSE_FILE"


class Stopped(BaseException):
    """A signal stopped the command; ``exit_code`` is the shell's code for it. Not a ``KeyboardInterrupt``, which
    Lightning turns into exit status 1."""

    signum: int = signal.SIGINT

    @property
    def exit_code(self) -> int:
        """128 + the signal's number."""
        return 128 + self.signum


class Interrupted(Stopped):
    """Ctrl-C (SIGINT)."""


class Terminated(Stopped):
    """SIGTERM."""

    signum = signal.SIGTERM


_fitting = threading.Event()  # set while a fit trains: SIGTERM is Lightning's to act on at the batch's end


def set_fitting(on: bool) -> None:
    """Whether a fit trains now (Lightning stops it at the end of the batch on SIGTERM, and it saves its step)."""
    (_fitting.set if on else _fitting.clear)()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if signum == signal.SIGTERM and _fitting.is_set():
        return  # Lightning's own handler, called before this one, has asked the fit to stop after its batch
    raise Interrupted() if signum == signal.SIGINT else Terminated()


def install(interrupt: bool = True) -> None:
    """Turn SIGTERM (and Ctrl-C unless ``interrupt`` is false: then it is ignored, the parent's to act on) into
    :class:`Stopped` exceptions in this process's main thread."""
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal if interrupt else signal.SIG_IGN)


def end_within(seconds: float, code: int) -> None:
    """After a signal: make sure this process ends, with ``code``, within ``seconds`` even if its shutdown hangs.

    The normal exit still runs (loggers flush, atexit handlers); this daemon timer only fires if it has not
    finished by then. Measured: a fit interrupted once in 27 runs printed its message and then hung in its
    shutdown for over 120 s (a test's timeout), on a fresh clone under load; never reproduced alone.
    """
    timer = threading.Timer(seconds, os._exit, args=(code,))
    timer.daemon = True
    timer.start()


def pause_here(phase: str, until: Callable[[], bool] = lambda: False) -> None:
    """For the tests of signals in each phase: when ``FORECAST_PAUSE_AT`` names ``phase``, say so by creating the
    file ``FORECAST_PAUSE_FILE`` and wait (up to a minute, or until ``until()``) for a signal. A no-op otherwise."""
    if os.environ.get(PAUSE_AT) != phase:
        return
    os.environ.pop(PAUSE_AT)  # once per process
    Path(os.environ[PAUSE_FILE]).write_text(phase)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not until():
        time.sleep(0.02)
