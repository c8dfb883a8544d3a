"""The command line's setup as data: trainer and parser defaults, each subcommand's own arguments, the links between
model and data settings, and the parser class that knows which subcommand it parses."""

from __future__ import annotations

import copy
import inspect
import re
import sys
from pathlib import Path
from typing import Any

from jsonargparse import DefaultHelpFormatter
from lightning.pytorch import Trainer
from lightning.pytorch.cli import LightningArgumentParser, SaveConfigCallback

from forecast.callbacks import FitSummary, LastCheckpoint, Phases, TestReport
from forecast.checkpoint import RUNS_FOLDER

DEBUG_HELP = "--debug (or FORECAST_DEBUG=1) shows the traceback of an error and Lightning's own notices."
# errors raised (one line, no usage dump); no abbreviations: --trainer.max_epoch must not mean --trainer.max_epochs
_STRICT = {"exit_on_error": False, "allow_abbrev": False}
DESCRIPTIONS = {
    "fit": "Train a model: a new run, a resumed one (--ckpt_path) or one from another's weights (--init_from).",
    "validate": "Score a checkpoint on the validation split.",
    "test": "Score a checkpoint on the test split against the naive and drift forecasts; its report goes beside it.",
    "predict": "Forecast with a checkpoint: the test windows, or the next days (--data.predict_set latest), as CSV.",
}
PARSER_KWARGS: dict[str, Any] = {
    **_STRICT,
    "prog": "python -m forecast",
    "epilog": f"More commands: python -m forecast --help. {DEBUG_HELP}",
    **{
        sub: {**_STRICT, "epilog": DEBUG_HELP, "command": sub, "description": text}
        for sub, text in DESCRIPTIONS.items()
    },
}
CKPT_HELP = (
    "the checkpoint: a .ckpt path, or last / best (the newest run's last.ckpt, or its best epoch by validation MAE, "
    "under --trainer.default_root_dir); the settings that decide what its weights mean come with it (docs/settings.md)"
)
# what validate, test and predict never use: shown in fit's --help only (a fit's config still parses for them)
TRAINING_ONLY = ("model.optimizer", "model.lr_scheduler", "model.init_lam", "model.lam_lr", "lr_monitor", "figures",
                 "checkpoint.", *(f"trainer.{name}" for name in (
                     "logger", "max_epochs", "min_epochs", "max_steps", "min_steps", "max_time", "limit_train_batches",
                     "overfit_batches", "val_check_interval", "check_val_every_n_epoch", "num_sanity_val_steps",
                     "log_every_n_steps", "enable_checkpointing", "accumulate_grad_batches", "gradient_clip_val",
                     "gradient_clip_algorithm", "reload_dataloaders_every_n_epochs", "detect_anomaly", "sync_batchnorm",
                     "enable_autolog_hparams", "model_registry")))  # fmt: skip


def trainer_defaults() -> dict[str, Any]:
    """Trainer defaults: 10 epochs, a TensorBoard run folder per fit, the project's callbacks (fresh instances)."""
    logger = {"name": RUNS_FOLDER, "default_hp_metric": False}
    return {
        "max_epochs": 10,
        # a progress bar redraws itself with carriage returns: in a file or a pipe, a line per epoch instead
        "enable_progress_bar": sys.stdout.isatty(),
        "logger": {"class_path": "lightning.pytorch.loggers.TensorBoardLogger", "init_args": logger},
        "callbacks": [LastCheckpoint(), FitSummary(), TestReport(), Phases()],
    }


