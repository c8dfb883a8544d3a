"""Helpers for the tests: the real CLI in-process (or, for a few smoke tests, in a subprocess), a brief fit."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

SMALL = [
    "--data.source",
    "synthetic",
    "--data.synthetic_tickers",
    "2",
    "--data.batch_size",
    "64",
    "--trainer.limit_train_batches",
    "3",
    "--trainer.limit_val_batches",
    "2",
    "--trainer.limit_test_batches",
    "2",
    "--trainer.log_every_n_steps",
    "1",
    "--trainer.enable_progress_bar",
    "false",
    "--trainer.enable_model_summary",
    "false",
    "--trainer.accelerator",
    "cpu",
    "--figures.windows",
    "1",
]


@dataclass
class Result:
    """What a CLI run left: its exit code and what it printed."""

    returncode: int
    stdout: str
    stderr: str


def run_main(args: list[str], cwd: Path) -> Result:
    """``python -m forecast ARGS`` in this process, from ``cwd``: exit code and captured stdout/stderr.

    Faster than a subprocess by the interpreter's start-up (torch + Lightning imports, ~5 s here); the working
    directory, the torch thread count and ``FORECAST_DEBUG`` are restored afterwards.
    """
    from forecast.main import main

    previous_dir, threads = Path.cwd(), torch.get_num_threads()
    debug = os.environ.pop("FORECAST_DEBUG", None)
    out, err = io.StringIO(), io.StringIO()
    code = 0
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main([str(a) for a in args])
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        os.chdir(previous_dir)
        torch.set_num_threads(threads)
        os.environ.pop("FORECAST_DEBUG", None)
        if debug is not None:
            os.environ["FORECAST_DEBUG"] = debug
    return Result(code, out.getvalue(), err.getvalue())


def run_subprocess(args: list[str], cwd: Path, timeout: float = 300) -> Result:
    """``python -m forecast ARGS`` as a real process (for DDP and kill tests)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("FORECAST_DEBUG", None)
    done = subprocess.run(
        [sys.executable, "-m", "forecast", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )
    return Result(done.returncode, done.stdout, done.stderr)


def run_dir(root: Path, version: int = 0) -> Path:
    """The folder of run ``version_N`` under ``root``."""
    return root / "lightning_logs" / f"version_{version}"


def fit_briefly(model, datamodule, root: Path):
    """Two training batches and one validation batch with plain Lightning (no CLI); returns the Trainer."""
    import lightning as L

    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
    )
    trainer.fit(model, datamodule=datamodule)
    return trainer


def require(module: str, extra: str):
    """Import ``module`` (of the optional extra ``extra``), or skip saying how to install it; with
    ``FORECAST_REQUIRE_EXTRAS=1`` (CI) a missing extra fails the test instead: a test of a real component that
    skips there proves nothing."""
    import importlib

    import pytest

    try:
        return importlib.import_module(module)
    except ImportError:
        message = f"{module} is not installed: pip install -e '.[{extra}]'"
        if os.environ.get("FORECAST_REQUIRE_EXTRAS", "") not in ("", "0"):
            pytest.fail(f"{message} (FORECAST_REQUIRE_EXTRAS is set: this test must run)")
        pytest.skip(message)


def command_in_child(argv: list[str], cwd: str, env: dict[str, str], log: str) -> None:
    """``python -m forecast ARGV`` in a process of its own (forked from a server that has imported the project, so it
    starts in a fraction of a second): its own process group, its output in ``log``, Ctrl-C as in a terminal."""
    import signal

    os.setsid()  # a group of its own: the test can tell whether it left processes behind
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.chdir(cwd)
    os.environ.update(env)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    from forecast.main import main

    main(argv)
