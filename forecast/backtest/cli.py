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
import re
import shlex
import tempfile
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import yaml

from forecast.backtest import report, summary
from forecast.backtest.ensemble import ensemble_predictions, write_predictions
from forecast.backtest.folds import BacktestError, FoldDates, check_years
from forecast.backtest.runner import Fold, FoldRunner
from forecast.backtest.scoring import FoldScore, read_predictions, score_fold
from forecast.backtest.signal import combine, net_return
from forecast.backtest.summary import ENSEMBLE
from forecast.data.errors import plural
from forecast.data.panel import Panel

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
SETTINGS_FILE = "backtest_settings.json"
TITLE_FILE = "backtest_title.json"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise argparse.ArgumentError(None, message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m forecast backtest",
        description="Walk-forward backtest: one fit per test year and seed, scored on that year, with a "
        "Diebold–Mariano test against naive. Options not listed here are fit options (--config, --model.*, "
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
    for arg in fit_args:
        key = arg[2:].split("=", 1)[0] if arg.startswith("--") else ""
        if key in OWNED:
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
def _quiet_lightning() -> Iterator[None]:
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


def probe(fit_args: list[str], fold: FoldDates) -> tuple[Any, dict[str, Any]]:
    """Build model, data and trainer from the fit options as ``fit`` would, without training; load the data.

    Returns the DataModule (with its panel loaded) and the resolved settings that define the backtest.
    """
    from forecast.cli import ForecastCLI

    with _quiet_lightning():
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
        theirs, ours = _flatten(json.loads(path.read_text())), _flatten(json.loads(json.dumps(settings)))
        changed = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
        if changed:
            key = changed[0]
            raise BacktestError(
                f"{out} holds a backtest with other settings ({key.removeprefix('fit.')}: {theirs.get(key)!r} there, "
                f"{ours.get(key)!r} "
                f"now{f', and {len(changed) - 1} more' if len(changed) > 1 else ''}); use another --out, or delete "
                "it to start again"
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
        while pending:
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


def _record(runner: FoldRunner, fold: Fold) -> dict[str, Any]:
    summary = runner.fit_summary(fold)
    record = runner.record(fold)
    best = {k: v for k, v in summary.items() if k.startswith("best_val_")}  # relMAE, and a quantile model's scores
    return {**record, "best_epoch": summary["best_epoch"], **best}


def backtest(argv: list[str]) -> None:
    options, fit_args = parse(argv)
    out = Path(options.out).absolute()  # fold commands name it: they must work from any folder
    if options.score_only:
        score_only(out, options.cost_bps)
        return
    dates = [FoldDates(year, options.validation_only) for year in options.years]
    datamodule, settings = probe(fit_args, dates[0])
    base_len, horizon = datamodule.hparams.base_len, datamodule.hparams.horizon
    check_years(datamodule.panel, base_len, horizon, options.years, options.validation_only)
    claim_output(out, {"validation_only": options.validation_only, "fit": settings})
    extra = []
    if options.jobs > 1 and settings.get("torch_threads") is None:  # N processes sharing the cores
        extra = ["--torch_threads", str(max(1, (os.cpu_count() or 1) // options.jobs))]
    runner = FoldRunner(out, fit_args, extra)
    folds = [Fold(d, seed) for d in dates for seed in options.seeds]
    run_folds(runner, folds, options.jobs)
    config = next((fit_args[i + 1] for i, a in enumerate(fit_args[:-1]) if a in ("--config", "-c")), None)
    title = f"Backtest of {Path(config).name if config else 'the default settings'}, seeds {options.seeds}"
    title = {"title": title, "options": shlex.join(fit_args)}
    if options.validation_only:
        result = summary.validation_summary({(f.dates.year, f.seed): _record(runner, f) for f in folds})
        report.write_validation(out, result, title)
        print((out / "backtest.md").read_text())
        print(f"wrote {out / 'backtest.json'}, {out / 'backtest.md'}")
        return
    (out / TITLE_FILE).write_text(json.dumps(title))
    score_and_report(runner, folds, datamodule.panel, base_len, horizon, options.cost_bps, title)


def score_and_report(
    runner: FoldRunner, folds: list[Fold], panel: Panel, base_len: int, horizon: int, cost_bps: float, title: dict
) -> None:
    """Score every fold's predictions file and each year's seed ensemble (written as
    ``predictions/{Y}_ensemble.csv`` when a year has two or more seeds); write and print the report."""
    out = runner.out
    scores = {
        (f.dates.year, f.seed): score_fold(panel, read_predictions(runner.predictions(f)), f.dates, base_len, horizon)
        for f in folds
    }
    ensembles = {}
    for year in sorted({f.dates.year for f in folds}):
        of_year = [f for f in folds if f.dates.year == year]
        if len(of_year) > 1:
            frame = ensemble_predictions([read_predictions(runner.predictions(f)) for f in of_year])
            write_predictions(out / "predictions" / f"{year}_{ENSEMBLE}.csv", frame)
            ensembles[year] = score_fold(panel, frame, of_year[0].dates, base_len, horizon)
    records = {(f.dates.year, f.seed): _record(runner, f) for f in folds}
    result = summary.summarise(scores, records, horizon, cost_bps, ensembles)
    long_short = {}
    for name, by_year in (("model", _by_year(scores)), (ENSEMBLE, {y: [s] for y, s in ensembles.items()})):
        if by_year and all(s.signal is not None for parts in by_year.values() for s in parts):
            long_short[name] = {
                year: net_return(combine([s.signal for s in parts], "mean"), cost_bps)  # type: ignore[misc]
                for year, parts in by_year.items()
            }
    report.write(out, result, title, long_short, horizon)
    print((out / "backtest.md").read_text())
    print(f"wrote {out / 'backtest.json'}, {out / 'backtest.md'}, {out / 'backtest.png'}")


def _by_year(scores: dict[tuple[int, int], FoldScore]) -> dict[int, list[FoldScore]]:
    years: dict[int, list[FoldScore]] = {}
    for (year, _), score in sorted(scores.items()):
        years.setdefault(year, []).append(score)
    return years


def score_only(out: Path, cost_bps: float) -> None:
    """Re-score a finished backtest folder from its predictions files and recorded settings, without training."""
    path = out / SETTINGS_FILE
    if not path.is_file():
        raise BacktestError(f"{out} holds no backtest ({SETTINGS_FILE} is missing); give the --out of a backtest")
    settings = json.loads(path.read_text())
    if settings.get("validation_only"):
        raise BacktestError(f"{out} is a validation-only backtest: it has no test predictions to score")
    names = sorted((out / "predictions").glob("*_seed*.csv"))
    parsed = [re.fullmatch(r"(\d{4})_seed(-?\d+)\.csv", p.name) for p in names]
    folds = [Fold(FoldDates(int(m[1])), int(m[2])) for m in parsed if m]
    if not folds:
        raise BacktestError(f"{out / 'predictions'} holds no finished fold ({{YEAR}}_seed{{SEED}}.csv) to score")
    seeds = {year: sorted(f.seed for f in folds if f.dates.year == year) for year in {f.dates.year for f in folds}}
    if len({tuple(s) for s in seeds.values()}) > 1:
        raise BacktestError(f"the years of {out} have different seeds ({seeds}); finish the backtest first")
    from forecast.data import StockDataModule

    data = {k: v for k, v in settings["fit"]["data"].items() if k not in ("train_end", "val_end", "test_end")}
    datamodule = StockDataModule(**data)
    datamodule.prepare_data()
    panel = datamodule.load_panel()
    title_path = out / TITLE_FILE
    title = (
        json.loads(title_path.read_text()) if title_path.is_file() else {"title": f"Backtest in {out}", "options": ""}
    )
    runner = FoldRunner(out, [])
    score_and_report(runner, folds, panel, datamodule.hparams.base_len, datamodule.hparams.horizon, cost_bps, title)
