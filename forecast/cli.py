"""``python -m forecast fit|validate|test|predict``: LightningCLI with the project's defaults.

Everything Lightning's CLI does is kept (configs, ``--print_config``, ``--ckpt_path``, any Trainer flag); on
top of it this module adds the project's defaults (one folder per run, checkpointing on ``val/mae``, LR
monitor, forecast figures), the settings rule of :mod:`forecast.settings`, ``fit --init_from``,
``predict --output``, and checks that fail before anything is written. :mod:`forecast.main` dispatches to it.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
import yaml
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback

from forecast.callbacks import (
    CSVPredictionWriter,
    FitSummary,
    ForecastFigures,
    LastCheckpoint,
    TestReport,
    checkpoint_paths,
)
from forecast.checkpoint import (
    RUNS_FOLDER,
    CheckpointError,
    CheckpointSettings,
    newest_run_checkpoint,
    plain,
    read_checkpoint,
    run_folder_of,
    runs_folder,
)
from forecast.data import DataError, StockDataModule
from forecast.data.errors import plural
from forecast.model import Forecaster
from forecast.settings import ConfigError, Given, Use, apply_rule, checkpoint_defaults
from forecast.terminal import first_line

DEBUG_HELP = "--debug (or FORECAST_DEBUG=1) shows the traceback of an error and Lightning's own notices."
SUBCOMMANDS = ("fit", "validate", "test", "predict")

log = logging.getLogger("forecast.cli")


def _channels_count(channels: tuple[str, ...]) -> int:
    return len(channels)


def _close_index(channels: tuple[str, ...]) -> int:
    # a missing Close is reported by the DataModule itself; 0 keeps the model valid until then
    return list(channels).index("Close") if "Close" in channels else 0


def _save_dir(root: str | None) -> str:
    return str(Path(root or ".").absolute())


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


class ForecastCLI(LightningCLI):
    """LightningCLI with the project's callbacks, argument links and checkpoint rule."""

    def __init__(self, args: list[str] | None = None, run: bool = True) -> None:
        """Parse ``args`` (default: the command line) and run the subcommand, like ``LightningCLI``."""
        self.resume_version: str | None = None
        # errors reach main() as exceptions (one line, no usage dump); no abbreviated options: --trainer.max_epoch
        # must not silently mean --trainer.max_epochs
        no_exit = {"exit_on_error": False, "allow_abbrev": False}
        super().__init__(
            Forecaster,
            StockDataModule,
            seed_everything_default=0,
            trainer_defaults={
                "max_epochs": 10,
                "logger": {
                    "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                    "init_args": {"name": RUNS_FOLDER, "default_hp_metric": False},
                },
                "callbacks": [LastCheckpoint(), FitSummary(), TestReport()],
            },
            save_config_callback=FitConfigSaver,
            parser_class=PlainHelpParser,
            save_config_kwargs={"overwrite": True},
            parser_kwargs={
                **no_exit,
                "prog": "python -m forecast",
                "epilog": "One more subcommand, with its own options: backtest (walk-forward years with a significance "
                f"test; python -m forecast backtest --help). {DEBUG_HELP}",
                **{sub: {**no_exit, "epilog": DEBUG_HELP} for sub in SUBCOMMANDS},
            },
            auto_configure_optimizers=False,
            args=args,
            run=run,
        )

    # ------------------------------------------------------------------------------------------ arguments
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/mae",
                "checkpoint.mode": "min",
                "checkpoint.save_last": False,  # LastCheckpoint keeps last.ckpt fresh
                "checkpoint.filename": "epoch{epoch:03d}-val_mae{val/mae:.4f}",
                "checkpoint.auto_insert_metric_name": False,
            }
        )
        # real classes, so that --model.optimizer.lr 0.01 works without naming the class
        parser.set_defaults(
            {
                "model.optimizer": {
                    "class_path": "torch.optim.AdamW",
                    "init_args": {"lr": 1e-3, "weight_decay": 1e-2},
                },
                "model.lr_scheduler": {
                    "class_path": "torch.optim.lr_scheduler.ExponentialLR",
                    "init_args": {"gamma": 0.9},
                },
            }
        )
        parser.add_lightning_class_args(LearningRateMonitor, "lr_monitor")
        parser.set_defaults({"lr_monitor.logging_interval": "step"})
        parser.add_lightning_class_args(ForecastFigures, "figures")
        parser.add_argument(
            "--torch_threads",
            type=int | None,
            default=None,
            help="torch.set_num_threads for this run (default: torch's own choice, one per core); a fixed count "
            "makes results repeat on machines with other core counts",
        )
        parser.link_arguments("data.channels", "model.in_channels", compute_fn=_channels_count)
        parser.link_arguments("data.channels", "model.target_channel", compute_fn=_close_index)
        parser.link_arguments("data.base_len", "model.base_len")
        parser.link_arguments("data.horizon", "model.horizon")
        # every run lives under the root: <default_root_dir>/lightning_logs/version_N
        parser.link_arguments("trainer.default_root_dir", "trainer.logger.init_args.save_dir", compute_fn=_save_dir)

    def _prepare_subcommand_parser(self, klass: type, subcommand: str, **kwargs: Any) -> LightningArgumentParser:
        # Private in Lightning and the only place that knows the subcommand while its parser is built; pinned
        # to lightning 2.6.x in pyproject.toml, and tests/test_lightning_api.py fails if it changes.
        parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
        if subcommand == "fit":
            parser.add_argument(
                "--init_from",
                type=str | None,
                default=None,
                help="warm start: a new run from this checkpoint's weights (a .ckpt path, or last / best: the newest "
                "run's), with a fresh optimizer, schedule and epoch count; settings that decide what the weights "
                "mean come from the checkpoint. --ckpt_path instead resumes the checkpoint's own run",
            )
            parser.add_argument(
                "--test_after_fit",
                type=bool,
                default=True,
                help="after fit, score the best checkpoint on the test split and save the table (date split only)",
            )
        else:
            # validate, test and predict start no run: no TensorBoard folder, no config.yaml
            parser.set_defaults({"trainer.logger": False})
        if subcommand == "predict":
            parser.add_argument(
                "--output", type=str, default="predictions.csv", help="CSV file for the forecasts (written atomically)"
            )
            # forecasts go to the file, not into a list in memory
            parser.set_defaults(return_predictions=False)
        return parser

    # ------------------------------------------------------------------------------------- checkpoint rule
    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse, then apply the rule of :mod:`forecast.settings` when a checkpoint is given (``--ckpt_path``, or
        ``fit --init_from``).

        What the user gave, and where, is read from the parser itself: the arguments are parsed with the
        checkpoint's values as the first config, so a value that still differs was given by a flag or a config
        (any spelling, before or after the subcommand), and the parsed ``config`` entries say which configs
        were read.
        """
        argv = [str(a) for a in (sys.argv[1:] if args is None else args)]
        config = parser.parse_args(argv)
        sub = config.get("subcommand")
        ckpt_arg = config[sub].get("ckpt_path") if sub else None
        init_from = config[sub].get("init_from") if sub == "fit" else None
        if ckpt_arg and init_from:
            raise ConfigError(
                "--ckpt_path resumes a run and --init_from starts a new one from a checkpoint's weights: give one"
            )
        if not (ckpt_arg or init_from):
            self.config = config
            return
        use: Use = "evaluate" if sub != "fit" else "resume" if ckpt_arg else "warm_start"
        ckpt_path = self._resolve_checkpoint(config[sub], str(ckpt_arg or init_from))
        settings = CheckpointSettings.of(read_checkpoint(ckpt_path))
        probe = parser.parse_args(["--config", json.dumps({sub: checkpoint_defaults(settings, use)}), *argv])
        given = Given(values=_dotted(probe[sub]), from_configs=_plain_config_values(probe, sub))
        kept = apply_rule(settings, given, use)
        flag = "--ckpt_path" if ckpt_arg else "--init_from"
        fixed = ["--config", json.dumps({sub: checkpoint_defaults(settings, use, chosen=False)})]
        self.config = parser.parse_args([*fixed, *argv, "--config", json.dumps(kept), flag, ckpt_path])
        if use == "resume":
            run = run_folder_of(ckpt_path)
            root = config[sub].trainer.default_root_dir
            if run is not None and run.parent == runs_folder(root, self._runs_name(config[sub])):
                self.resume_version = run.name  # resume in the run's own folder: one run, one folder
                # Lightning warns about a non-empty checkpoint folder: here it is the run's own, as intended
                warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
        restored = ", ".join(f"{k}={v}" for k, v in kept["data"].items() if k in ("source", "path", "predict_set"))
        what = "weights" if use == "warm_start" else "model and data settings"
        log.info("checkpoint %s: %s restored from it (%s)", ckpt_path, what, restored or "data as given")

    @staticmethod
    def _runs_name(sub_config: Any) -> str:
        logger = sub_config.trainer.get("logger")
        init_args = getattr(logger, "init_args", None)
        return str(getattr(init_args, "name", None) or RUNS_FOLDER)

    def _resolve_checkpoint(self, sub_config: Any, ckpt_arg: str) -> str:
        """``last``/``best`` → the newest run's checkpoint under the root; a path stays as it is."""
        if ckpt_arg not in ("last", "best"):
            return ckpt_arg
        runs = runs_folder(sub_config.trainer.default_root_dir, self._runs_name(sub_config))
        path = newest_run_checkpoint(runs, ckpt_arg, sub_config.checkpoint.get("dirpath"))
        log.info("--ckpt_path %s: %s", ckpt_arg, path)
        return str(path)

    def _parse_ckpt_path(self) -> None:
        """Disabled: :meth:`parse_arguments` already applied the checkpoint's settings, with the project's rule.

        Lightning's own version (private; pinned and tested in tests/test_lightning_api.py) would apply the
        model's hyperparameters over the command line's silently.
        """

    # ---------------------------------------------------------------------------------------------- hooks
    def before_instantiate_classes(self) -> None:
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else self.config
        if config.get("torch_threads"):
            torch.set_num_threads(config.torch_threads)
        logger = config.get("trainer", {}).get("logger")
        if self.resume_version and hasattr(getattr(logger, "init_args", None), "version"):
            logger.init_args.version = self.resume_version

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except ValueError as exc:  # the constructors' own checks of their arguments; anything else is a bug
            if isinstance(exc, (DataError, CheckpointError)):
                raise
            raise ConfigError(f"invalid setting: {first_line(exc)}") from exc

    def _callback(self, kind: type) -> Any:
        return next(c for c in self.trainer.callbacks if isinstance(c, kind))

    def _check_checkpoint(self, subcommand: str) -> None:
        """A checkpoint whose weights do not fit the model built from the settings fails here, before any output."""
        ckpt_path = self.config[subcommand].get("ckpt_path") or self.config[subcommand].get("init_from")
        if not ckpt_path:
            if subcommand != "fit":
                # an untrained model would give plausible-looking but meaningless numbers
                raise CheckpointError(
                    f"{subcommand} needs a trained model: pass --ckpt_path PATH (or last / best: the newest run's)"
                )
            return
        theirs = read_checkpoint(ckpt_path)["state_dict"]
        ours = self.model.state_dict()
        missing = sorted(set(ours) - set(theirs))
        unexpected = sorted(set(theirs) - set(ours))
        resized = sorted(k for k in set(ours) & set(theirs) if tuple(ours[k].shape) != tuple(theirs[k].shape))
        if missing or unexpected or resized:
            first = (missing or unexpected or resized)[0]
            raise CheckpointError(
                f"{ckpt_path} does not fit this model ({len(missing)} missing, {len(unexpected)} unexpected, "
                f"{len(resized)} resized weights, e.g. {first}); it was saved by another version of the model"
            )

    def _check_data(self, stage: str) -> None:
        """Check the checkpoint and load the data before the Trainer writes anything (logs, config, checkpoints).

        A bad file, an unknown ticker or an empty split then fails with nothing left on disk. The DataModule
        keeps what it loaded, so the Trainer's own ``setup`` call does not read the data again.
        """
        self._check_checkpoint(stage)
        self.datamodule.prepare_data()
        self.datamodule.setup(stage)

    def before_fit(self) -> None:
        self._check_data("fit")
        fit = self.config.fit
        # the optimizer and schedule the run trains with, kept in its checkpoints: a resume must not change them
        self.model.training_settings = {
            key: plain(fit.model[key].as_dict()) if fit.model.get(key) is not None else None
            for key in ("optimizer", "lr_scheduler")
        }
        _check_optimizer(self.model)
        if fit.get("init_from"):  # a warm start: the checkpoint's weights, a fresh optimizer, schedule and epochs
            self.model.load_state_dict(read_checkpoint(fit.init_from)["state_dict"])
            self.model.init_from = str(Path(fit.init_from).absolute())
        if self.trainer.limit_val_batches == 0:
            # Lightning would fail only after the first training epoch, in the early-stopping callback
            stoppers = [c for c in self.trainer.callbacks if isinstance(c, EarlyStopping)]
            if stoppers:
                raise ConfigError(
                    f"--trainer.limit_val_batches 0 turns validation off, but EarlyStopping monitors "
                    f"{stoppers[0].monitor}, a validation metric; keep some validation (e.g. "
                    "--trainer.limit_val_batches 1) or use a config without EarlyStopping"
                )

    def before_validate(self) -> None:
        self._check_data("validate")

    def before_test(self) -> None:
        self._check_data("test")
        ckpt = Path(self.config["test"].ckpt_path).absolute()
        folder = run_folder_of(ckpt) or ckpt.parent
        self._callback(TestReport).dirpath = folder / f"test-{ckpt.stem}"

    def before_predict(self) -> None:
        output = self.config["predict"].get("output") or "predictions.csv"
        self.writer = CSVPredictionWriter(output)
        self.writer.check_output()
        self._check_data("predict")
        self.trainer.callbacks.append(self.writer)

    def after_predict(self) -> None:
        summary = self.writer.summary
        if summary and self.trainer.is_global_zero:
            print(
                f"wrote {summary['rows']:,} forecast rows for {plural(summary['tickers'], 'ticker')}, origins "
                f"{summary['origins'][0]} .. {summary['origins'][1]}, targets {summary['targets'][0]} .. "
                f"{summary['targets'][1]} to {summary['path']}"
            )

    def after_fit(self) -> None:
        # the protocol's table for the best checkpoint, on the test split, when the data has one
        if self.trainer.interrupted or self.datamodule.hparams.split != "date" or not self.config.fit.test_after_fit:
            return
        best, _ = checkpoint_paths(self.trainer)
        if not best:
            log.warning(
                "no validation score was recorded (is validation off?), so there is no best checkpoint: "
                "the test scores the weights of the last training step"
            )
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best or None, verbose=False)


