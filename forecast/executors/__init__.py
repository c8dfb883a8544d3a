"""Where the folds of a backtest and the trials of a search run: worker processes on this machine (``local``, the
default) or Ray tasks across a cluster (``ray``, the optional extra ``forecast[ray]``).

One interface: :meth:`Executor.submit` runs ``fn(*args, data)`` somewhere and returns a
:class:`concurrent.futures.Future`, where ``data`` is the panel the driver read once (a
:class:`forecast.data.panel.LoadedPanel`), shipped to each worker process or node once rather than read again per
fold. Exceptions reach the future as the task raised them (a :class:`forecast.errors.UserError` stays one).
"""

from __future__ import annotations

from typing import Any

from forecast.errors import ConfigError
from forecast.executors.base import Executor, Kind, Resources, check_main_process, task_resources

__all__ = ["Executor", "Kind", "Resources", "check_main_process", "make_executor", "task_resources"]


def make_executor(
    kind: Kind, jobs: int, data: Any, resources: Resources, address: str | None = None, debug: bool = False
) -> Executor:
    """An executor of ``kind``: ``local`` runs ``jobs`` worker processes; ``ray`` connects to the cluster at
    ``address`` (``auto``, ``HOST:PORT``; None: Ray's own default, a local instance when none runs) and runs as
    many tasks as its resources allow."""
    if kind == "local":
        from forecast.executors.local import LocalExecutor

        return LocalExecutor(jobs, data, debug)
    if kind == "ray":
        from forecast.executors.ray_cluster import RayExecutor

        return RayExecutor(address, data, resources, debug)
    raise ConfigError(f"unknown executor {kind!r}; choose local or ray")
