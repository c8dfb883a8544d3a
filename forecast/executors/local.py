"""Tasks in worker processes on this machine: a process pool whose workers receive the driver's panel once, when
they start, and keep it for every task they run."""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from forecast.errors import Interface, interface
from forecast.executors.worker import start_worker

_data: list[Any] = [None]  # the panel this worker process received when it started


def _install(data: Any, how: Interface, debug: bool) -> None:
    # Ctrl-C reaches every process of the terminal's group: it is the driver's to handle, and it ends the workers
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _data[0] = data
    start_worker(how, debug)


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args, _data[0])


class LocalExecutor:
    """``jobs`` worker processes, started fresh rather than forked (torch's threads do not survive a fork)."""

    def __init__(self, jobs: int, data: Any, debug: bool = False) -> None:
        self._others = set(multiprocessing.active_children())  # child processes that are not this pool's
        self.pool = ProcessPoolExecutor(
            max_workers=jobs,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_install,
            initargs=(data, interface(), debug),
        )

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Run ``fn(*args, data)`` in a worker process."""
        return self.pool.submit(_call, fn, *args)

    def shutdown(self, cancel: bool = False) -> None:
        """End the workers: after the running tasks, or with ``cancel`` at once (the tasks not started dropped, the
        running ones killed: a fit resumes from its last checkpoint when the same command runs again)."""
        if not cancel:
            self.pool.shutdown(wait=True)
            return
        self.pool.shutdown(wait=False, cancel_futures=True)
        for process in set(multiprocessing.active_children()) - self._others:
            process.kill()
            process.join()
