"""Helpers for the tests: the real CLI in a subprocess with small limits, and a brief plain-Lightning fit."""

import os
import subprocess
import sys
from pathlib import Path

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
]


def run_cli(args: list[str], cwd: Path, timeout: float = 300, env: dict[str, str] | None = None):
    full_env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    full_env.pop("FORECAST_DEBUG", None) if env is None or "FORECAST_DEBUG" not in env else None
    return subprocess.run(
        [sys.executable, "-m", "forecast", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


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
