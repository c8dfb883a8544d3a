"""What every executor shares: the interface, and the resources a task takes."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Kind = Literal["local", "ray"]


@dataclass(frozen=True)
class Resources:
    """What each task takes: ``threads`` torch threads (and CPUs it asks a Ray cluster for), ``gpus`` GPUs."""

    threads: int
    gpus: int = 0


class Executor(Protocol):
    """Runs tasks: :meth:`submit` runs ``fn(*args, data)`` somewhere (``data``: the panel the driver read) and
    returns a future; :meth:`shutdown` ends the workers (``cancel``: at once, the tasks under way ended)."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future: ...

    def shutdown(self, cancel: bool = False) -> None: ...


def task_resources(jobs: int, settings: dict[str, Any]) -> Resources:
    """The same rule for every executor: a config's ``torch_threads`` when it sets one, else this machine's cores
    shared by ``jobs`` tasks; a GPU (``trainer.devices`` of them, an int) when the fit trains on one."""
    threads = settings.get("torch_threads") or max(1, (os.cpu_count() or 1) // jobs)
    trainer = settings.get("trainer") or {}
    on_gpu = str(trainer.get("accelerator")) in ("gpu", "cuda")
    devices = trainer.get("devices")
    return Resources(int(threads), (devices if isinstance(devices, int) and devices > 0 else 1) if on_gpu else 0)
