"""A hyperparameter search as one call, :func:`run` (``forecast.tune.run``; ``python -m forecast tune`` is made of
it): check everything, open the study, run the trials, write the report.

Everything is checked before any training: the options, the search space (every categorical choice and both ends of
every range given to fit's parser and constructors once), the years (each needs training and validation windows),
the output folder, and the study (a study run with other settings is refused).
"""

from __future__ import annotations

import json
import shlex
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml

from forecast.atomic import write_atomic
from forecast.backtest.folds import FoldDates
from forecast.backtest.walk import Built, build_as_fit, data_options, refuse_owned
from forecast.data.errors import plural
from forecast.errors import option
from forecast.executors import Kind, check_main_process, make_executor, task_resources
from forecast.run import Config, options
from forecast.signals import Stopped, pause_here
from forecast.tune import report
from forecast.tune.checks import TUNE_OWNED, check_space, check_window_years
from forecast.tune.space import Dimension, option_argument, read_space
from forecast.tune.study import (
    HEARTBEAT_SECONDS,
    TuneError,
    default_storage,
    enqueue_base,
    enqueue_interrupted,
    load_study,
    open_storage,
    redact,
    seed_sampler,
)  # fmt: skip
from forecast.tune.trials import BASE_RUN, Search


@dataclass(frozen=True)
class TuneResult:
    """A search's outcome: its folder, ``tune.json``'s content as ``result`` (every trial, the best and the base),
    and the files it wrote (``best.yaml`` once a trial is complete)."""

    out: Path
    result: dict[str, Any]
    files: list[Path]


def run(
    config: Config = (),
    *,
    search: str | Path,
    years: Sequence[int],
    out: str | Path,
    trials: int = 30,
    storage: str | None = None,
    study_name: str = "forecast",
    jobs: int = 1,
    executor: Kind = "local",
    address: str | None = None,
    seed: int = 0,
    heartbeat: int = HEARTBEAT_SECONDS,
) -> TuneResult:
    """Search the settings of the YAML file ``search`` for the fit settings ``config``: ``trials`` more trials of the
    study in ``storage`` (default: ``OUT/study.db``), each scored by its mean best validation relMAE over ``years``
    (never a test year); ``jobs`` trials at a time on this machine, or on a Ray cluster (``executor="ray"``).
    Rerunning with the same ``out`` resumes the study. ``heartbeat``: seconds between this worker's signs of life in
    the storage; a trial of a worker silent for three times that is run again by the next worker to start one."""
    started = time.monotonic()
    check_main_process()
    fit_args, years = options(config), [int(y) for y in years]
    refuse_owned(fit_args, TUNE_OWNED)
    if len(years) < 2 or len(set(years)) != len(years):
        raise TuneError(
            f"{option('years')} needs two or more distinct validation years, got {years}: a setting that wins on one "
            "year and not the next is noise"
        )
    if trials < 0 or jobs < 1 or heartbeat < 1:
        raise TuneError(
            f"{option('trials')} must be >= 0, {option('jobs')} and {option('heartbeat')} >= 1, got {trials}, {jobs} "
            f"and {heartbeat}"
        )
    out = Path(out).absolute()
    dimensions = read_space(search)
    first = FoldDates(years[0], validation_only=True)
    built = build_as_fit(fit_args, first)
    datamodule, settings = built.datamodule, built.settings
    check_space(dimensions, fit_args, first, built.parser)
    check_window_years(datamodule, dimensions, years)
    base = built.config(fit_args)
    # every fit of every trial has one seed: the config's (an int), else 0 (seed_everything: true would draw one)
    fit_seed = base.get("seed_everything")
    fit_seed = fit_seed if isinstance(fit_seed, int) and not isinstance(fit_seed, bool) else 0
    defining = {  # what makes two runs the same search; the data's path differs between machines
        "fit": {**settings, "data": {k: v for k, v in settings["data"].items() if k != "path"}},
        "space": yaml.safe_load(Path(search).read_text()),
        "years": years,
        "fit_seed": fit_seed,
    }
    url = storage or default_storage(out)
    study, store = open_study(
        out, (url, heartbeat), trials, study_name, seed, defining, lambda new: enqueue_base(new, dimensions, settings)
    )
    waiting = sum(t.state.name == "WAITING" for t in study.get_trials(deepcopy=False))
    resources = task_resources(jobs, settings)
    print(
        f"tune: study {study_name!r} in {redact(url)}, {plural(len(study.trials) - waiting, 'trial')} run"
        f"{f', {waiting} queued to run first' if waiting else ''}; {trials} more, {jobs} at a time, every fit "
        f"seeded {fit_seed}; fold logs in {out / 'trials'}/<trial>/runs/<fold>/fold.log",
        flush=True,
    )
    fold_options = (*fit_args, *data_options(settings), "--torch_threads", str(resources.threads))
    searcher = Search(study, dimensions, years, out, fold_options, fit_seed, store)
    if trials:
        try:
            searcher.run(
                trials,
                jobs,
                make_executor(executor, jobs, datamodule.loaded(), resources, address),
                lambda told: print(report.progress_line(study, told, time.monotonic() - started), flush=True),
            )
        except (KeyboardInterrupt, Stopped):
            enqueue_interrupted(study)
            raise
    command = ["python", "-m", "forecast", "tune", *fit_args, "--search", str(search), "--years", *map(str, years),
               "--out", str(out), "--study_name", study_name, "--seed", str(seed),
               *(["--storage", redact(storage)] if storage else [])]  # fmt: skip
    title = f"Tune of {Path(search).name} on validation years {', '.join(map(str, years))}"
    return write_report(out, study, dimensions, years, (title, shlex.join(command)), fit_args, built, started)


