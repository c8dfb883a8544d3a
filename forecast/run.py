"""The run API the commands are made of: ``fit``, ``validate``, ``test`` and ``predict`` as functions that return what
happened (:mod:`forecast.results`) or raise a typed error (:class:`forecast.errors.UserError` for what the caller
can fix).

A config is what the command line takes, as a list of options (``["--config", "configs/djia.yaml",
"--trainer.max_epochs", "3"]``) or as a mapping (a config file's content, ``{"trainer": {"max_epochs": 3}}``); the
same rule for settings applies (:mod:`forecast.settings`). ``python -m forecast fit ARGS`` is ``fit(ARGS)``.

    >>> result = fit(["--data.source", "synthetic", "--trainer.max_epochs", "1"])  # doctest: +SKIP
    >>> result.best_val_rel_mae, result.best_checkpoint  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException

from forecast.callbacks import FitSummary, checkpoint_paths
from forecast.cli import ForecastCLI
from forecast.data.panel import LoadedPanel
from forecast.errors import ConfigError, interface
from forecast.results import EvaluateResult, FitResult, PredictResult
from forecast.signals import Terminated

Config = Sequence[str] | Mapping[str, Any]
"""Command-line options, or a config mapping."""


def options(config: Config, prefix: str = "") -> list[str]:
    """``config`` as command-line options: a mapping becomes one flag per setting, ``{"trainer": {"max_epochs": 3}}``
    ``--trainer.max_epochs=3`` (a class with its arguments, ``{"class_path": ..., "init_args": ...}``, one flag)."""
    if isinstance(config, str):
        raise TypeError(f"a config is a list of options or a mapping, not the string {config!r}")
    if not isinstance(config, Mapping):
        return [str(a) for a in config]
    flags = []
    for key, value in config.items():
        if isinstance(value, Mapping) and "class_path" not in value:
            flags += options(value, f"{prefix}{key}.")
        else:
            flags.append(f"--{prefix}{key}={value if isinstance(value, str) else json.dumps(value)}")
    return flags


def command(argv: Sequence[str], data: LoadedPanel | None = None, keep_forecasts: bool = False) -> Any:
    """Run ``python -m forecast SUBCOMMAND ...`` (``argv`` from the subcommand, or a config before it) and return
    its result; None for ``--help`` and ``--print_config``."""
    saved = sys.argv
    # DDP starts its other ranks by running sys.argv again: from Python, in a worker process or a Ray task too
    sys.argv = [str(Path(__file__).with_name("__main__.py")), *map(str, argv)]
    try:
        return _result(ForecastCLI(args=list(argv), data=data, keep_forecasts=keep_forecasts))
    except SIGTERMException as exc:  # Lightning's stop after SIGTERM is a SystemExit of status 0: say it was SIGTERM
        stopped = Terminated()
        stopped.advice = getattr(exc, "advice", None)  # type: ignore[attr-defined]  # how to resume, if it was a fit
        raise stopped from exc
    except argparse.ArgumentError as exc:
        if interface() == "command line":
            raise
        text = " ".join(str(exc).split()).replace("--", "")  # from Python the settings have no dashes
        raise ConfigError(f"{text}; python -m forecast {argv[0] if argv else 'fit'} --help lists the settings") from exc
    finally:
        sys.argv = saved
        # a DDP run's process group, which Lightning keeps for reuse: left to the interpreter's exit, its threads
        # were seen to abort the process there ("terminate called without an active exception", exit -6)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _floats(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if getattr(v, "numel", lambda: 1)() == 1}  # scalars, not steps


def _result(cli: ForecastCLI) -> FitResult | EvaluateResult | PredictResult | None:
    """What the subcommand ``cli`` ran returns (None on a DDP rank but the first, which holds the forecasts)."""
    trainer, model, read = cli.trainer, cli.model, cli.datamodule.read_from_source
    tested = {name: _floats(scores) for name, scores in (model.test_results or {}).items()}
    if cli.subcommand == "fit":
        summary = next(c for c in trainer.callbacks if isinstance(c, FitSummary)).summary or {}
        run = Path(trainer.log_dir) if trainer.logger is not None and trainer.log_dir else None
        return FitResult(run, *checkpoint_paths(trainer), summary, tested or None, read)
    if cli.subcommand == "validate":
        scores = {k.removeprefix("val/"): v for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        return EvaluateResult({"model": _floats(scores)}, read)
    if cli.subcommand == "test":
        return EvaluateResult(tested, read)
    summary = cli.writer.summary
    if summary is None or not trainer.is_global_zero:
        return None
    counts = {k: v for k, v in summary.items() if k != "path"}
    return PredictResult(cli.writer.output, **counts, frame=cli.writer.frame, data_read=read)


def fit(config: Config = (), *, data: LoadedPanel | None = None) -> FitResult:
    """Train a model (``python -m forecast fit``): a new run, a resume (``ckpt_path``) or a warm start
    (``init_from``). ``data``: a panel already read with the same data settings, used instead of reading again."""
    return command(["fit", *options(config)], data)


def validate(config: Config) -> EvaluateResult:
    """Score a checkpoint (``ckpt_path`` in ``config``) on the validation split."""
    return command(["validate", *options(config)])


def test(config: Config) -> EvaluateResult:
    """Score a checkpoint (``ckpt_path`` in ``config``) on the test split against the naive and drift baselines,
    saving the report beside the checkpoint's run."""
    return command(["test", *options(config)])


test.__test__ = False  # type: ignore[attr-defined]  # a function named test, not a test for pytest


def predict(config: Config, *, output: str | Path | None = None, data: LoadedPanel | None = None) -> PredictResult:
    """Forecast with a checkpoint (``ckpt_path`` in ``config``): written to ``output`` (a CSV file, atomically), or
    with ``output`` None returned as :attr:`PredictResult.frame`."""
    args = options(config)
    if output is not None:
        return command(["predict", *args, "--output", str(output)], data)
    return command(["predict", *args], data, keep_forecasts=True)
