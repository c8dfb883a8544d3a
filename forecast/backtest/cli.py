"""``python -m forecast backtest``: fit every (year, seed) fold, score its forecasts, report with DM tests.

    python -m forecast backtest --config configs/djia.yaml --years 2013 2014 2015 2016 2017 --seeds 0 1 2 \
        --out runs/backtest [--jobs 2] [--cost_bps 5] [any fit option, e.g. --data.source csv --data.path FILE]
    python -m forecast backtest --score_only --out runs/backtest [--cost_bps 5]    # re-score, no training

Everything is checked before any training starts: the options (by building the model, data and trainer once,
as ``fit`` would), the data (loaded once here; every year must have training, validation and test windows),
and the output folder (writable, and not holding folds of a backtest with other settings).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import shlex
import tempfile
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import yaml

from forecast.backtest import report, summary
from forecast.backtest.evaluate import SETTINGS_FILE, TITLE_FILE, score_and_report, score_only
from forecast.backtest.folds import BacktestError, FoldDates, check_years
from forecast.backtest.runner import Fold, FoldRunner
from forecast.data.errors import plural

log = logging.getLogger("forecast.backtest")

OWNED = {
    "seed_everything": "--seeds",
    "data.train_end": "--years",
    "data.val_end": "--years",
    "data.test_end": "--years",
    "data.predict_set": "the backtest",
    "trainer.default_root_dir": "--out",
    "ckpt_path": "the backtest (each fold trains afresh)",
    "test_after_fit": "the backtest",
    "output": "--out",
}
"""Fit options the backtest sets for every fold, and the option that controls each instead."""

FOLD_KEYS = ("seed_everything", "data.train_end", "data.val_end", "data.test_end", "trainer.default_root_dir")


class CommandParser(argparse.ArgumentParser):
    """The parser of a command of this tool that is not LightningCLI's (``backtest``, ``tune``): a bad option raises
    ``argparse.ArgumentError``, which :func:`forecast.terminal.run` prints as one line with exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise argparse.ArgumentError(None, message)


def build_parser() -> argparse.ArgumentParser:
    """The backtest's own options (everything else is a fit option, given to every fold)."""
    parser = CommandParser(
        prog="python -m forecast backtest",
        description="Walk-forward backtest: one fit per test year and seed, scored on that year, with a "
        "Diebold–Mariano test against the year's best simple baseline, and the forecasts' cross-sectional signal. "
        "Options not listed here are fit options (--config, --model.*, "
        "--data.*, --trainer.*), given to every fold.",
        allow_abbrev=False,
        epilog="--debug (or FORECAST_DEBUG=1) shows the traceback of an error.",
    )
    parser.add_argument("--years", type=int, nargs="+", help="test years (validation years with --validation_only)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds of each year's fits (default: 0)")
    parser.add_argument("--out", required=True, help="folder for runs, predictions and the report")
    parser.add_argument("--jobs", type=int, default=1, help="folds run at a time, each in its own process")
    parser.add_argument(
        "--validation_only",
        action="store_true",
        help="for choosing settings: fit each year's fold with YEAR as the validation year and report validation "
        "relMAE only (no test year is looked at); needs two or more years",
    )
    parser.add_argument(
        "--cost_bps",
        type=float,
        default=5.0,
        help="trading cost of the long-short spread, basis points a side (default: 5)",
    )
    parser.add_argument(
        "--score_only",
        action="store_true",
        help="re-score the finished folds in --out (their predictions files and the settings recorded there) "
        "without training; takes no other options but --cost_bps",
    )
    return parser


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """The backtest's options and the fit options, or a :class:`BacktestError` for options that cannot work."""
    options, fit_args = build_parser().parse_known_args(argv)
    if options.cost_bps < 0 or not math.isfinite(options.cost_bps):
        raise BacktestError(f"--cost_bps must be a finite number >= 0, got {options.cost_bps}")
    if options.score_only:
        if fit_args or options.years or options.validation_only:
            given = " ".join(fit_args) or "--years/--validation_only"
            raise BacktestError(f"--score_only re-scores the folds in --out as they were run; drop {given}")
        return options, fit_args
    if not options.years:
        raise BacktestError("the following arguments are required: --years")
    key = owned_option(fit_args, OWNED)
    if key:
        raise BacktestError(f"--{key} is set for each fold by {OWNED[key]}; drop it from the backtest's options")
    if len(set(options.years)) != len(options.years) or len(set(options.seeds)) != len(options.seeds):
        raise BacktestError(f"--years {options.years} and --seeds {options.seeds} must not repeat a value")
    if options.jobs < 1:
        raise BacktestError(f"--jobs must be 1 or more, got {options.jobs}")
    if options.validation_only and len(options.years) < 2:
        raise BacktestError(
            "--validation_only needs two or more years: a setting that wins on one validation year and not the "
            "next is noise"
        )
    return options, fit_args


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Building the trainer once as a check prints Lightning's device lines: not useful here."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def build_as_fit(fit_args: list[str], fold: FoldDates) -> tuple[Any, dict[str, Any]]:
    """Build model, data and trainer from the fit options as ``fit`` would, without training; load the data.

    Returns the DataModule (with its panel loaded) and the resolved settings that define the backtest.
    """
    from forecast.cli import ForecastCLI

    with quiet_lightning():
        try:
            cli = ForecastCLI(args=[*fit_args, *fold.arguments()], run=False)
        except argparse.ArgumentError as exc:  # the fit options are fit's: point at fit's help
            raise BacktestError(f"{' '.join(str(exc).split())} (fit options: python -m forecast fit --help)") from exc
    datamodule = cli.datamodule
    datamodule.prepare_data()
    datamodule.load_panel()  # resolves the source and records the absolute path in the hparams
    settings = yaml.safe_load(cli.parser.dump(cli.config, skip_check=True))
    for key in FOLD_KEYS:
        section, _, name = key.rpartition(".")
        (settings.get(section, {}) if section else settings).pop(name, None)
    settings["data"]["source"] = datamodule.hparams.source
    settings["data"]["path"] = datamodule.hparams.path
    return datamodule, settings


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flatten(item, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): value}