BEST = {"monitor": "val/mae", "mode": "min", "save_last": False, "auto_insert_metric_name": False}
PARSER_DEFAULTS: dict[str, Any] = {
    # the best epoch by validation MAE (LastCheckpoint keeps last.ckpt fresh)
    **{f"checkpoint.{key}": value for key, value in BEST.items()},
    "checkpoint.filename": "epoch{epoch:03d}-val_mae{val/mae:.4f}",
    # real classes, so that --model.optimizer.lr 0.01 works without naming the class
    "model.optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 1e-3, "weight_decay": 1e-2}},
    "model.lr_scheduler": {"class_path": "torch.optim.lr_scheduler.ExponentialLR", "init_args": {"gamma": 0.9}},
    "lr_monitor.logging_interval": "step",
}
TORCH_THREADS_HELP = (
    "torch.set_num_threads for this run (default: torch's own choice, one per core); a fixed count makes results "
    "repeat on machines with other core counts"
)
INIT_FROM_HELP = (
    "warm start: a new run from this checkpoint's weights (a .ckpt path, or last / best: the newest run's), with a "
    "fresh optimizer, schedule and epoch count; settings that decide what the weights mean come from the checkpoint. "
    "--ckpt_path instead resumes the checkpoint's own run"
)
TEST_AFTER_FIT_HELP = "after fit, score the best checkpoint on the test split and save the table (date split only)"
SUBCOMMAND_ARGUMENTS: dict[str, dict[str, dict[str, Any]]] = {
    "fit": {
        "--init_from": {"type": str | None, "default": None, "help": INIT_FROM_HELP},
        "--test_after_fit": {"type": bool, "default": True, "help": TEST_AFTER_FIT_HELP},
    },
    "predict": {"--output": {"type": str, "default": "predictions.csv", "help": "CSV file for the forecasts"}},
}
# validate, test and predict start no run: no TensorBoard folder, no config.yaml
SUBCOMMAND_DEFAULTS = {sub: {"trainer.logger": False} for sub in ("validate", "test", "predict")}
LINKS: list[tuple[str, str, Any]] = [  # (source, target, compute_fn): settings derived from others
    ("data.channels", "model.in_channels", len),
    # the position of Close (0 until the DataModule reports a missing Close itself)
    ("data.channels", "model.target_channel", lambda c: list(c).index("Close") if "Close" in c else 0),
    ("data.base_len", "model.base_len", None),
    ("data.horizon", "model.horizon", None),
    # every run lives under the root, absolute: <default_root_dir>/lightning_logs/version_N
    ("trainer.default_root_dir", "trainer.logger.init_args.save_dir", lambda root: str(Path(root or ".").absolute())),
]


METHOD_DOCS = [(inspect.getdoc(getattr(Trainer, sub)) or "?").split(".")[0] for sub in DESCRIPTIONS]


class _Help(DefaultHelpFormatter):
    """``--help`` of a subcommand: ``--ckpt_path`` as this project means it; for validate, test and predict without
    the options only training uses."""

    evaluating = False

    def shown(self, action: Any) -> bool:
        """Whether ``--help`` lists ``action`` (``checkpoint.dirpath``: where last/best are looked for)."""
        return not (self.evaluating and str(action.dest).startswith(TRAINING_ONLY)) or action.dest.endswith("dirpath")

    def start_section(self, heading: str | None) -> None:
        # the group of Trainer.fit's (validate's, ...) arguments is titled by the start of its docstring, cut short
        lightnings = heading and heading.startswith(tuple(METHOD_DOCS))
        super().start_section("What the command runs from" if lightnings else heading)

    def add_usage(self, usage: Any, actions: Any, groups: Any, prefix: Any = None) -> None:
        super().add_usage(usage, [a for a in actions if self.shown(a)], groups, prefix)

    def add_argument(self, action: Any) -> None:
        if self.shown(action):
            if action.dest == "ckpt_path":
                action = copy.copy(action)
                action.help = CKPT_HELP
            super().add_argument(action)


class ForecastParser(LightningArgumentParser):
    """Lightning's parser, told which subcommand it parses (``command``; None for the main parser), whose ``--help``
    shows the docstrings' Sphinx markup as plain text (:class:`datetime.timedelta` → datetime.timedelta)."""

    def __init__(self, *args: Any, command: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.command = command

    def format_help(self) -> str:
        # set here: a subcommand's parser is given its parent's formatter when it is added
        evaluating = self.command in ("validate", "test", "predict")
        self.formatter_class = type("Help", (_Help,), {"evaluating": evaluating})
        text = re.sub(r":(?:class|func|meth|data|mod|attr|obj):`~?([^`]+)`", r"\1", super().format_help())
        return re.sub(r"``([^`]*)``", r"\1", text)


class FitConfigSaver(SaveConfigCallback):
    """Lightning's ``config.yaml``, in the run folder of ``fit`` only (other subcommands make no run folder)."""

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if stage == "fit":
            super().setup(trainer, pl_module, stage)
