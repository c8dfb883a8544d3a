"""The command line: ``python -m forecast fit|validate|test|predict`` (LightningCLI).

Everything Lightning's CLI does is kept (configs, ``--print_config``, ``--ckpt_path``, any Trainer flag); on
top of it this module adds the project's defaults (checkpointing on ``val/mae``, LR monitor, forecast
figures), restores data settings from a checkpoint, writes forecasts with ``predict --output``, and turns
errors a user can cause into one line on stderr with a non-zero exit.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import resource
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
import yaml
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_only

from forecast.callbacks import BestAndLastCheckpoint, CSVPredictionWriter, ForecastFigures, forecast_examples
from forecast.data import DataError, StockDataModule
from forecast.model import Forecaster
from forecast.report import write_report

EXIT_USER_ERROR = 2
DEBUG_ENV = "FORECAST_DEBUG"


class CheckpointError(ValueError):
    """A checkpoint path that does not exist, is not a checkpoint, or is not a forecast model's."""


def _channels_count(channels: tuple[str, ...]) -> int:
    return len(channels)


def _close_index(channels: tuple[str, ...]) -> int:
    # a missing Close is reported by the DataModule itself; 0 keeps the model valid until then
    return list(channels).index("Close") if "Close" in channels else 0


@functools.lru_cache(maxsize=4)  # parsing, restoring and checking the same file: read it once
def read_checkpoint(path: str) -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``), or raise a one-line :class:`CheckpointError`.

    The result is cached and shared: callers must not modify it.
    """
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"checkpoint not found: {path}; pass an existing .ckpt file (or 'last' with fit)")
    try:
        ckpt = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__})") from exc
    state = ckpt.get("state_dict") if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or "predictor.ridge.raw_lam" not in state:
        raise CheckpointError(f"{path} is not a checkpoint of a forecast model (no ridge predictor in its weights)")
    return ckpt


def _strip_private(hparams: dict[str, Any]) -> dict[str, Any]:
    """Drop Lightning's private keys; tuples become lists (YAML and the parser want plain lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in hparams.items() if not k.startswith("_")}


