"""A walk-forward backtest as one call, :func:`run` (``forecast.backtest.run``; ``python -m forecast backtest`` is
made of it): check everything, run the unfinished folds on an executor, score them and write the report.

Everything is checked before any training starts: the options (the model, data and trainer built once, as ``fit``
would build them), the data (read once here, then handed to every fold; every year must have training, validation
and test windows), and the output folder (writable, and not holding folds of a backtest with other settings).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import shlex
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from forecast.backtest import report, summary
from forecast.backtest.evaluate import SETTINGS_FILE, TITLE_FILE, score_and_report
from forecast.backtest.folds import BacktestError, FoldDates, check_years
from forecast.backtest.task import Fold, FoldResult, FoldStore, FoldTask, run_fold
from forecast.cli import ForecastCLI
from forecast.data.errors import plural
from forecast.errors import UserError, first_line, option
from forecast.executors import Executor, Kind, check_main_process, make_executor, task_resources
from forecast.run import Config, options

OWNED = {
    "seed_everything": "seeds",
    "data.train_end": "years",
    "data.val_end": "years",
    "data.test_end": "years",
    "data.predict_set": "the backtest",
    "trainer.default_root_dir": "out",
    "ckpt_path": "the backtest (each fold trains afresh)",
    "test_after_fit": "the backtest",
    "output": "out",
}
"""Fit options the backtest sets for every fold, and what controls each instead (an option, or the backtest)."""

FOLD_KEYS = ("seed_everything", "data.train_end", "data.val_end", "data.test_end", "trainer.default_root_dir")


class FoldError(UserError):
    """A fold failed on a problem the user can fix (its message names the fold and its log)."""


@dataclass(frozen=True)
class BacktestResult:
    """A finished backtest: its folder, ``backtest.json``'s content as ``result``, the files it wrote, and how often
    this call read the data from its source (once here, plus each fold that could not use that read)."""

    out: Path
    result: dict[str, Any]
    files: list[Path]
    data_reads: int


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


def owned_option(fit_args: list[str], owned: dict[str, str]) -> str | None:
    """The first fit option in ``fit_args`` (``--key value`` or ``--key=value``) that is a key of ``owned``."""
    keys = (arg[2:].split("=", 1)[0] for arg in fit_args if arg.startswith("--"))
    return next((key for key in keys if key in owned), None)


def refuse_owned(fit_args: list[str], owned: dict[str, str]) -> None:
    """One line for a fit option the backtest (or search) sets itself."""
    key = owned_option(fit_args, owned)
    if key:
        by = owned[key]
        raise BacktestError(
            f"{option(key)} is set for each fold by {option(by) if ' ' not in by else by}; drop it from the options"
        )


@dataclass(frozen=True)
class Built:
    """Fit's settings built as ``fit`` builds them, without training: the DataModule (its panel read), the resolved
    ``settings`` that define a backtest (without the per-fold ones), and fit's ``parser``."""

    datamodule: Any
    settings: dict[str, Any]
    parser: Any

    def config(self, fit_args: list[str]) -> dict[str, Any]:
        """The whole resolved config of a fit with ``fit_args`` (a config file fit takes as it is), with the data
        source as resolved here."""
        config = yaml.safe_load(self.parser.dump(self.parser.parse_args(fit_args), skip_check=True))
        config["data"]["source"], config["data"]["path"] = (
            self.settings["data"]["source"],
            self.settings["data"]["path"],
        )
        return config


def build_as_fit(fit_args: list[str], fold: FoldDates) -> Built:
    """Build model, data and trainer from the fit options as ``fit`` would, without training; read the data."""
    with quiet_lightning():
        try:
            cli = ForecastCLI(args=[*fit_args, *fold.arguments()], run=False)
        except argparse.ArgumentError as exc:  # the fit options are fit's: point at fit's help
            message = " ".join(str(exc).split())
            raise BacktestError(f"{message} (fit options: python -m forecast fit --help)") from exc
    datamodule = cli.datamodule
    datamodule.prepare_data()
    datamodule.load_panel()  # resolves the source and records the absolute path in the hparams
    settings = yaml.safe_load(cli.parser.dump(cli.config, skip_check=True))
    for key in FOLD_KEYS:
        section, _, name = key.rpartition(".")
        (settings.get(section, {}) if section else settings).pop(name, None)
    settings["data"]["source"] = datamodule.hparams.source
    settings["data"]["path"] = datamodule.hparams.path
    return Built(datamodule, settings, cli.parser)


def data_options(settings: dict[str, Any]) -> list[str]:
    """The resolved data source as fit options: every fold reads (or is handed) the very data checked here."""
    data = settings["data"]
    return ["--data.source", data["source"], *(["--data.path", data["path"]] if data.get("path") else [])]


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flatten(item, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): value}


