"""How a process ends after a signal: within a bounded time, with the exit code the shell expects."""

from __future__ import annotations

import os
import threading

EXIT_INTERRUPTED = 130
"""The shell's code for Ctrl-C (128 + SIGINT)."""


def end_within(seconds: float, code: int = EXIT_INTERRUPTED) -> None:
    """After Ctrl-C: make sure this process ends, with ``code``, within ``seconds`` even if its shutdown hangs.

    The normal exit still runs (loggers flush, atexit handlers); this daemon timer only fires if it has not
    finished by then. Measured: a fit interrupted once in 27 runs printed its message and then hung in its
    shutdown for over 120 s (a test's timeout), on a fresh clone under load; never reproduced alone.
    """
    timer = threading.Timer(seconds, os._exit, args=(code,))
    timer.daemon = True
    timer.start()
