"""One fold of a backtest (or of a search trial): a plain ``fit`` in the fold's own root and, for a test year, a
``predict`` of its best checkpoint over the year's test windows, through the run API (:mod:`forecast.run`).

A fold's root is ``OUT/runs/{fold}`` (a trial's ``OUT/trials/NNNN/runs/{fold}``); its run folder is
``ROOT/lightning_logs/version_0``, so a fit that was killed resumes from its ``last.ckpt`` (the shuffle depends only
on seed and epoch: it ends as the uninterrupted fit would have), and one that finished is not fitted again. The
task's output goes to ``ROOT/fold.log`` and the equivalent commands to ``ROOT/commands.sh`` (to rerun a fold by
hand); everything else the driver needs comes back in the :class:`FoldResult`, and the driver records it
(:class:`FoldStore`), so nodes need not share a filesystem.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import shutil
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from forecast import run
from forecast.atomic import write_atomic
from forecast.backtest.folds import FoldDates
from forecast.checkpoint import RUNS_FOLDER
from forecast.data.panel import LoadedPanel

SCORES = "best_val_"
"""Prefix of the fit summary's scores of the best epoch (relMAE, MAE, a quantile model's interval scores)."""


@dataclass(frozen=True)
class Fold:
    """One fit of a backtest: the split dates of a year, and a seed."""

    dates: FoldDates
    seed: int

    @property
    def name(self) -> str:
        """The fold's folder and file name: ``{year}_seed{seed}`` (``val`` before it for a validation fold)."""
        return f"{'val' if self.dates.validation_only else ''}{self.dates.year}_seed{self.seed}"


@dataclass(frozen=True)
class FoldTask:
    """A fold to run: ``root`` its folder, ``options`` the fit options (config and overrides) before the fold's own
    (its seed, split dates and root), ``predictions`` where the driver writes a test fold's forecasts."""

    fold: Fold
    root: Path
    options: tuple[str, ...]
    predictions: Path | None = None

    def fit_options(self) -> list[str]:
        """Every option of the fold's fit (and predict)."""
        return [
            *self.options, "--seed_everything", str(self.fold.seed), *self.fold.dates.arguments(),
            "--trainer.default_root_dir", str(self.root), "--trainer.enable_progress_bar", "false",
        ]  # fmt: skip

    @property
    def run_dir(self) -> Path:
        """The fold's run folder."""
        return self.root / RUNS_FOLDER / "version_0"


@dataclass(frozen=True)
class FoldResult:
    """A finished fold: its best epoch and ``scores`` (``best_val_rel_mae``, ... from the fit summary), its best
    checkpoint, the ``seconds`` this task spent, the ``commands`` it ran, the test year's ``predictions`` (None for a
    validation fold), and whether the task read the data itself."""

    fold: Fold
    best_epoch: int | None
    scores: dict[str, float]
    best_checkpoint: str
    seconds: float
    commands: list[str]
    predictions: pd.DataFrame | None = None
    data_read: bool = False


@contextlib.contextmanager
def _output_to(log: Path) -> Iterator[None]:
    """The block's stdout and stderr (prints, log lines, warnings) appended to ``log``."""
    with log.open("a") as stream, contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
        yield


def scores_of(summary: dict[str, Any]) -> dict[str, Any]:
    """A fit summary's best epoch and scores of that epoch (``best_val_rel_mae``, ...)."""
    return {"best_epoch": summary.get("best_epoch"), **{k: v for k, v in summary.items() if k.startswith(SCORES)}}


def _announce(task: FoldTask, name: str, options: list[str], commands: list[str]) -> None:
    """Record a command the fold runs now: in its log, its ``commands.sh`` (to rerun by hand) and its result."""
    commands.append(f"python -m forecast {name} {shlex.join(options)}")
    with (task.root / "commands.sh").open("a") as script:
        script.write(f"{commands[-1]}\n")
    print(f"$ {commands[-1]}", flush=True)


