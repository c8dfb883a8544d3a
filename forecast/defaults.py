"""The command line's setup, as data: trainer and parser defaults, the arguments each subcommand adds, and the
links between model and data settings. :class:`forecast.cli.ForecastCLI` applies them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from lightning.pytorch.cli import LightningArgumentParser, SaveConfigCallback

from forecast.checkpoint import RUNS_FOLDER

DEBUG_HELP = "--debug (or FORECAST_DEBUG=1) shows the traceback of an error and Lightning's own notices."
SUBCOMMANDS = ("fit", "validate", "test", "predict")
# errors reach the dispatcher as exceptions (one line, no usage dump); no abbreviated options: --trainer.max_epoch
# must not silently mean --trainer.max_epochs
_STRICT = {"exit_on_error": False, "allow_abbrev": False}
PARSER_KWARGS: dict[str, Any] = {
    **_STRICT,
    "prog": "python -m forecast",
    "epilog": "One more subcommand, with its own options: backtest (walk-forward years with a significance test; "
    f"python -m forecast backtest --help). {DEBUG_HELP}",
    **{sub: {**_STRICT, "epilog": DEBUG_HELP} for sub in SUBCOMMANDS},
}


def trainer_defaults() -> dict[str, Any]:
    """Trainer defaults: 10 epochs, a TensorBoard run folder per fit, the project's callbacks (fresh instances)."""
    from forecast.callbacks import FitSummary, LastCheckpoint, TestReport

    return {
        "max_epochs": 10,
        "logger": {
            "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
            "init_args": {"name": RUNS_FOLDER, "default_hp_metric": False},
        },
        "callbacks": [LastCheckpoint(), FitSummary(), TestReport()],
    }


PARSER_DEFAULTS: dict[str, Any] = {
    # the best epoch by validation MAE (LastCheckpoint keeps last.ckpt fresh)
    "checkpoint.monitor": "val/mae",
    "checkpoint.mode": "min",
    "checkpoint.save_last": False,
    "checkpoint.filename": "epoch{epoch:03d}-val_mae{val/mae:.4f}",
    "checkpoint.auto_insert_metric_name": False,
    # real classes, so that --model.optimizer.lr 0.01 works without naming the class
    "model.optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 1e-3, "weight_decay": 1e-2}},
    "model.lr_scheduler": {"class_path": "torch.optim.lr_scheduler.ExponentialLR", "init_args": {"gamma": 0.9}},
    "lr_monitor.logging_interval": "step",
}

TORCH_THREADS_HELP = (
    "torch.set_num_threads for this run (default: torch's own choice, one per core); a fixed count makes results "
    "repeat on machines with other core counts"
)

SUBCOMMAND_ARGUMENTS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "fit": [
        (
            "--init_from",
            {
                "type": str | None,
                "default": None,
                "help": "warm start: a new run from this checkpoint's weights (a .ckpt path, or last / best: the "
                "newest run's), with a fresh optimizer, schedule and epoch count; settings that decide what the "
                "weights mean come from the checkpoint. --ckpt_path instead resumes the checkpoint's own run",
            },
        ),
        (
            "--test_after_fit",
            {
                "type": bool,
                "default": True,
                "help": "after fit, score the best checkpoint on the test split and save the table (date split only)",
            },
        ),
    ],
    "predict": [
        (
            "--output",
            {"type": str, "default": "predictions.csv", "help": "CSV file for the forecasts (written atomically)"},
        )
    ],
}

SUBCOMMAND_DEFAULTS: dict[str, dict[str, Any]] = {
    # validate, test and predict start no run: no TensorBoard folder, no config.yaml
    "validate": {"trainer.logger": False},
    "test": {"trainer.logger": False},
    # forecasts go to the file, not into a list in memory
    "predict": {"trainer.logger": False, "return_predictions": False},
}


def channels_count(channels: tuple[str, ...]) -> int:
    """``model.in_channels`` from ``data.channels``."""
    return len(channels)


def close_index(channels: tuple[str, ...]) -> int:
    # a missing Close is reported by the DataModule itself; 0 keeps the model valid until then
    """``model.target_channel`` from ``data.channels``: the position of Close."""
    return list(channels).index("Close") if "Close" in channels else 0


def save_dir(root: str | None) -> str:
    """The logger's folder from ``trainer.default_root_dir``: absolute, the current folder by default."""
    return str(Path(root or ".").absolute())


LINKS: list[tuple[str, str, Any]] = [
    ("data.channels", "model.in_channels", channels_count),
    ("data.channels", "model.target_channel", close_index),
    ("data.base_len", "model.base_len", None),
    ("data.horizon", "model.horizon", None),
    # every run lives under the root: <default_root_dir>/lightning_logs/version_N
    ("trainer.default_root_dir", "trainer.logger.init_args.save_dir", save_dir),
]
"""``(source, target, compute_fn)``: settings derived from others, never given directly."""


class PlainHelpParser(LightningArgumentParser):
    """Lightning's parser whose ``--help`` shows the docstrings' Sphinx markup as plain text (``"auto"`` → "auto",
    :class:`datetime.timedelta` → datetime.timedelta)."""

    def format_help(self) -> str:
        text = re.sub(r":(?:class|func|meth|data|mod|attr|obj):`~?([^`]+)`", r"\1", super().format_help())
        return re.sub(r"``([^`]*)``", r"\1", text)


class FitConfigSaver(SaveConfigCallback):
    """Lightning's ``config.yaml``, in the run folder of ``fit`` only (other subcommands make no run folder)."""

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if stage == "fit":
            super().setup(trainer, pl_module, stage)
