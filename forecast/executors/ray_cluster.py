"""Tasks on a Ray cluster: each a Ray task that asks for its CPUs (its torch threads) and GPUs; the driver's panel
is put in Ray's object store once, from where each node fetches it once. A task lost with its node (or its worker
process) is run again by Ray, up to :data:`RETRIES` times: from the start, or from its ``last.ckpt`` when its run
folder is on a filesystem every node sees (the fold code resumes from it)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from forecast.errors import ConfigError, Interface, interface
from forecast.executors.base import Resources
from forecast.executors.worker import start_worker

RETRIES = 3
_started: list[bool] = [False]  # whether this Ray worker process has been set up


def _task(how: Interface, debug: bool, fn: Callable[..., Any], *args: Any) -> Any:
    if not _started[0]:
        start_worker(how, debug)
        _started[0] = True
    return fn(*args)


class RayExecutor:
    """Connects to the cluster at ``address`` (None: Ray's default, a new local instance when none runs)."""

    def __init__(self, address: str | None, data: Any, resources: Resources, debug: bool = False) -> None:
        try:
            import ray
        except ImportError as exc:
            raise ConfigError("--executor ray needs Ray: pip install 'forecast[ray]' (on every node)") from exc
        self.ray, self.debug = ray, debug
        self.connected_here = not ray.is_initialized()
        if self.connected_here:
            try:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
            except (ConnectionError, ValueError) as exc:
                raise ConfigError(
                    f"cannot reach a Ray cluster at {address or 'the default address'}: {str(exc).splitlines()[0]}; "
                    "start one with 'ray start --head' (docs/scale.md) or give its --address HOST:PORT"
                ) from exc
        self.data = ray.put(data)
        self.remote = ray.remote(_task).options(
            num_cpus=resources.threads, num_gpus=resources.gpus, max_retries=RETRIES, retry_exceptions=False
        )
        self.refs: list[Any] = []

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Run ``fn(*args, data)`` as a Ray task; its future raises the task's own exception."""
        ref = self.remote.remote(interface(), self.debug, fn, *args, self.data)
        self.refs.append(ref)
        result: Future = Future()

        def settle(done: Future) -> None:
            error = done.exception()
            if error is None:
                result.set_result(done.result())
            else:  # the exception the task raised, not Ray's wrapper of it
                result.set_exception(getattr(error, "cause", None) or error)

        ref.future().add_done_callback(settle)
        return result

    def shutdown(self, cancel: bool = False) -> None:
        """Cancel the tasks not finished (``cancel``), and disconnect when this executor connected."""
        if cancel:
            for ref in self.refs:
                self.ray.cancel(ref)
        if self.connected_here:
            self.ray.shutdown()