def run_fold(task: FoldTask, data: LoadedPanel | None = None) -> FoldResult:
    """Run what is left of a fold: its fit (resumed from ``last.ckpt``, or skipped when finished), then for a test
    year its forecasts. ``data``: the panel the driver read, used when the fold's data settings are the same."""
    started = time.monotonic()
    task.root.mkdir(parents=True, exist_ok=True)
    options = [*task.fit_options(), "--test_after_fit", "false"]
    last, summary_file = task.run_dir / "checkpoints" / "last.ckpt", task.run_dir / "fit_summary.json"
    if task.run_dir.is_dir() and not last.is_file() and not summary_file.is_file():
        shutil.rmtree(task.run_dir)  # an attempt stopped before its first checkpoint: start again in the same folder
    commands: list[str] = []
    read = False
    with _output_to(task.root / "fold.log"):
        try:
            if summary_file.is_file():  # its fit finished in an earlier attempt
                summary = json.loads(summary_file.read_text())
            else:
                fit_options = [*options, "--ckpt_path", str(last)] if last.is_file() else options
                _announce(task, "fit", fit_options, commands)
                fitted = run.fit(fit_options, data=data)
                summary, read = fitted.summary, fitted.data_read
            predictions = None
            if not task.fold.dates.validation_only:
                predict = [*task.fit_options(), "--ckpt_path", summary["best_checkpoint"], "--data.predict_set", "test"]
                _announce(task, "predict", [*predict, "--output", str(task.predictions)], commands)
                predicted = run.predict(predict, data=data)
                # text columns as categories: a large universe's year is millions of rows, sent back to the driver
                predictions = predicted.frame.astype({c: "category" for c in ("Name", "origin_date", "target_date")})
                read = read or predicted.data_read
        except Exception:
            traceback.print_exc()  # into the fold's log, beside what the run printed
            raise
    scores = scores_of(summary)
    return FoldResult(task.fold, scores.pop("best_epoch"), scores, summary.get("best_checkpoint", ""),
                      time.monotonic() - started, commands, predictions, read)  # fmt: skip


def _write_csv(frame: pd.DataFrame, path: Path, rows: int = 1_000_000) -> None:
    """``frame`` as the protocol's CSV, a slice of rows at a time (one slice's text in memory, not the year's)."""
    with path.open("w", newline="") as handle:
        for start in range(0, max(len(frame), 1), rows):
            frame.iloc[start : start + rows].to_csv(handle, index=False, float_format="%.6f", header=start == 0)


class FoldStore:
    """The driver's record of a backtest's folds under ``out``: each finished fold's ``OUT/runs/{fold}/fold.json``
    (scores, seconds over every attempt, commands) and a test fold's ``OUT/predictions/{fold}.csv``."""

    def __init__(self, out: Path) -> None:
        self.out = out

    def predictions(self, fold: Fold) -> Path:
        """The fold's predictions file."""
        return self.out / "predictions" / f"{fold.name}.csv"

    def _record_path(self, fold: Fold) -> Path:
        return self.out / "runs" / fold.name / "fold.json"

    def record(self, fold: Fold) -> dict[str, Any]:
        """The fold's record: ``seconds``, ``commands``, and once its fit finished ``best_epoch`` and the scores (of a
        fold recorded before records held them, or not recorded yet, from its run's fit summary when it is here)."""
        path = self._record_path(fold)
        record = json.loads(path.read_text()) if path.is_file() else {"seconds": 0.0, "commands": []}
        summary = FoldTask(fold, path.parent, ()).run_dir / "fit_summary.json"
        if "best_epoch" not in record and summary.is_file():
            record |= scores_of(json.loads(summary.read_text()))
        return record

    def finished(self, fold: Fold) -> bool:
        """Whether the fold is done: its fit finished (and a test fold's predictions file is written)."""
        return "best_epoch" in self.record(fold) and (fold.dates.validation_only or self.predictions(fold).is_file())

    def save(self, result: FoldResult) -> dict[str, Any]:
        """Record a finished fold (and write its predictions); returns its record."""
        fold = result.fold
        if result.predictions is not None:
            path = self.predictions(fold)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, lambda tmp: _write_csv(result.predictions, tmp))
        before = self.record(fold)
        record = {
            "seconds": before["seconds"] + result.seconds,
            "commands": before["commands"] + result.commands,
            "best_epoch": result.best_epoch,
            **result.scores,
        }
        path = self._record_path(fold)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, lambda tmp: tmp.write_text(json.dumps(record, indent=2)))
        return record