def setting_changes(theirs: dict[str, Any], ours: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """Every dotted setting whose value differs between two nested dicts (of JSON values): ``(key, theirs,
    ours)``, sorted by key; a setting missing on one side reads as None there."""
    a, b = _flatten(json.loads(json.dumps(theirs))), _flatten(json.loads(json.dumps(ours)))
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def owned_option(fit_args: list[str], owned: dict[str, str]) -> str | None:
    """The first fit option in ``fit_args`` (``--key value`` or ``--key=value``) that is a key of ``owned``."""
    keys = (arg[2:].split("=", 1)[0] for arg in fit_args if arg.startswith("--"))
    return next((key for key in keys if key in owned), None)


def threads_per_job(jobs: int, settings: dict[str, Any]) -> list[str]:
    """The fit options that share the cores among ``jobs`` fit processes: ``--torch_threads cores // jobs``, unless
    the settings fix ``torch_threads`` or one job runs at a time."""
    if jobs > 1 and settings.get("torch_threads") is None:
        return ["--torch_threads", str(max(1, (os.cpu_count() or 1) // jobs))]
    return []


def claim_output(out: Path, settings: dict[str, Any]) -> None:
    """Make ``out`` (writable), and refuse one that holds folds of a backtest with other settings."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise BacktestError(f"cannot write to --out {out}: {exc.strerror or exc}; choose another folder") from exc
    path = out / SETTINGS_FILE
    if path.is_file():
        changed = setting_changes(json.loads(path.read_text()), settings)
        if changed:
            key, theirs, ours = changed[0]
            raise BacktestError(
                f"{out} holds a backtest with other settings ({key.removeprefix('fit.')}: {theirs!r} there, "
                f"{ours!r} now{f', and {len(changed) - 1} more' if len(changed) > 1 else ''}); use another --out, "
                "or delete it to start again"
            )
    else:
        path.write_text(json.dumps(settings, indent=2))


def run_folds(runner: FoldRunner, folds: list[Fold], jobs: int) -> None:
    """Run the unfinished folds, ``jobs`` at a time; the first failure stops new folds from starting."""
    todo = [f for f in folds if not runner.finished(f)]
    print(
        f"backtest: {plural(len(folds), 'fold')}, {len(folds) - len(todo)} finished earlier, {jobs} at a time; "
        f"logs in {runner.out / 'runs'}/<fold>/fold.log",
        flush=True,
    )
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(runner.run, fold): fold for fold in todo}
        pending = set(futures)
        try:
            while pending:
                pending = _report_finished(runner, futures, pending)
        except KeyboardInterrupt:  # the fold commands got Ctrl-C too; none may keep the backtest waiting
            for future in pending:
                future.cancel()
            runner.stop()
            raise


def _report_finished(runner: FoldRunner, futures: dict, pending: set) -> set:
    """Wait for the next fold(s) to finish and print them; returns the folds still pending. The first failure
    cancels the rest and is raised."""
    done, pending = wait(pending, return_when=FIRST_COMPLETED)
    for future in done:
        fold = futures[future]
        if future.exception() is not None:
            for other in pending:
                other.cancel()
            wait(pending)
            raise future.exception()  # type: ignore[misc]
        summary = runner.fit_summary(fold)
        print(
            f"fold {fold.name}: best epoch {summary['best_epoch']}, val relMAE "
            f"{summary['best_val_rel_mae']:.4f}, {future.result()['seconds']:.0f} s",
            flush=True,
        )
    return pending


def backtest(argv: list[str]) -> None:
    """``python -m forecast backtest ARGV``: check everything, run the unfinished folds, score and report."""
    options, fit_args = parse(argv)
    out = Path(options.out).absolute()  # fold commands name it: they must work from any folder
    if options.score_only:
        score_only(out, options.cost_bps)
        return
    dates = [FoldDates(year, options.validation_only) for year in options.years]
    datamodule, settings = build_as_fit(fit_args, dates[0])
    base_len, horizon = datamodule.hparams.base_len, datamodule.hparams.horizon
    check_years(datamodule.panel, base_len, horizon, options.years, options.validation_only)
    claim_output(out, {"validation_only": options.validation_only, "fit": settings})
    runner = FoldRunner(out, fit_args, threads_per_job(options.jobs, settings))
    folds = [Fold(d, seed) for d in dates for seed in options.seeds]
    run_folds(runner, folds, options.jobs)
    config = next((fit_args[i + 1] for i, a in enumerate(fit_args[:-1]) if a in ("--config", "-c")), None)
    title = f"Backtest of {Path(config).name if config else 'the default settings'}, seeds {options.seeds}"
    title = {"title": title, "options": shlex.join(fit_args)}
    if options.validation_only:
        result = summary.validation_summary({(f.dates.year, f.seed): runner.scored_record(f) for f in folds})
        report.write_validation(out, result, title)
        print((out / "backtest.md").read_text())
        print(f"wrote {out / 'backtest.json'}, {out / 'backtest.md'}")
        return
    (out / TITLE_FILE).write_text(json.dumps(title))
    score_and_report(runner, folds, datamodule.panel, base_len, horizon, options.cost_bps, title)
