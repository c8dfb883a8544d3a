"""``python -m forecast backtest``: the options of :func:`forecast.backtest.run`, which it calls.

    python -m forecast backtest --config configs/djia.yaml --years 2013 2014 2015 2016 2017 --seeds 0 1 2 \
        --out runs/backtest [--jobs 2] [--executor ray [--address auto]] [--cost_bps 5] [any fit option]
    python -m forecast backtest --score_only --out runs/backtest [--cost_bps 5]    # re-score, no training
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from forecast.backtest.evaluate import score_only
from forecast.backtest.folds import BacktestError
from forecast.backtest.walk import run
from forecast.parsers import CommandParser


def add_executor_options(parser: argparse.ArgumentParser, what: str) -> None:
    """``--jobs``, ``--executor``, ``--address``: where the folds or trials run."""
    parser.add_argument("--jobs", type=int, default=1, help=f"{what} run at a time on this machine (default 1)")
    parser.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help=f"local: {what} in worker processes here; ray: as Ray tasks on a cluster (pip install 'forecast[ray]'; "
        "docs/scale.md). The torch threads of each are the config's torch_threads, else torch's own count here / jobs",
    )
    parser.add_argument("--address", help="the Ray cluster: auto or HOST:PORT (default: Ray's own default)")


def build_parser() -> argparse.ArgumentParser:
    """The backtest's own options (everything else is a fit option, given to every fold)."""
    parser = CommandParser(
        prog="python -m forecast backtest",
        description="Walk-forward backtest: one fit per test year and seed, scored on that year, with a "
        "Diebold–Mariano test against the year's best simple baseline, and the forecasts' cross-sectional signal. "
        "Options not listed here are fit options (--config, --model.*, --data.*, --trainer.*), given to every fold.",
        epilog="--debug (or FORECAST_DEBUG=1) shows the traceback of an error.",
    )
    parser.add_argument("--years", type=int, nargs="+", help="test years (validation years with --validation_only)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds of each year's fits (default: 0)")
    parser.add_argument("--out", required=True, help="folder for runs, predictions and the report")
    add_executor_options(parser, "folds")
    parser.add_argument(
        "--validation_only",
        action="store_true",
        help="for choosing settings: fit each year's fold with YEAR as the validation year and report validation "
        "relMAE only (no test year is looked at); needs two or more years",
    )
    parser.add_argument(
        "--cost_bps", type=float, default=5.0, help="trading cost of the long-short spread, bp a side (default: 5)"
    )
    parser.add_argument(
        "--score_only",
        action="store_true",
        help="re-score the finished folds in --out (their predictions files and the settings recorded there) "
        "without training; takes no other options but --cost_bps",
    )
    return parser


def main(argv: list[str]) -> None:
    """``python -m forecast backtest ARGV``."""
    options, fit_args = build_parser().parse_known_args(argv)
    if options.cost_bps < 0 or not math.isfinite(options.cost_bps):
        raise BacktestError(f"--cost_bps must be a finite number >= 0, got {options.cost_bps}")
    if options.score_only:
        if fit_args or options.years or options.validation_only:
            given = " ".join(fit_args) or "--years/--validation_only"
            raise BacktestError(f"--score_only re-scores the folds in --out as they were run; drop {given}")
        score_only(Path(options.out).absolute(), options.cost_bps)
        return
    if not options.years:
        raise BacktestError("the following arguments are required: --years")
    run(
        fit_args,
        years=options.years,
        out=options.out,
        seeds=options.seeds,
        jobs=options.jobs,
        executor=options.executor,
        address=options.address,
        validation_only=options.validation_only,
        cost_bps=options.cost_bps,
    )
