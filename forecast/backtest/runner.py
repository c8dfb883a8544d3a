"""Run one fold × seed as plain ``python -m forecast`` commands, resumably.

A fold is a normal ``fit`` in its own root (``DIR/runs/{year}_seed{seed}``) followed, for a test year, by a
``predict`` of its best checkpoint over the year's test windows into ``DIR/predictions/{year}_seed{seed}.csv``
(written atomically: the file exists only when the fold is finished). The exact commands are saved beside the
run (``commands.sh``), so any fold can be rerun by hand.

Resuming: a finished fold (its predictions file, or for a validation-only fold its ``fit_summary.json``) is not
run again; a fit that was killed resumes from its ``last.ckpt`` (the shuffle depends only on seed and epoch, so
it continues as the uninterrupted fit would have); a fit that finished but whose predict did not, predicts.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forecast.backtest.folds import FoldDates
from forecast.checkpoint import RUNS_FOLDER


class FoldFailedError(RuntimeError):
    """A fold's fit or predict command failed; ``returncode`` is the command's exit status."""

    def __init__(self, message: str, returncode: int) -> None:
        super().__init__(message)
        self.returncode = returncode


@dataclass(frozen=True)
class Fold:
    """One fit of a backtest: the split dates of a year, and a seed."""

    dates: FoldDates
    seed: int

    @property
    def name(self) -> str:
        """The fold's folder and file name: ``{year}_seed{seed}`` (``val`` before it for a validation fold)."""
        prefix = "val" if self.dates.validation_only else ""
        return f"{prefix}{self.dates.year}_seed{self.seed}"


class FoldRunner:
    """Runs folds under ``out`` with the user's fit options ``fit_args`` (config and overrides)."""

    def __init__(self, out: Path, fit_args: list[str], extra_fit_args: list[str] | None = None) -> None:
        self.out = out
        self.fit_args = list(fit_args)
        self.extra_fit_args = list(extra_fit_args or [])  # options the backtest adds (e.g. torch threads)
        self._running: set[subprocess.Popen] = set()  # the fold commands under way (one per worker thread)
        self._lock = threading.Lock()

    def stop(self, grace_seconds: float = 10.0) -> None:
        """After Ctrl-C: give each running fold command ``grace_seconds`` to end on its own (it got the signal too),
        then kill it, so that the backtest ends rather than waiting on a child that hangs in its shutdown."""
        with self._lock:
            running = list(self._running)
        for process in running:
            try:
                process.wait(timeout=grace_seconds)
            except subprocess.TimeoutExpired:
                process.kill()

    def root(self, fold: Fold) -> Path:
        """The fold's own run root: ``OUT/runs/{fold}``."""
        return self.out / "runs" / fold.name

    def predictions(self, fold: Fold) -> Path:
        """The fold's predictions file: ``OUT/predictions/{fold}.csv``."""
        return self.out / "predictions" / f"{fold.name}.csv"

    def summary_path(self, fold: Fold) -> Path | None:
        """The newest run's ``fit_summary.json`` under the fold's root, or None."""
        found = (self.root(fold) / RUNS_FOLDER).glob("version_*/fit_summary.json")
        return max(found, key=lambda path: int(path.parent.name.rpartition("_")[2]), default=None)

    def fit_summary(self, fold: Fold) -> dict[str, Any]:
        """The fold's ``fit_summary.json`` (FileNotFoundError when its fit has not finished)."""
        path = self.summary_path(fold)
        if path is None:
            raise FileNotFoundError(f"no fit_summary.json under {self.root(fold)}")
        return json.loads(path.read_text())

    def finished(self, fold: Fold) -> bool:
        """Whether the fold is done: its predictions file (a validation fold: its fit summary) exists."""
        if fold.dates.validation_only:
            return self.summary_path(fold) is not None
        return self.predictions(fold).is_file()

    def _shared_options(self, fold: Fold) -> list[str]:
        return [
            *self.fit_args,
            *self.extra_fit_args,
            "--seed_everything",
            str(fold.seed),
            *fold.dates.arguments(),
            "--trainer.default_root_dir",
            str(self.root(fold)),
            "--trainer.enable_progress_bar",
            "false",
        ]

    def fit_command(self, fold: Fold) -> list[str]:
        """The fold's ``fit`` command (resuming from its ``last.ckpt`` when one exists)."""
        cmd = [sys.executable, "-m", "forecast", "fit", *self._shared_options(fold), "--test_after_fit", "false"]
        if any((self.root(fold) / RUNS_FOLDER).glob("version_*/checkpoints/last.ckpt")):
            cmd += ["--ckpt_path", "last"]  # a killed fit continues in its own run folder
        return cmd

    def predict_command(self, fold: Fold, checkpoint: str) -> list[str]:
        """The fold's ``predict`` command for ``checkpoint``, into its predictions file."""
        return [
            sys.executable,
            "-m",
            "forecast",
            "predict",
            *self._shared_options(fold),
            "--ckpt_path",
            checkpoint,
            "--data.predict_set",
            "test",
            "--output",
            str(self.predictions(fold)),
        ]

    def record(self, fold: Fold) -> dict[str, Any]:
        """The fold's ``fold.json``: ``seconds`` spent in its commands (over every run of it) and the ``commands``."""
        path = self.root(fold) / "fold.json"
        return json.loads(path.read_text()) if path.is_file() else {"seconds": 0.0, "commands": []}

    def scored_record(self, fold: Fold) -> dict[str, Any]:
        """The fold's :meth:`record` with its best epoch and best validation scores (relMAE, and a quantile
        model's interval scores), from its ``fit_summary.json``."""
        summary = self.fit_summary(fold)
        best = {k: v for k, v in summary.items() if k.startswith("best_val_")}
        return {**self.record(fold), "best_epoch": summary["best_epoch"], **best}

    def run(self, fold: Fold) -> dict[str, Any]:
        """Run what is left of ``fold``; returns its updated :meth:`record`."""
        self.root(fold).mkdir(parents=True, exist_ok=True)
        record = self.record(fold)
        started = time.monotonic()
        try:
            if self.summary_path(fold) is None:
                self._call(fold, self.fit_command(fold), record)
            if not fold.dates.validation_only and not self.predictions(fold).is_file():
                self.predictions(fold).parent.mkdir(parents=True, exist_ok=True)
                best = self.fit_summary(fold)["best_checkpoint"]
                self._call(fold, self.predict_command(fold, best), record)
        finally:
            record["seconds"] += time.monotonic() - started
            (self.root(fold) / "fold.json").write_text(json.dumps(record, indent=2))
        return record

    def _call(self, fold: Fold, cmd: list[str], record: dict[str, Any]) -> None:
        record["commands"].append(f"python {shlex.join(cmd[1:])}")  # cmd[0] is this interpreter
        (self.root(fold) / "commands.sh").write_text("\n".join(record["commands"]) + "\n")
        log = self.root(fold) / "fold.log"
        with log.open("a") as stream:
            stream.write(f"$ {record['commands'][-1]}\n")
            stream.flush()
            process = subprocess.Popen(cmd, stdout=stream, stderr=subprocess.STDOUT, text=True)
            with self._lock:
                self._running.add(process)
            try:
                process.wait()
            finally:
                with self._lock:
                    self._running.discard(process)
        if process.returncode != 0:
            last = [ln for ln in log.read_text().splitlines() if ln.startswith("error:")]
            reason = last[-1][len("error: ") :] if last else f"exit status {process.returncode}"
            raise FoldFailedError(f"fold {fold.name} failed: {reason} (log: {log})", process.returncode)
