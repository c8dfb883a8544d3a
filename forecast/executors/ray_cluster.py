"""Tasks on a Ray cluster: each a Ray task that asks for its CPUs (its torch threads) and GPUs; the driver's panel
is put in Ray's object store once, from where each node fetches it once. A task lost with its node (or its worker
process) is run again by Ray, up to :data:`RETRIES` times: from the start, or from its ``last.ckpt`` when its run
folder is on a filesystem every node sees (the fold code resumes from it)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from forecast.errors import ConfigError, Interface, interface, option
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
        gpus = resources.gpus or (1 if resources.auto and ray.cluster_resources().get("GPU", 0) else 0)
        largest = max((node["Resources"].get("CPU", 0) for node in ray.nodes() if node["Alive"]), default=0)
        if resources.threads > largest:  # Ray would wait for such a node for ever
            raise ConfigError(
                f"each task asks for {resources.threads} CPUs (its torch threads) and the largest node of the Ray "
                f"cluster has {largest:g}; set {option('torch_threads')} {int(largest) or 1} or a larger "
                f"{option('jobs')}"
            )
        self.data = ray.put(data)
        self.remote = ray.remote(_task).options(
            num_cpus=resources.threads, num_gpus=gpus, max_retries=RETRIES, retry_exceptions=False
        )
        self.refs: dict[Future, Any] = {}

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Run ``fn(*args, data)`` as a Ray task; its future raises the task's own exception."""
        ref = self.remote.remote(interface(), self.debug, fn, *args, self.data)
        result: Future = Future()
        self.refs[result] = ref

        def settle(done: Future) -> None:
            if result.cancelled():  # the driver no longer wants it (shutdown cancels the task)
                return
            error = done.exception()
            if error is None:
                result.set_result(done.result())
            else:  # the exception the task raised, not Ray's wrapper of it (whose text has the remote traceback)
                cause = getattr(error, "cause", None)
                if cause is None:
                    result.set_exception(error)
                else:
                    cause.add_note(f"in the Ray task:\n{error}")
                    result.set_exception(cause)

        ref.future().add_done_callback(settle)
        return result

    def shutdown(self, cancel: bool = False) -> None:
        """Cancel the tasks whose futures were cancelled (with ``cancel``: every task not finished), wait for the
        others, and disconnect when this executor connected."""
        for future, ref in self.refs.items():
            if cancel or future.cancelled():
                self.ray.cancel(ref, force=True)
        if not cancel:
            self.ray.wait(
                [r for f, r in self.refs.items() if not f.cancelled()], num_returns=len(self.refs), timeout=None
            )
        if self.connected_here:
            self.ray.shutdown()