def _check_optimizer(model: Forecaster) -> None:
    """Build the optimizer and scheduler once, before the run writes anything: a value their constructors refuse
    (a negative learning rate, say) is the user's to fix, not an internal failure after the run folder exists."""
    try:
        model.configure_optimizers()
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"invalid optimizer or LR scheduler setting: {first_line(exc)}") from exc


def _dotted(sub_config: Any) -> dict[str, Any]:
    """The parsed ``model`` and ``data`` settings of a subcommand as plain values by dotted key."""
    return {
        f"{section}.{key}": plain(value)
        for section in ("model", "data")
        for key, value in sub_config[section].as_dict().items()
    }


def _plain_config_values(parsed: Any, sub: str) -> dict[str, Any]:
    """``model``/``data`` settings (dotted) set by the config files the parser read that do not name a checkpoint.

    A config that sets ``ckpt_path`` or ``init_from`` itself is about that checkpoint: its values count as given.
    Inline configs (a YAML string instead of a file) count as given too.
    """
    found: dict[str, Any] = {}
    files = [(path, True) for path in parsed.get("config") or []]
    files += [(path, False) for path in parsed[sub].get("config") or []]
    for path, top_level in files:
        try:
            loaded = yaml.safe_load(Path(str(path)).read_text()) if path else None
        except (OSError, yaml.YAMLError):
            loaded = None
        section = (loaded or {}).get(sub) if top_level and isinstance(loaded, dict) else loaded
        if not isinstance(section, dict) or section.get("ckpt_path") or section.get("init_from"):
            continue
        for name in ("model", "data"):
            found |= {f"{name}.{k}": plain(v) for k, v in (section.get(name) or {}).items()}
    return found