def open_study(
    out: Path, storage: tuple[str, int], trials: int, name: str, seed: int, defining: dict[str, Any], on_create: Any
) -> tuple[Any, Any]:
    """Create ``out``, open the storage and the study (created with ``defining`` and ``on_create`` if new), seed the
    sampler when trials will run: ``(study, storage)``; ``storage`` is the URL and the heartbeat seconds. On a
    refusal, a folder this call created is removed again."""
    url, heartbeat = storage

    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TuneError(f"cannot create {option('out')} {out}: {exc.strerror or exc}; choose another folder") from exc
    try:
        opened = open_storage(url, heartbeat)
        if not trials and name not in optuna.get_all_study_names(storage=opened):
            raise TuneError(
                f"{option('trials')} 0 rewrites the report of a study, and {redact(url)} holds no study {name!r}; "
                f"give {option('trials')} N to start one"
            )
        study = load_study(opened, name, defining, on_create)
        if trials:
            seed_sampler(study, seed)
    except TuneError:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    return study, opened


def write_report(
    out: Path, study: Any, dimensions: list[Dimension], years: list[int], heading: tuple[str, str],
    fit_args: list[str], built: Built, started: float,
) -> TuneResult:  # fmt: skip
    """``tune.md``, ``tune.json``, ``tune.png`` and (once a trial is complete) ``best.yaml``; print where they are.
    ``heading``: the report's title and the command that ran the search."""
    title, command = heading
    pause_here("writing")
    rows = report.trial_rows(study, dimensions, years)
    states = {s: sum(r["state"] == s for r in rows) for s in ("complete", "pruned", "fail", "running", "waiting")}
    savings = report.pruning_savings(rows, years)
    facts = {
        "validation years": ", ".join(map(str, years)),
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
        "title": title,
        "command": command,
        "facts": facts,
        "dimensions": [d.name for d in dimensions],
        "importances": report.importances(study),
    }
    complete = [r for r in rows if r["state"] == "complete"]
    base_row = next((r for r in complete if r["base_config"]), None)
    beside = study.user_attrs.get(BASE_RUN) or {}
    if base_row:
        summary["base"] = {k: base_row[k] for k in ("number", "objective", "years", "settings")}
    elif "objective" in beside:  # run beside the study: its settings lie outside the space
        summary["base"] = {"number": None, **{k: beside[k] for k in ("objective", "years", "settings")}}
    files = [out / "tune.md", out / "tune.json", out / "tune.png"]
    if complete:
        best = complete[0]
        summary["best"] = {k: best[k] for k in ("number", "objective", "years", "settings")}
        header = (
            f"forecast tune: trial {best['number']} of study {study.study_name!r}, mean validation relMAE "
            f"{best['objective']:.4f} on {', '.join(map(str, years))}\n{command}"
        )
        best_args = [option_argument(name, value) for name, value in best["settings"].items()]
        report.write_best(out / "best.yaml", built.config([*fit_args, *best_args]), header)
        files.insert(0, out / "best.yaml")
    report.write_markdown(out / "tune.md", summary, rows, years)
    write_atomic(out / "tune.json", lambda tmp: tmp.write_text(json.dumps({**summary, "trials": rows}, indent=2)))
    report.write_figure(out / "tune.png", rows, summary["importances"])
    print((out / "tune.md").read_text().split("\n| trial")[0].rstrip())
    if not complete:
        raise TuneError(f"no trial of the study has completed; see {out / 'tune.md'} for each trial's reason")
    print(f"wrote {', '.join(map(str, files))}")
    return TuneResult(out, {**summary, "trials": rows}, files)
