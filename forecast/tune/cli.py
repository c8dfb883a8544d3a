"""``python -m forecast tune``: search fit settings with Optuna, each trial scored on validation years only.

    python -m forecast tune --config configs/djia.yaml --search configs/search/djia.yaml \
        --years 2010 2011 2012 --trials 30 --out runs/tune [--storage URL] [--jobs 2] [--seed 0] [fit options]

Everything is checked before any training: the options, the search space (every categorical choice and both ends
of every range are given to the fit's parser and constructors once), the years (each needs training and
validation windows), the output folder, and the study (a study run with other settings is refused).
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import yaml

from forecast.backtest.cli import (
    CommandParser,
    build_as_fit,
    owned_option,
    quiet_lightning,
    threads_per_job,
)
from forecast.backtest.folds import BacktestError, FoldDates
from forecast.data.errors import plural
from forecast.tune import report
from forecast.tune.checks import TUNE_OWNED, check_space, check_window_years
from forecast.tune.objective import Objective, TrialFailedError
from forecast.tune.space import Dimension, SearchSpaceError, option_argument, read_space
from forecast.tune.study import (
    TuneError,
    default_storage,
    enqueue_base,
    enqueue_interrupted,
    load_study,
    open_storage,
    redact,
    seed_sampler,
)


def build_parser() -> argparse.ArgumentParser:
    """The tune's own options (everything else is a fit option, given to every trial's folds)."""
    parser = CommandParser(
        prog="python -m forecast tune",
        description="Hyperparameter search with Optuna (TPE, median pruning after each year): each trial fits the "
        "search space's settings once per validation year and scores the mean best validation relMAE. Options "
        "not listed here are fit options (--config, --model.*, --data.*, --trainer.*), given to every trial.",
        allow_abbrev=False,
        epilog="Writes OUT/best.yaml, tune.md, tune.json, tune.png and study.db (docs/tuning.md). "
        "--debug (or FORECAST_DEBUG=1) shows the traceback of an error.",
    )
    parser.add_argument("--search", required=True, help="search-space YAML: option name -> {float|int|categorical}")
    parser.add_argument("--years", type=int, nargs="+", required=True, help="validation years (two or more)")
    parser.add_argument("--trials", type=int, default=30, help="trials this command adds to the study (default 30)")
    parser.add_argument("--out", required=True, help="folder for the trials' runs, study.db and the report")
    parser.add_argument("--storage", help="Optuna storage URL shared by workers (default: sqlite:///OUT/study.db)")
    parser.add_argument("--study_name", default="forecast", help="the study's name in the storage (default forecast)")
    parser.add_argument(
        "--jobs", type=int, default=1, help="trials run at a time, their fits in their own processes (default 1)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the TPE sampler, one per worker (default 0)")
    return parser


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """The tune's options and the fit options, or one :class:`TuneError` line."""
    try:
        options, fit_args = build_parser().parse_known_args(argv)
    except argparse.ArgumentError as exc:
        raise TuneError(str(exc)) from exc
    key = owned_option(fit_args, TUNE_OWNED)
    if key:
        raise TuneError(f"--{key} is set for each fold by the tune; drop it from the options")
    if len(options.years) < 2 or len(set(options.years)) != len(options.years):
        raise TuneError(
            f"--years needs two or more distinct validation years, got {options.years}: a setting that wins on one "
            "year and not the next is noise"
        )
    if options.trials < 0 or options.jobs < 1:
        raise TuneError(f"--trials must be >= 0 and --jobs >= 1, got {options.trials} and {options.jobs}")
    return options, fit_args


def base_config(fit_args: list[str], settings: dict[str, Any]) -> dict[str, Any]:
    """The fit settings of ``fit_args``, resolved by fit's own parser, with the data source as the tune resolved it:
    ``best.yaml`` is this for the user's options followed by the best trial's."""
    from forecast.cli import ForecastCLI

    with quiet_lightning():
        cli = ForecastCLI(args=fit_args, run=False)
    config = yaml.safe_load(cli.parser.dump(cli.config, skip_check=True))
    config["data"]["source"], config["data"]["path"] = settings["data"]["source"], settings["data"]["path"]
    return config


def tune(argv: list[str]) -> None:
    """``python -m forecast tune ARGV``: check everything, run the trials, write the report."""
    started = time.monotonic()
    options, fit_args = parse(argv)
    out = Path(options.out).absolute()
    try:
        dimensions = read_space(options.search)
    except SearchSpaceError as exc:
        raise TuneError(str(exc)) from exc
    first = FoldDates(options.years[0], validation_only=True)
    try:
        datamodule, settings = build_as_fit(fit_args, first)
    except BacktestError as exc:
        raise TuneError(str(exc)) from exc
    check_space(dimensions, fit_args, first)
    check_window_years(datamodule, dimensions, options.years)
    base = base_config(fit_args, settings)
    # every fit of every trial has one seed: the config's (an int), else 0 (seed_everything: true would draw one)
    seed = base.get("seed_everything")
    seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else 0
    defining = {  # what makes two runs the same search; the data's path differs between machines
        "fit": {**settings, "data": {k: v for k, v in settings["data"].items() if k != "path"}},
        "space": yaml.safe_load(Path(options.search).read_text()),
        "years": options.years,
        "fit_seed": seed,
    }
    url = options.storage or default_storage(out)
    study = open_study(out, url, options, defining, lambda new: enqueue_base(new, dimensions, settings))
    from optuna.trial import TrialState

    waiting = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
    extra = threads_per_job(options.jobs, settings)  # N trials sharing the cores
    objective = Objective(out, fit_args, extra, dimensions, options.years, seed)
    print(
        f"tune: study {options.study_name!r} in {redact(url)}, {plural(len(study.trials) - waiting, 'trial')} run"
        f"{f', {waiting} queued to run first' if waiting else ''}; "
        f"{options.trials} more, {options.jobs} at a time, every fit seeded {seed}; fold logs in "
        f"{out / 'trials'}/<trial>/runs/<fold>/fold.log",
        flush=True,
    )
    try:
        run_trials(study, objective, options.trials, options.jobs, started)
    except KeyboardInterrupt:
        enqueue_interrupted(study)
        raise
    write_report(out, study, dimensions, options, fit_args, settings, started)


