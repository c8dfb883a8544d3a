"""What every executor shares: the interface, and the resources a task takes."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from forecast.errors import ConfigError

Kind = Literal["local", "ray"]


@dataclass(frozen=True)
class Resources:
    """What each task takes: ``threads`` torch threads (and CPUs it asks a Ray cluster for), ``gpus`` GPUs; ``auto``:
    the fit takes a GPU when its machine has one (``trainer.accelerator: auto``)."""

    threads: int
    gpus: int = 0
    auto: bool = False


class Executor(Protocol):
    """Runs tasks: :meth:`submit` runs ``fn(*args, data)`` somewhere (``data``: the panel the driver read) and
    returns a future; :meth:`shutdown` ends the workers (``cancel``: at once, the tasks under way ended)."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future: ...

    def shutdown(self, cancel: bool = False) -> None: ...


def check_main_process() -> None:
    """A :class:`ConfigError` when a backtest or search starts from the top level of a main script that a worker
    process is importing again: Python's spawn and forkserver workers import the main script as ``__mp_main__``, so
    a script that starts one outside an ``if __name__ == "__main__":`` guard would start it again in each worker. A
    worker that starts one on purpose (from a function) is left alone."""
    import inspect

    frame = inspect.currentframe()
    while frame is not None:
        if frame.f_code.co_name == "<module>" and frame.f_globals.get("__name__") == "__mp_main__":
            raise ConfigError(
                "a backtest or search started inside a worker process: the script that starts it must do so under "
                "if __name__ == '__main__': (each worker process imports the script again)"
            )
        frame = frame.f_back


def task_resources(jobs: int, settings: dict[str, Any]) -> Resources:
    """The same rule for every executor: a config's ``torch_threads`` when it sets one, else torch's own thread count
    on this machine (one per physical core) shared by ``jobs`` tasks; a GPU (``trainer.devices`` of them, an int)
    when the fit trains on one."""
    import torch

    threads = settings.get("torch_threads") or max(1, torch.get_num_threads() // jobs)
    trainer = settings.get("trainer") or {}
    accelerator = str(trainer.get("accelerator", "auto"))
    devices = trainer.get("devices")
    gpus = (devices if isinstance(devices, int) and devices > 0 else 1) if accelerator in ("gpu", "cuda") else 0
    return Resources(int(threads), gpus, auto=accelerator == "auto")
