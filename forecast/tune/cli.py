"""``python -m forecast tune``: the options of :func:`forecast.tune.run`, which it calls.

    python -m forecast tune --config configs/djia.yaml --search configs/search/djia.yaml \
        --years 2010 2011 2012 --trials 30 --out runs/tune [--storage URL] [--jobs 2] [--executor ray] [fit options]
"""

from __future__ import annotations

import argparse

from forecast.backtest.cli import add_executor_options
from forecast.parsers import CommandParser
from forecast.tune.search import run
from forecast.tune.study import HEARTBEAT_SECONDS, TuneError


def build_parser() -> argparse.ArgumentParser:
    """The tune's own options (everything else is a fit option, given to every trial's folds)."""
    parser = CommandParser(
        prog="python -m forecast tune",
        description="Hyperparameter search with Optuna (TPE, median pruning after each year): each trial fits the "
        "search space's settings once per validation year and scores the mean best validation relMAE. Options "
        "not listed here are fit options (--config, --model.*, --data.*, --trainer.*), given to every trial.",
        epilog="Writes OUT/best.yaml, tune.md, tune.json, tune.png and study.db (docs/tuning.md). "
        "--debug (or FORECAST_DEBUG=1) shows the traceback of an error.",
    )
    parser.add_argument("--search", required=True, help="search-space YAML: option name -> {float|int|categorical}")
    parser.add_argument("--years", type=int, nargs="+", required=True, help="validation years (two or more)")
    parser.add_argument("--trials", type=int, default=30, help="trials this command adds to the study (default 30)")
    parser.add_argument("--out", required=True, help="folder for the trials' runs, study.db and the report")
    parser.add_argument("--storage", help="Optuna storage URL shared by workers (default: sqlite:///OUT/study.db)")
    parser.add_argument("--study_name", default="forecast", help="the study's name in the storage (default forecast)")
    add_executor_options(parser, "trials")
    parser.add_argument("--seed", type=int, default=0, help="seed of the TPE sampler, one per worker (default 0)")
    parser.add_argument(
        "--heartbeat",
        type=int,
        default=HEARTBEAT_SECONDS,
        help="seconds between this worker's signs of life in the storage; a trial of a worker silent for 3 times "
        f"that is run again by the next worker to start one (default {HEARTBEAT_SECONDS})",
    )
    return parser


def main(argv: list[str]) -> None:
    """``python -m forecast tune ARGV``."""
    try:
        options, fit_args = build_parser().parse_known_args(argv)
    except argparse.ArgumentError as exc:
        raise TuneError(str(exc)) from exc
    run(
        fit_args,
        search=options.search,
        years=options.years,
        out=options.out,
        trials=options.trials,
        storage=options.storage,
        study_name=options.study_name,
        jobs=options.jobs,
        executor=options.executor,
        address=options.address,
        seed=options.seed,
        heartbeat=options.heartbeat,
    )