def setting_changes(theirs: dict[str, Any], ours: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """Every dotted setting whose value differs between two nested dicts (of JSON values): ``(key, theirs,
    ours)``, sorted by key; a setting missing on one side reads as None there."""
    a, b = _flatten(json.loads(json.dumps(theirs))), _flatten(json.loads(json.dumps(ours)))
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def claim_output(out: Path, settings: dict[str, Any]) -> None:
    """Make ``out`` (writable), and refuse one that holds folds of a backtest with other settings."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise BacktestError(
            f"cannot write to {option('out')} {out}: {exc.strerror or exc}; choose another folder"
        ) from exc
    path = out / SETTINGS_FILE
    if path.is_file():
        changed = setting_changes(json.loads(path.read_text()), settings)
        if changed:
            key, theirs, ours = changed[0]
            raise BacktestError(
                f"{out} holds a backtest with other settings ({key.removeprefix('fit.')}: {theirs!r} there, "
                f"{ours!r} now{f', and {len(changed) - 1} more' if len(changed) > 1 else ''}); use another "
                f"{option('out')}, or delete it to start again"
            )
    else:
        path.write_text(json.dumps(settings, indent=2))


def run_folds(store: FoldStore, tasks: list[FoldTask], start: Callable[[], Executor]) -> list[FoldResult]:
    """Run the unfinished folds on the executor ``start()`` gives (called only when a fold is left) and record each
    as it finishes. The first failure stops the folds not started, lets those running finish, and is raised; Ctrl-C
    ends those running too. Returns the results of the folds run now."""
    todo = [t for t in tasks if not store.finished(t.fold)]
    print(
        f"backtest: {plural(len(tasks), 'fold')}, {len(tasks) - len(todo)} finished earlier; logs in "
        f"{store.out / 'runs'}/<fold>/fold.log",
        flush=True,
    )
    if not todo:
        return []
    executor, results, failure = start(), [], None
    try:
        futures = {executor.submit(run_fold, task): task for task in todo}
        for future in as_completed(futures):
            task = futures[future]
            if future.cancelled():
                continue
            try:
                result = future.result()
            except Exception as exc:  # the folds not started are dropped; those running finish and are kept
                failure = failure or (task, exc)
                for other in futures:
                    other.cancel()
                continue
            record = store.save(result)
            results.append(result)
            print(
                f"fold {task.fold.name}: best epoch {record['best_epoch']}, val relMAE "
                f"{record['best_val_rel_mae']:.4f}, {result.seconds:.0f} s",
                flush=True,
            )
    except BaseException:
        executor.shutdown(cancel=True)
        raise
    executor.shutdown()
    if failure:
        task, exc = failure
        log = task.root / "fold.log" if (task.root / "fold.log").is_file() else "none: the task never started"
        if isinstance(exc, UserError):
            raise FoldError(f"fold {task.fold.name} failed: {first_line(exc)} (log: {log})") from exc
        exc.add_note(f"in fold {task.fold.name} (log: {log})")
        raise exc
    return results


def run(
    config: Config = (),
    *,
    years: Sequence[int],
    out: str | Path,
    seeds: Sequence[int] = (0,),
    jobs: int = 1,
    executor: Kind = "local",
    address: str | None = None,
    validation_only: bool = False,
    cost_bps: float = 5.0,
) -> BacktestResult:
    """A walk-forward backtest of the fit settings ``config`` (as :func:`forecast.run.fit` takes them): one fit per
    test year and seed, each year's forecasts against the year's best simple baseline; or with ``validation_only``
    the validation scores of each year (for choosing settings). ``jobs`` folds at a time on this machine, or on a Ray
    cluster with ``executor="ray"`` (at ``address``). Rerunning with the same ``out`` resumes."""
    check_main_process()
    fit_args = options(config)
    refuse_owned(fit_args, OWNED)
    years, seeds = [int(y) for y in years], [int(s) for s in seeds]
    if not years or len(set(years)) != len(years) or len(set(seeds)) != len(seeds) or not seeds:
        raise BacktestError(f"years {years} and seeds {seeds} must be given and must not repeat a value")
    if jobs < 1:
        raise BacktestError(f"{option('jobs')} must be 1 or more, got {jobs}")
    if validation_only and len(years) < 2:
        raise BacktestError(
            f"{option('validation_only')} needs two or more years: a setting that wins on one validation year and "
            "not the next is noise"
        )
    out = Path(out).absolute()
    dates = [FoldDates(year, validation_only) for year in years]
    built = build_as_fit(fit_args, dates[0])
    datamodule, settings = built.datamodule, built.settings
    base_len, horizon = datamodule.hparams.base_len, datamodule.hparams.horizon
    check_years(datamodule.panel, base_len, horizon, years, validation_only)
    claim_output(out, {"validation_only": validation_only, "fit": settings})
    resources = task_resources(jobs, settings)
    fold_options = (*fit_args, *data_options(settings), "--torch_threads", str(resources.threads))
    store = FoldStore(out)
    folds = [Fold(d, seed) for d in dates for seed in seeds]
    tasks = [FoldTask(f, out / "runs" / f.name, fold_options, store.predictions(f)) for f in folds]
    ran = run_folds(store, tasks, lambda: make_executor(executor, jobs, datamodule.loaded(), resources, address))
    reads = 1 + sum(result.data_read for result in ran)
    config_file = next((fit_args[i + 1] for i, a in enumerate(fit_args[:-1]) if a in ("--config", "-c")), None)
    title = {
        "title": f"Backtest of {Path(config_file).name if config_file else 'the default settings'}, seeds {seeds}",
        "options": shlex.join(fit_args),
    }
    if validation_only:
        result = summary.validation_summary({(f.dates.year, f.seed): store.record(f) for f in folds})
        report.write_validation(out, result, title)
        print((out / "backtest.md").read_text())
        print(f"wrote {out / 'backtest.json'}, {out / 'backtest.md'}")
        return BacktestResult(out, result, [out / "backtest.json", out / "backtest.md"], reads)
    (out / TITLE_FILE).write_text(json.dumps(title))
    score_and_report(store, folds, datamodule.panel, base_len, horizon, cost_bps, title)
    files = [out / name for name in ("backtest.json", "backtest.md", "backtest.png")]
    return BacktestResult(out, json.loads(files[0].read_text()), files, reads)
