"""``fit|validate|test|predict``: LightningCLI, through its public API only, with the project's defaults
(:mod:`forecast.defaults`), the settings rule with a checkpoint (:mod:`forecast.settings`), checks that fail before
anything is written, and what :mod:`forecast.run` reads each subcommand's result from."""

from __future__ import annotations

import logging
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from forecast import defaults
from forecast.callbacks import CSVPredictionWriter, ForecastFigures, TestReport, checkpoint_paths
from forecast.callbacks.prediction_writer import OutputError
from forecast.checkpoint import RUNS_FOLDER, CheckpointError, check_weights, plain_data, read_checkpoint, run_folder_of
from forecast.checkpoint import runs_folder as runs_under
from forecast.data import StockDataModule
from forecast.data.panel import LoadedPanel
from forecast.errors import ConfigError, UserError, first_line, option
from forecast.model import Forecaster
from forecast.model.optim import check_optimizer
from forecast.settings import Parsed, one_batch_limits, parse_with_checkpoint


class ForecastCLI(LightningCLI):
    """LightningCLI's ``args`` and ``run``; ``data``: a panel already read (:meth:`StockDataModule.loaded`), used when
    read with these settings; ``keep_forecasts``: ``predict`` keeps its forecasts in its writer's ``frame``."""

    def __init__(
        self, args: Any = None, run: bool = True, data: LoadedPanel | None = None, keep_forecasts: bool = False
    ) -> None:
        self.loaded, self.keep_forecasts = data, keep_forecasts
        self.parsed = Parsed(None)
        super().__init__(
            Forecaster, StockDataModule, seed_everything_default=0, trainer_defaults=defaults.trainer_defaults(),
            save_config_callback=defaults.FitConfigSaver, save_config_kwargs={"overwrite": True}, args=args, run=run,
            parser_class=defaults.ForecastParser, parser_kwargs=defaults.PARSER_KWARGS, auto_configure_optimizers=False,
        )  # fmt: skip

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """Lightning's subcommands; ``predict`` without ``--return_predictions`` (its forecasts go to the writer)."""
        return {**LightningCLI.subcommands(), "predict": {*LightningCLI.subcommands()["predict"], "return_predictions"}}

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.add_lightning_class_args(LearningRateMonitor, "lr_monitor")
        parser.add_lightning_class_args(ForecastFigures, "figures")
        parser.set_defaults(defaults.PARSER_DEFAULTS)
        parser.add_argument("--torch_threads", type=int | None, default=None, help=defaults.TORCH_THREADS_HELP)
        for source, target, compute in defaults.LINKS:
            parser.link_arguments(source, target, compute_fn=compute)
        for name, options in defaults.SUBCOMMAND_ARGUMENTS.get(parser.command or "", {}).items():
            parser.add_argument(name, **options)
        parser.set_defaults(defaults.SUBCOMMAND_DEFAULTS.get(parser.command or "", {}))

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse with the rule of :mod:`forecast.settings` when a checkpoint is given (``--ckpt_path``, ``fit
        --init_from``; ``last``/``best`` under the subcommand's root)."""
        argv = [str(a) for a in (sys.argv[1:] if args is None else args)]
        self.parsed = parse_with_checkpoint(parser, argv, self._runs)
        self._one_batch = one_batch_limits(argv)
        self.config = self.parsed.config
        if self.parsed.use in ("resume", "evaluate"):
            # LightningCLI applies a checkpoint's hyperparameters over the config whenever ckpt_path names a file;
            # the rule has decided every setting: the path is handed back when the classes are built
            self.config[self.config.subcommand]["ckpt_path"] = None

    def _runs(self, sub_config: Any) -> Path:
        """Where a subcommand's runs are: ``<default_root_dir>/<logger name>``."""
        init_args = getattr(sub_config.trainer.get("logger"), "init_args", None)
        return runs_under(sub_config.trainer.default_root_dir, getattr(init_args, "name", None) or RUNS_FOLDER)

    def before_instantiate_classes(self) -> None:
        sub = self.config.get("subcommand")
        config = self.config[sub] if sub else self.config
        if self.parsed.use in ("resume", "evaluate"):
            config["ckpt_path"] = self.parsed.ckpt_path
        if config.get("torch_threads"):
            torch.set_num_threads(config.torch_threads)
        run = run_folder_of(self.parsed.ckpt_path) if self.parsed.use == "resume" else None
        logger = getattr(config.get("trainer", {}).get("logger"), "init_args", None)
        if run is not None and run.parent == self._runs(config) and hasattr(logger, "version"):
            logger.version = run.name  # a resume continues in the run's own folder: one run, one folder
            warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        sub = self.config.get("subcommand")
        trainer = (self.config[sub] if sub else self.config).get("trainer", {})
        # 1 is one batch, as Lightning reads an int (forecast.settings.one_batch_limits)
        one = {key: 1 for key in self._one_batch if key in trainer and trainer[key] == 1}
        return super().instantiate_trainer(**{**one, **kwargs})

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except ValueError as exc:  # the constructors' own checks of their arguments; anything else is a bug
            raise exc if isinstance(exc, UserError) else ConfigError(f"invalid setting: {first_line(exc)}") from exc
        if self.loaded is not None:
            self.datamodule.adopt(self.loaded)

    def _check_data(self, stage: str) -> None:
        """The checkpoint's weights against the model, then the data, before the Trainer writes anything: a bad
        file, an unknown ticker or an empty split fails with nothing on disk (the DataModule keeps what it read)."""
        ckpt_path = self.config[stage].get("ckpt_path") or self.config[stage].get("init_from")
        if ckpt_path:
            check_weights(ckpt_path, self.model.state_dict())
        elif stage != "fit":  # an untrained model would give plausible-looking but meaningless numbers
            raise CheckpointError(
                f"{stage} needs a trained model: pass {option('ckpt_path')} PATH (or last / best: the newest run's)"
            )
        self.datamodule.prepare_data()
        self.datamodule.setup(stage)

    def before_fit(self) -> None:
        check_optimizer(self.model)  # first: a refused value is the one line, before the data is even read
        self._check_data("fit")
        root = Path(self.trainer.default_root_dir)
        try:
            root.mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=root).close()
        except OSError as exc:
            raise OutputError(
                f"cannot write to {option('trainer.default_root_dir')} {root}: {exc.strerror or exc}; "
                "give a folder you can write to"
            ) from exc
        fit = self.config.fit
        # the optimizer and schedule the run trains with, kept in its checkpoints: a resume must not change them
        self.model.training_settings = {
            key: plain_data(fit.model[key].as_dict()) if fit.model.get(key) is not None else None
            for key in ("optimizer", "lr_scheduler")
        }
        if fit.get("init_from"):  # a warm start: the checkpoint's weights, a fresh optimizer, schedule and epochs
            self.model.load_state_dict(read_checkpoint(fit.init_from)["state_dict"])
            self.model.init_from = str(Path(fit.init_from).absolute())
        stoppers = [c for c in self.trainer.callbacks if isinstance(c, EarlyStopping)]
        if self.trainer.limit_val_batches == 0 and stoppers:  # Lightning would fail only after the first epoch
            flag = option("trainer.limit_val_batches")
            monitor = stoppers[0].monitor
            raise ConfigError(
                f"{flag} 0 turns validation off, but EarlyStopping monitors {monitor}, a validation "
                f"metric; keep some validation (e.g. {flag} 1) or use a config without EarlyStopping"
            )

    def after_fit(self) -> None:
        if not self.trainer.interrupted and self.datamodule.hparams.split == "date" and self.config.fit.test_after_fit:
            best, _ = checkpoint_paths(self.trainer)
            if not best:
                message = "so there is no best checkpoint: the test scores the weights of the last training step"
                logging.getLogger(__name__).warning(f"no validation score was recorded (is validation off?), {message}")
            self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best or None, verbose=False)

    def before_validate(self) -> None:
        self._check_data("validate")

    def before_test(self) -> None:
        self._check_data("test")
        ckpt = Path(self.config["test"].ckpt_path).absolute()
        report = next(c for c in self.trainer.callbacks if isinstance(c, TestReport))
        report.dirpath = (run_folder_of(ckpt) or ckpt.parent) / f"test-{ckpt.stem}"

    def before_predict(self) -> None:
        self.writer = CSVPredictionWriter(None if self.keep_forecasts else self.config["predict"].get("output"))
        self.writer.check_output()
        self._check_data("predict")
        self.trainer.callbacks.append(self.writer)

    def after_predict(self) -> None:
        if self.writer.summary is not None and self.trainer.is_global_zero and not self.keep_forecasts:
            print(self.writer.summary_line())