class ForecastCLI(LightningCLI):
    """LightningCLI with the project's callbacks, argument links and checkpoint handling."""

    def __init__(self, args: list[str] | None = None, run: bool = True) -> None:
        """Parse ``args`` (default: the command line) and run the subcommand, like ``LightningCLI``."""
        super().__init__(
            Forecaster,
            StockDataModule,
            seed_everything_default=0,
            trainer_defaults={
                "max_epochs": 10,
                "logger": {
                    "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                    "init_args": {"save_dir": ".", "name": "lightning_logs", "default_hp_metric": False},
                },
            },
            save_config_kwargs={"overwrite": True},
            auto_configure_optimizers=False,
            args=args,
            run=run,
        )

    # ------------------------------------------------------------------------------------------ arguments
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(BestAndLastCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/mae",
                "checkpoint.mode": "min",
                "checkpoint.save_last": True,
                "checkpoint.dirpath": "lightning_logs/checkpoints",
                "checkpoint.filename": "epoch{epoch:03d}-val_mae{val/mae:.4f}",
                "checkpoint.auto_insert_metric_name": False,
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

    def _prepare_subcommand_parser(self, klass: type, subcommand: str, **kwargs: Any) -> LightningArgumentParser:
        parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
        if subcommand == "fit":
            parser.add_argument(
                "--test_after_fit",
                type=bool,
                default=True,
                help="after fit, score the best checkpoint on the test split and save the table (date split only)",
            )
        if subcommand == "predict":
            parser.add_argument(
                "--output", type=str, default="predictions.csv", help="CSV file for the forecasts (written atomically)"
            )
            # forecasts go to the file, not into a list in memory
            parser.set_defaults(return_predictions=False)
        return parser

    # --------------------------------------------------------------------------------- checkpoint restoring
    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Use a checkpoint's data settings as defaults that the command line and configs still override."""
        argv = [str(a) for a in (sys.argv[1:] if args is None else args)]
        ckpt_path = _option_value(argv, "--ckpt_path")
        if argv and argv[0] in self.subcommands() and ckpt_path and ckpt_path not in ("last", "best"):
            ckpt = read_checkpoint(ckpt_path)
            data_hparams = _strip_private(ckpt.get("datamodule_hyper_parameters") or {})
            if data_hparams:
                with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as tmp:
                    yaml.safe_dump({"data": data_hparams}, tmp)
                self._ckpt_data_config = tmp.name
                argv = [argv[0], "--config", tmp.name, *argv[1:]]
        try:
            self.config = parser.parse_args(argv)
        finally:
            if getattr(self, "_ckpt_data_config", None):
                os.unlink(self._ckpt_data_config)

    def _parse_ckpt_path(self) -> None:
        """Restore the model's hyperparameters from the checkpoint (Lightning's behaviour), minus the linked ones.

        ``in_channels``, ``base_len``, ``horizon`` and ``target_channel`` follow the data settings, which
        :meth:`parse_arguments` already restored from the same checkpoint.
        """
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if not ckpt_path or ckpt_path in ("last", "best"):
            return
        hparams = _strip_private(read_checkpoint(ckpt_path).get("hyper_parameters") or {})
        for linked in ("in_channels", "base_len", "horizon", "target_channel"):
            hparams.pop(linked, None)
        if hparams:
            self.config = self.parser.parse_object({subcommand: {"model": hparams}}, self.config)

    # ---------------------------------------------------------------------------------------------- hooks
    def before_instantiate_classes(self) -> None:
        subcommand = self.config.get("subcommand")
        threads = (self.config[subcommand] if subcommand else self.config).get("torch_threads")
        if threads:
            torch.set_num_threads(threads)

    def _check_checkpoint(self, subcommand: str) -> None:
        """A checkpoint whose weights do not fit the model built from the settings fails here, before any output."""
        ckpt_path = self.config[subcommand].get("ckpt_path")
        if not ckpt_path or ckpt_path in ("last", "best") or not Path(ckpt_path).is_file():
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
                f"{len(resized)} resized weights, e.g. {first}); drop the overrides that change the architecture "
                "or use the config it was trained with"
            )

    def _check_data(self, stage: str) -> None:
        """Load and validate the data before the Trainer writes anything (logs, config, checkpoints).

        A bad file, an unknown ticker or an empty split then fails with nothing left on disk. The DataModule
        keeps what it loaded, so the Trainer's own ``setup`` call does not read the data again.
        """
        self._check_checkpoint(stage)
        self.datamodule.prepare_data()
        self.datamodule.setup(stage)

    def before_fit(self) -> None:
        self._check_data("fit")

    def before_validate(self) -> None:
        self._check_data("validate")

    def before_test(self) -> None:
        self._check_data("test")

    def before_predict(self) -> None:
        if not self.config["predict"].get("ckpt_path"):
            # an untrained model would write plausible-looking but meaningless forecasts
            raise CheckpointError(
                "predict needs a trained model: pass --ckpt_path PATH (e.g. lightning_logs/checkpoints/last.ckpt)"
            )
        output = self.config["predict"].get("output") or "predictions.csv"
        self.writer = CSVPredictionWriter(output)
        self.writer.check_output()
        self._check_data("predict")
        self.trainer.callbacks.append(self.writer)

    def after_predict(self) -> None:
        summary = self.writer.summary
        if summary and self.trainer.is_global_zero:
            print(
                f"wrote {summary['rows']:,} forecast rows for {summary['tickers']} tickers, origins "
                f"{summary['origins'][0]} .. {summary['origins'][1]}, targets {summary['targets'][0]} .. "
                f"{summary['targets'][1]} to {summary['path']}"
            )

    def after_test(self) -> None:
        self._report("test")

    def after_fit(self) -> None:
        self._write_fit_summary()
        # the protocol's table for the best checkpoint, on the test split, when the data has one
        if self.trainer.interrupted or self.datamodule.hparams.split != "date" or not self.config.fit.test_after_fit:
            return
        best = self.trainer.checkpoint_callback.best_model_path if self.trainer.checkpoint_callback else ""
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best or None, verbose=False)
        self._report("test")

    def _write_fit_summary(self) -> None:
        """``fit_summary.json`` in the log dir: the best validation epoch, its metrics, time to reach it, peak RSS."""
        log_dir = Path(self.trainer.log_dir or ".")  # collective under DDP
        history = self.model.val_history
        if not history or not self.trainer.is_global_zero:
            return
        best = min(history, key=lambda row: row["mae"])
        summary = {
            "best_epoch": best["epoch"],
            "best_val_mae": best["mae"],
            "best_val_rel_mae": best["rel_mae"],
            "seconds_to_best": best["seconds"],
            "seconds_total": history[-1]["seconds"],
            "epochs": len(history),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "torch_threads": torch.get_num_threads(),
            "best_checkpoint": getattr(self.trainer.checkpoint_callback, "best_model_path", ""),
            "history": history,
        }
        log_dir.mkdir(parents=True, exist_ok=True)
        (log_dir / "fit_summary.json").write_text(json.dumps(summary, indent=2))
        print(
            f"best validation epoch {best['epoch']}: val relMAE {best['rel_mae']:.4f}, MAE ${best['mae']:.4f}, "
            f"reached after {best['seconds']:.1f} s (peak RSS {summary['peak_rss_mb']:.0f} MB, "
            f"{summary['torch_threads']} torch threads)"
        )

    def _report(self, split: str) -> None:
        log_dir = Path(self.trainer.log_dir or ".")  # a collective call under DDP: every rank must make it
        results = self.model.test_results
        if results is None or not self.trainer.is_global_zero:
            return
        examples = forecast_examples(self.model, self.datamodule.datasets[split], 4)
        print(write_report(results, log_dir, split, examples=examples))


