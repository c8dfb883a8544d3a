"""One trial of ``forecast tune``: a setting of the search space, fitted and scored on each validation year.

A trial runs the validation-only fold of each year in turn (the fold ``backtest --validation_only`` runs: training
targets through V−1, the checkpoint chosen and scored on V), as plain ``fit`` commands under
``OUT/trials/{number}/`` (:class:`forecast.backtest.runner.FoldRunner`: logs, ``commands.sh``, resuming from
``last.ckpt``). After each year the running mean of the best validation relMAEs is reported to the pruner.
"""

from __future__ import annotations

import math
import threading
import warnings
from pathlib import Path
from typing import Any, NoReturn

from forecast.backtest.folds import FoldDates
from forecast.backtest.runner import Fold, FoldFailedError, FoldRunner
from forecast.tune.space import Dimension, option_argument, suggest

INTERRUPTED = "interrupted (Ctrl-C)"
"""The fail reason of a trial stopped by Ctrl-C: the next run of the command repeats it, in the same folder."""

BASE_ATTR = "base_config"
"""User attribute of the trial that runs the base config's own settings: the bar the search has to clear, so it is
never pruned (its score on every year is what the best trial is compared with)."""

FOLDER_NUMBER = "folder_number"
"""User attribute: the number of the folder a trial runs in (its own, or that of the trial it repeats)."""

RESUMES = "resumes"
"""User attribute of a trial that repeats an interrupted or lost one: the number whose folder it continues."""


class TrialFailedError(RuntimeError):
    """A trial's fit failed or gave no finite score; the study records the reason and goes on."""


class Objective:
    """The study's objective: mean over ``years`` of the best validation relMAE of the trial's settings.

    Args:
        out: the tune's folder; a trial's folds run under ``out/trials/{folder number:04d}``.
        fit_args: the user's fit options, given to every fold before the trial's settings.
        extra_fit_args: options the tune adds (torch threads when trials run side by side).
        dimensions: the search space.
        years: validation years, in the order they are run (and reported to the pruner as steps 0, 1, ...).
        seed: ``seed_everything`` of every fit.
    """

    def __init__(
        self,
        out: Path,
        fit_args: list[str],
        extra_fit_args: list[str],
        dimensions: list[Dimension],
        years: list[int],
        seed: int,
    ) -> None:
        self.out, self.fit_args, self.extra_fit_args = out, fit_args, extra_fit_args
        self.dimensions, self.years, self.seed = dimensions, years, seed
        self.stopping = threading.Event()  # set on Ctrl-C: a fold that dies now was interrupted, not broken
        self._runners: list[FoldRunner] = []
        self._lock = threading.Lock()

    def folder_number(self, trial: Any) -> int:
        """The number whose folder the trial runs in: its own, or that of the trial it repeats (an interrupted
        one queued again, or one of a killed worker retried), so that finished folds are kept."""
        import optuna
        from optuna.storages import RetryHeartbeatStaleTrialCallback

        number = trial.user_attrs.get(RESUMES)
        if number is None:  # a trial of a killed worker, retried: its record holds the original number
            frozen = next(t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)
            with warnings.catch_warnings():  # experimental since Optuna 2.8, and the documented way
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                original = RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)
            if original is not None:  # the folder the original ran in (itself perhaps a repeat)
                origin = next(t for t in trial.study.get_trials(deepcopy=False) if t.number == original)
                number = origin.user_attrs.get(FOLDER_NUMBER, original)
        return trial.number if number is None else int(number)

    def folder(self, number: int) -> Path:
        """The folder of folder number ``number`` (:meth:`folder_number`): ``OUT/trials/{number:04d}``."""
        return self.out / "trials" / f"{number:04d}"

    def __call__(self, trial: Any) -> float:
        settings = suggest(trial, self.dimensions)
        number = self.folder_number(trial)
        trial.set_user_attr(FOLDER_NUMBER, number)
        runner = FoldRunner(
            self.folder(number),
            [*self.fit_args, *(option_argument(k, v) for k, v in settings.items())],
            self.extra_fit_args,
        )
        trial.set_user_attr("folder", str(runner.out))
        with self._lock:
            self._runners.append(runner)
        try:
            return self._run_years(trial, runner)
        except KeyboardInterrupt:
            trial.set_user_attr("fail_reason", INTERRUPTED)
            raise
        finally:
            with self._lock:
                self._runners.remove(runner)

    def _run_years(self, trial: Any, runner: FoldRunner) -> float:
        import optuna

        scores: dict[int, float] = {}
        seconds = 0.0
        for step, year in enumerate(self.years):
            if self.stopping.is_set():  # Ctrl-C came between folds: the trial runs again first next time
                self._fail(trial, INTERRUPTED)
            fold = Fold(FoldDates(year, validation_only=True), self.seed)
            before = runner.record(fold)["seconds"]  # a repeated trial's finished folds cost nothing now
            try:
                runner.run(fold)
            except FoldFailedError as exc:
                if exc.returncode in (130, -2):  # the fit got Ctrl-C: so did this command; start no more trials
                    self.stopping.set()
                self._fail(trial, INTERRUPTED if self.stopping.is_set() else str(exc))
            finally:
                seconds += runner.record(fold)["seconds"] - before
                trial.set_user_attr("seconds", seconds)
            score = self._score(trial, runner, fold)
            scores[year] = score
            trial.set_user_attr(f"val_{year}", score)
            trial.report(sum(scores.values()) / len(scores), step)
            last = step == len(self.years) - 1
            if not last and not trial.user_attrs.get(BASE_ATTR) and trial.should_prune():
                trial.set_user_attr("pruned_after", year)
                raise optuna.TrialPruned(f"pruned after {year}")
        return sum(scores.values()) / len(scores)

    def _score(self, trial: Any, runner: FoldRunner, fold: Fold) -> float:
        """The fold's best validation relMAE; a failed trial (with the reason) when the fit left none."""
        log = runner.root(fold) / "fold.log"
        try:
            score = runner.fit_summary(fold).get("best_val_rel_mae")
        except FileNotFoundError:
            self._fail(
                trial, f"fold {fold.name} wrote no fit_summary.json (no logger, or no validation ran?); log: {log}"
            )
        if score is None or not math.isfinite(float(score)):
            self._fail(trial, f"fold {fold.name}: best validation relMAE is {score} (the fit diverged?); log: {log}")
        return float(score)

    @staticmethod
    def _fail(trial: Any, reason: str) -> NoReturn:
        trial.set_user_attr("fail_reason", reason)
        raise TrialFailedError(reason)

    def stop(self) -> None:
        """After Ctrl-C: mark the trials under way as interrupted and end their fold commands (see
        :meth:`FoldRunner.stop`)."""
        self.stopping.set()
        with self._lock:
            runners = list(self._runners)
        for runner in runners:
            runner.stop()
