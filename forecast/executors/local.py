"""Tasks in processes of their own on this machine, ``jobs`` at a time: each task a fresh process (not forked from
the driver: torch's threads do not survive a fork) that receives the driver's panel, runs, returns its result and
ends, so one task's memory or crash is its own."""

from __future__ import annotations

import multiprocessing
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from typing import Any

from forecast.errors import Interface, interface
from forecast.executors.worker import start_worker

if "forkserver" in multiprocessing.get_all_start_methods():
    # each task forked from a server process that imported the project once: a task starts in a fraction of a
    # second instead of importing torch and Lightning anew (the server forks before any thread of torch exists)
    _SPAWN = multiprocessing.get_context("forkserver")
    _SPAWN.set_forkserver_preload(["forecast.backtest.task"])
else:
    _SPAWN = multiprocessing.get_context("spawn")
GRACE_SECONDS = 30.0
"""How long a stopped task may take to save its step and end before it is killed."""


class WorkerDiedError(RuntimeError):
    """A task's process ended without a result (killed, out of memory, a crash in native code)."""


def _child(connection: Any, how: Interface, debug: bool, fn: Callable[..., Any], args: tuple, data: Any) -> None:
    start_worker(how, debug)  # Ctrl-C reaches every process of the terminal's group: it is the driver's to act on
    try:
        connection.send((True, fn(*args, data)))
    except BaseException as exc:  # sent back as it is, with the traceback in this process
        if not isinstance(exc, Exception):  # a SystemExit must not end the driver
            exc = RuntimeError(f"{type(exc).__name__}: {exc}")
        try:
            connection.send((False, (exc, traceback.format_exc())))
        except Exception:  # an exception that does not pickle: its text
            connection.send((False, (RuntimeError(f"{type(exc).__name__}: {exc}"), traceback.format_exc())))


class LocalExecutor:
    """Runs up to ``jobs`` tasks at once, each in its own process."""

    def __init__(self, jobs: int, data: Any, debug: bool = False) -> None:
        self.data, self.debug, self.interface = data, debug, interface()
        self.threads = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="forecast-task")
        self.processes: set[Any] = set()
        self.lock = threading.Lock()
        self.cancelled = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Run ``fn(*args, data)`` in a process of its own; the future raises the task's own exception (its remote
        traceback in a note), or :class:`WorkerDiedError`."""
        return self.threads.submit(self._run, fn, args)

    def _run(self, fn: Callable[..., Any], args: tuple) -> Any:
        receive, send = _SPAWN.Pipe(duplex=False)
        process = _SPAWN.Process(target=_child, args=(send, self.interface, self.debug, fn, args, self.data))
        try:
            with self.lock:  # started under the lock: a cancel ends it, or it never starts
                if self.cancelled:
                    raise CancelledError()
                self.processes.add(process)
                process.start()
            send.close()  # the child's end: when the child ends, recv() ends too
            try:
                ok, value = receive.recv()
            except EOFError:
                process.join()
                raise WorkerDiedError(
                    f"its process ended without a result (exit code {process.exitcode}); from a script, the call "
                    "must be under if __name__ == '__main__': (each worker process imports the script again)"
                ) from None
            process.join()
        finally:
            with self.lock:
                self.processes.discard(process)
            receive.close()
        if ok:
            return value
        error, text = value
        error.add_note(f"in the task's process:\n{text}")
        raise error

    def shutdown(self, cancel: bool = False) -> None:
        """Drop the tasks not started and wait for those under way; with ``cancel`` stop those too: SIGTERM (a fit
        saves the step it reached, to resume from when the same command runs again), and after
        :data:`GRACE_SECONDS` SIGKILL, so that no process is left behind."""
        self.threads.shutdown(wait=False, cancel_futures=True)
        if cancel:
            with self.lock:
                self.cancelled = True
                running = list(self.processes)
            for process in running:
                process.terminate()
            deadline = time.monotonic() + GRACE_SECONDS
            for process in running:
                process.join(max(0.0, deadline - time.monotonic()))
                if process.is_alive():
                    process.kill()
        self.threads.shutdown(wait=True)
