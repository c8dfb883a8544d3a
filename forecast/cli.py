"""``python -m forecast fit|validate|test|predict``: LightningCLI with the project's defaults.

Everything Lightning's CLI does is kept (configs, ``--print_config``, ``--ckpt_path``, any Trainer flag); on
top of it this module adds the project's defaults (one folder per run, checkpointing on ``val/mae``, LR
monitor, forecast figures), the settings rule of :mod:`forecast.settings`, ``fit --init_from``,
``predict --output``, and checks that fail before anything is written. :mod:`forecast.main` dispatches to it.
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from forecast.callbacks import (
    CSVPredictionWriter,
    ForecastFigures,
    TestReport,
    checkpoint_paths,
)
from forecast.checkpoint import (
    RUNS_FOLDER,
    CheckpointError,
    check_weights,
    plain_data,
    read_checkpoint,
    run_folder_of,
    runs_folder,
)
from forecast.data import DataError, StockDataModule
from forecast.defaults import (
    LINKS,
    PARSER_DEFAULTS,
    PARSER_KWARGS,
    SUBCOMMAND_ARGUMENTS,
    SUBCOMMAND_DEFAULTS,
    TORCH_THREADS_HELP,
    FitConfigSaver,
    PlainHelpParser,
    trainer_defaults,
)
from forecast.model import Forecaster
from forecast.model.optim import check_optimizer
from forecast.settings import ConfigError, parse_with_checkpoint
from forecast.terminal import first_line

DEBUG_HELP = "--debug (or FORECAST_DEBUG=1) shows the traceback of an error and Lightning's own notices."
SUBCOMMANDS = ("fit", "validate", "test", "predict")

log = logging.getLogger("forecast.cli")


class ForecastCLI(LightningCLI):
    """LightningCLI with the project's callbacks, argument links and checkpoint rule."""

    def __init__(self, args: list[str] | None = None, run: bool = True) -> None:
        """Parse ``args`` (default: the command line) and run the subcommand, like ``LightningCLI``."""
        self.resume_version: str | None = None
        super().__init__(
            Forecaster,
            StockDataModule,
            seed_everything_default=0,
            trainer_defaults=trainer_defaults(),
            save_config_callback=FitConfigSaver,
            parser_class=PlainHelpParser,
            save_config_kwargs={"overwrite": True},
            parser_kwargs=PARSER_KWARGS,
            auto_configure_optimizers=False,
            args=args,
            run=run,
        )

    # ------------------------------------------------------------------------------------------ arguments
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.add_lightning_class_args(LearningRateMonitor, "lr_monitor")
        parser.add_lightning_class_args(ForecastFigures, "figures")
        parser.set_defaults(PARSER_DEFAULTS)
        parser.add_argument("--torch_threads", type=int | None, default=None, help=TORCH_THREADS_HELP)
        for source, target, compute in LINKS:
            parser.link_arguments(source, target, compute_fn=compute)

    def _prepare_subcommand_parser(self, klass: type, subcommand: str, **kwargs: Any) -> LightningArgumentParser:
        # Private in Lightning and the only place that knows the subcommand while its parser is built; pinned
        # to lightning 2.6.x in pyproject.toml, and tests/test_lightning_api.py fails if it changes.
        parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
        for name, options in SUBCOMMAND_ARGUMENTS.get(subcommand, []):
            parser.add_argument(name, **options)
        parser.set_defaults(SUBCOMMAND_DEFAULTS.get(subcommand, {}))
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
        parsed = parse_with_checkpoint(parser, argv, self._runs)
        self.config = parsed.config
        if parsed.use == "resume":
            sub = self.config.subcommand
            run = run_folder_of(parsed.ckpt_path)
            if run is not None and run.parent == self._runs(self.config[sub]):
                self.resume_version = run.name  # resume in the run's own folder: one run, one folder
                # Lightning warns about a non-empty checkpoint folder: here it is the run's own, as intended
                warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")

    @staticmethod
    def _runs(sub_config: Any) -> Path:
        """Where this subcommand's runs are: ``<default_root_dir>/<logger name>``."""
        init_args = getattr(sub_config.trainer.get("logger"), "init_args", None)
        return runs_folder(sub_config.trainer.default_root_dir, getattr(init_args, "name", None) or RUNS_FOLDER)

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
        check_weights(ckpt_path, self.model.state_dict())

    def _check_data(self, stage: str) -> None:
        """Check the checkpoint and load the data before the Trainer writes anything (logs, config, checkpoints).

        A bad file, an unknown ticker or an empty split then fails with nothing left on disk. The DataModule
        keeps what it loaded, so the Trainer's own ``setup`` call does not read the data again.
        """
        self._check_checkpoint(stage)
        self.datamodule.prepare_data()
        self.datamodule.setup(stage)

    def before_fit(self) -> None:
        check_optimizer(self.model)  # first: a refused value is the one line, before the data is even read
        self._check_data("fit")
        fit = self.config.fit
        # the optimizer and schedule the run trains with, kept in its checkpoints: a resume must not change them
        self.model.training_settings = {
            key: plain_data(fit.model[key].as_dict()) if fit.model.get(key) is not None else None
            for key in ("optimizer", "lr_scheduler")
        }
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
        if self.writer.summary and self.trainer.is_global_zero:
            print(self.writer.summary_line())

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