def _option_value(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


class _RankZeroFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return rank_zero_only.rank == 0


class _NoAdvertFilter(logging.Filter):
    """Drop Lightning's "💡 Tip" advertisement lines; keep everything else it logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


def _configure_logging() -> None:
    logger = logging.getLogger("forecast")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.addFilter(_RankZeroFilter())
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    for lightning_handler in logging.getLogger("lightning.pytorch").handlers:
        lightning_handler.addFilter(_NoAdvertFilter())
    # a deprecation inside Lightning's own code, not actionable by users of this tool
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated")


def _is_user_error(exc: BaseException) -> bool:
    if isinstance(exc, (DataError, CheckpointError, OSError)):
        return True
    # a checkpoint whose weights do not fit the model built from its own (or the given) settings
    return isinstance(exc, RuntimeError) and "Error(s) in loading state_dict" in str(exc)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, RuntimeError) and "Error(s) in loading state_dict" in str(exc):
        return (
            "the checkpoint's weights do not fit the model (a checkpoint from an incompatible model or "
            "config); use the config it was trained with or a matching checkpoint"
        )
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text


def main(args: list[str] | None = None) -> None:
    """Entry point of ``python -m forecast``. ``--debug`` (or ``FORECAST_DEBUG=1``) shows tracebacks."""
    argv = list(sys.argv[1:] if args is None else args)
    debug = "--debug" in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    if debug:
        os.environ[DEBUG_ENV] = "1"  # DDP launches this command again in child processes
    _configure_logging()
    sys.argv = [sys.argv[0], *argv]  # DDP re-launches sys.argv in its child processes
    try:
        ForecastCLI()
    except Exception as exc:
        if debug or not (_is_user_error(exc) or isinstance(exc, ValueError)):
            raise
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