def open_study(out: Path, url: str, options: argparse.Namespace, defining: dict[str, Any], on_create: Any) -> Any:
    """Create ``out``, open the storage and the study (created with ``defining`` and ``on_create`` if new), seed
    the sampler when trials will run; on a refusal, a folder this call created is removed again."""
    import optuna

    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TuneError(f"cannot create --out {out}: {exc.strerror or exc}; choose another folder") from exc
    try:
        storage = open_storage(url)
        if not options.trials and options.study_name not in optuna.get_all_study_names(storage=storage):
            raise TuneError(
                f"--trials 0 rewrites the report of a study, and {redact(url)} holds no study "
                f"{options.study_name!r}; give --trials N to start one"
            )
        study = load_study(storage, options.study_name, defining, on_create)
        if options.trials:
            seed_sampler(study, options.seed)
    except TuneError:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    return study


def run_trials(study: Any, objective: Objective, trials: int, jobs: int, started: float) -> None:
    """``trials`` trials, ``jobs`` at a time (threads; each trial's fits are processes), one line per finished trial."""

    def finished(study: Any, trial: Any) -> None:
        print(report.progress_line(study, trial, time.monotonic() - started), flush=True)
        if objective.stopping.is_set():
            study.stop()

    shares = [trials // jobs + (1 if i < trials % jobs else 0) for i in range(jobs)]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        pending = {
            pool.submit(study.optimize, objective, n_trials=n, catch=(TrialFailedError,), callbacks=[finished])
            for n in shares
            if n
        }
        try:
            while pending:
                done, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
                for future in done:
                    future.result()
        except BaseException:  # Ctrl-C, or a worker's unexpected error: before the pool waits for its threads,
            objective.stop()  # no new trial may start and the fits under way end
            raise


def write_report(
    out: Path, study: Any, dimensions: list[Dimension], options: argparse.Namespace, fit_args: list[str],
    settings: dict[str, Any], started: float,
) -> None:  # fmt: skip
    """``tune.md``, ``tune.json``, ``tune.png`` and (once a trial is complete) ``best.yaml``; print where they are."""
    import json

    from forecast.atomic import write_atomic

    rows = report.trial_rows(study, dimensions, options.years)
    states = {s: sum(r["state"] == s for r in rows) for s in ("complete", "pruned", "fail", "running", "waiting")}
    savings = report.pruning_savings(rows, options.years)
    storage = ["--storage", redact(options.storage)] if options.storage else []
    command = shlex.join(["python", "-m", "forecast", "tune", *fit_args, "--search", options.search, "--years",
                          *map(str, options.years), "--out", options.out, "--study_name", options.study_name,
                          "--seed", str(options.seed), *storage])  # fmt: skip
    facts = {
        "validation years": ", ".join(map(str, options.years)),
        "trials": ", ".join(f"{n} {s}" for s, n in states.items() if n),
        "this command's wall time": f"{time.monotonic() - started:.0f} s",
        "fold seconds over all trials": f"{savings['spent_seconds']:.0f}" if savings else "n/a",
    }
    if savings:
        facts["pruning saved"] = (
            f"{savings['saved_seconds']:.0f} s of fold time ({100 * savings['saved_fraction']:.0f} % of what the "
            "trials would have cost unpruned, each skipped year costed at the mean fold time of complete trials)"
        )
    summary: dict[str, Any] = {
        "title": f"Tune of {Path(options.search).name} on validation years {', '.join(map(str, options.years))}",
        "command": command,
        "facts": facts,
        "dimensions": [d.name for d in dimensions],
        "importances": report.importances(study),
    }
    complete = [r for r in rows if r["state"] == "complete"]
    base_row = next((r for r in complete if r["base_config"]), None)
    if base_row:
        summary["base"] = {k: base_row[k] for k in ("number", "objective", "years")}
    if complete:
        best = complete[0]
        summary["best"] = {k: best[k] for k in ("number", "objective", "years", "settings")}
        header = (
            f"forecast tune: trial {best['number']} of study {options.study_name!r}, mean validation relMAE "
            f"{best['objective']:.4f} on {', '.join(map(str, options.years))}\n{command}"
        )
        best_args = [option_argument(name, value) for name, value in best["settings"].items()]
        report.write_best(out / "best.yaml", base_config([*fit_args, *best_args], settings), header)
    report.write_markdown(out / "tune.md", summary, rows, options.years)
    write_atomic(out / "tune.json", lambda tmp: tmp.write_text(json.dumps({**summary, "trials": rows}, indent=2)))
    report.write_figure(out / "tune.png", rows, summary["importances"])
    print((out / "tune.md").read_text().split("\n| trial")[0].rstrip())
    if not complete:
        raise TuneError(f"no trial of the study has completed; see {out / 'tune.md'} for each trial's reason")
    print(f"wrote {out / 'best.yaml'}, {out / 'tune.md'}, {out / 'tune.json'}, {out / 'tune.png'}")
