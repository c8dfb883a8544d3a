"""The trials of ``forecast tune``, asked and told by the driver (Optuna's ask-and-tell): the driver holds the study,
and an executor runs the folds — the validation-only fold of each year in turn, the fold ``backtest
--validation_only`` runs — and returns their scores (:func:`forecast.backtest.task.run_fold`).

After each year the running mean of the best validation relMAEs is reported to the pruner, and the next year's
fold starts only when the trial is not pruned. A trial's folds run under ``OUT/trials/{folder number:04d}/``: its
own number, or that of the trial it repeats (one interrupted by Ctrl-C, or one of a worker that was killed), so that
finished folds are kept.
"""

from __future__ import annotations

import contextlib
import math
import threading
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from forecast.backtest.folds import FoldDates
from forecast.backtest.task import Fold, FoldTask, run_fold
from forecast.errors import first_line
from forecast.executors import Executor
from forecast.signals import Stopped, Terminated
from forecast.tune.space import Dimension, option_argument, suggest

INTERRUPTED = "interrupted (Ctrl-C)"
"""The fail reason of a trial stopped by Ctrl-C (``interrupted (SIGTERM)`` after SIGTERM): the next run of the command
repeats it, in the same folder."""

BASE_ATTR = "base_config"
"""User attribute of the trial that runs the base config's own settings: the bar the search has to clear, so it is
never pruned."""

BASE_RUN = "base_run"
"""Study attribute of the base config's run beside the study (when its settings lie outside the space, no trial can
run them): its ``settings``, and once run its ``years`` (validation relMAE by year), ``objective``, ``seconds`` and
``folder``."""

FOLDER_NUMBER = "folder_number"
"""User attribute: the number of the folder a trial runs in (its own, or that of the trial it repeats)."""

RESUMES = "resumes"
"""User attribute of a trial that repeats an interrupted or lost one: the number whose folder it continues."""


@contextlib.contextmanager
def ask_lock(storage: Any) -> Iterator[None]:
    """Held while a worker asks for a trial. SQLite cannot lock a row (no SELECT ... FOR UPDATE), so two workers
    asking at once can pop the same queued trial and both run it (optuna issues 4002, 4621; seen here as "Trial#0
    has already finished" under load): on SQLite the asks are serialised by a lock file beside the database. Other
    databases lock the row themselves; where ``fcntl`` is missing (Windows) nothing is locked."""
    url = str(getattr(storage, "url", ""))
    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else None
    try:
        import fcntl
    except ImportError:
        path = None
    if path is None or path in ("", ":memory:"):
        yield
        return
    with open(f"{path}.ask.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def folder_number(trial: Any) -> int:
    """The number whose folder ``trial`` runs in: its own, or that of the trial it repeats (an interrupted one queued
    again, or one of a killed worker retried), so that finished folds are kept."""
    number = trial.user_attrs.get(RESUMES)
    if number is None:  # a trial of a killed worker, retried: its record holds the original number
        trials = trial.study.get_trials(deepcopy=False)
        frozen = next(t for t in trials if t.number == trial.number)
        with warnings.catch_warnings():  # experimental since Optuna 2.8, and the documented way
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            original = RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)
        if original is not None:  # the folder the original ran in (itself perhaps a repeat)
            number = next(t for t in trials if t.number == original).user_attrs.get(FOLDER_NUMBER, original)
    return trial.number if number is None else int(number)


def trial_folder(out: Path, number: int) -> Path:
    """The folder of folder number ``number``: ``OUT/trials/{number:04d}``."""
    return out / "trials" / f"{number:04d}"


@dataclass
class _Running:
    """A trial under way: its settings as fit options, the years it has scored, the seconds its folds took, and the
    fold it runs now."""

    trial: Any
    options: tuple[str, ...]
    folder: Path
    scores: dict[int, float] = field(default_factory=dict)
    seconds: float = 0.0
    task: FoldTask | None = None


class Search:
    """Runs trials of ``study`` over the search space ``dimensions``, each scored on ``years``.

    Args:
        study: the Optuna study (its sampler, pruner and storage set).
        dimensions: the search space.
        years: validation years, run in this order (steps 0, 1, ... for the pruner).
        out: the tune's folder.
        fit_options: the fit options of every fold, before the trial's settings.
        seed: ``seed_everything`` of every fit.
        storage: the study's storage, for heartbeats of the trials under way (None: no heartbeats).
    """

    def __init__(
        self, study: Any, dimensions: list[Dimension], years: list[int], out: Path, fit_options: tuple[str, ...],
        seed: int, storage: Any = None,
    ) -> None:  # fmt: skip
        self.study, self.dimensions, self.years, self.out = study, dimensions, years, out
        self.fit_options, self.seed, self.storage = fit_options, seed, storage
        self.running: dict[Future, _Running] = {}

    def run(self, trials: int, capacity: int, executor: Executor, on_told: Callable[[Any], None]) -> None:
        """Ask ``trials`` trials, ``capacity`` of them under way at a time, and tell each how it ended
        (``on_told(frozen trial)`` after each); Ctrl-C (or any other exception) fails the trials under way as
        interrupted and ends their folds."""
        asked, stop = 0, threading.Event()
        beating = threading.Thread(target=self._heartbeats, args=(stop,), daemon=True)
        beating.start()
        try:
            self._run_base(executor)
            while asked < trials or self.running:
                while asked < trials and len(self.running) < capacity:  # a trial runs one fold at a time
                    self._start(executor)
                    asked += 1
                done, _ = wait(list(self.running), return_when=FIRST_COMPLETED)
                for future in done:
                    told = self._next(future, executor)
                    if told is not None:
                        on_told(told)
        except BaseException as exc:
            executor.shutdown(cancel=True)
            reason = f"stopped: {first_line(exc)}"
            if isinstance(exc, (KeyboardInterrupt, Stopped)):
                reason = "interrupted (SIGTERM)" if isinstance(exc, Terminated) else INTERRUPTED
            for running in list(self.running.values()):
                with contextlib.suppress(Exception):  # one trial's record must not hide the others', nor the cause
                    self._fail(running, reason)
            raise
        finally:
            stop.set()
        executor.shutdown()

    def _run_base(self, executor: Executor) -> None:
        """The base config beside the study, when it waits to run (:data:`BASE_RUN`): each year's fold with the fit
        options alone, exactly as configured, in ``OUT/base``; recorded in the study for every worker's report. A
        fold that fails stops the search: without the bar, no trial can be judged."""
        base = self.study.user_attrs.get(BASE_RUN)
        if not base or "years" in base:
            return
        folder = self.out / "base"
        folds = [Fold(FoldDates(year, validation_only=True), self.seed) for year in self.years]
        tasks = [FoldTask(fold, folder / "runs" / fold.name, self.fit_options) for fold in folds]
        results = [future.result() for future in [executor.submit(run_fold, task) for task in tasks]]
        years = {str(r.fold.dates.year): r.scores["best_val_rel_mae"] for r in results}
        seconds = sum(r.seconds for r in results)
        objective = sum(years.values()) / len(years)
        self.study.set_user_attr(BASE_RUN, {**base, "years": years, "objective": objective, "seconds": seconds,
                                            "folder": str(folder)})  # fmt: skip

    def _start(self, executor: Executor) -> None:
        """Ask the next trial (a queued one first) and start its first year's fold."""
        with warnings.catch_warnings():
            # fail_stale_trials is experimental; Optuna warns that heartbeats are meant for Study.optimize, and this
            # driver records them itself (_heartbeats)
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
            if self.storage is not None:
                optuna.storages.fail_stale_trials(self.study)  # a killed worker's trials: failed, queued again
            with ask_lock(self.storage):
                trial = self.study.ask()
        self._beat([trial])
        settings = suggest(trial, self.dimensions)
        number = folder_number(trial)
        trial.set_user_attr(FOLDER_NUMBER, number)
        folder = trial_folder(self.out, number)
        trial.set_user_attr("folder", str(folder))
        options = (*self.fit_options, *(option_argument(k, v) for k, v in settings.items()))
        self._submit(_Running(trial, options, folder), executor)

    def _submit(self, running: _Running, executor: Executor) -> None:
        fold = Fold(FoldDates(self.years[len(running.scores)], validation_only=True), self.seed)
        running.task = FoldTask(fold, running.folder / "runs" / fold.name, running.options)
        self.running[executor.submit(run_fold, running.task)] = running

    def _next(self, future: Future, executor: Executor) -> Any:
        """Record a finished fold; start the trial's next year or tell the study how it ended (the frozen trial).
        The trial stays among those under way until told: Ctrl-C meanwhile fails it as interrupted. A trial that
        another worker ended meanwhile (it found its heartbeat stale and queued it again) is left as that worker
        told it: its copy runs again."""
        try:
            told = self._advance(self.running[future], future, executor)
        except optuna.exceptions.UpdateFinishedTrialError:
            told = None
        del self.running[future]
        return told

    def _advance(self, running: _Running, future: Future, executor: Executor) -> Any:
        assert running.task is not None
        trial, year, name = running.trial, running.task.fold.dates.year, running.task.fold.name
        try:
            result = future.result()
        except Exception as exc:  # e.g. a fit that failed, or whose process died: this trial fails, the study goes on
            return self._fail(running, f"fold {name} failed: {first_line(exc)} (log: {running.task.root / 'fold.log'})")
        running.seconds += result.seconds
        trial.set_user_attr("seconds", running.seconds)
        score = result.scores.get("best_val_rel_mae")
        if score is None or not math.isfinite(float(score)):
            return self._fail(running, f"fold {name}: best validation relMAE is {score} (no validation, or diverged?)")
        running.scores[year] = float(score)
        trial.set_user_attr(f"val_{year}", float(score))
        mean = sum(running.scores.values()) / len(running.scores)
        trial.report(mean, len(running.scores) - 1)
        if len(running.scores) == len(self.years):
            return self.study.tell(trial, mean, skip_if_finished=True)
        if not trial.user_attrs.get(BASE_ATTR) and trial.should_prune():
            trial.set_user_attr("pruned_after", year)
            return self.study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
        self._submit(running, executor)  # the trial's next year: the new future is under way, this one is done
        return None

    def _fail(self, running: _Running, reason: str) -> Any:
        # told already, by another worker that found it stale: its word stands
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            running.trial.set_user_attr("fail_reason", reason)
        return self.study.tell(running.trial, state=TrialState.FAIL, skip_if_finished=True)

    def _beat(self, trials: list[Any]) -> None:
        """Tell the storage that ``trials`` are alive (when it keeps heartbeats)."""
        if self.storage is None or not self.storage.get_heartbeat_interval():
            return
        study_id = self.storage.get_study_id_from_name(self.study.study_name)
        for trial in trials:
            self.storage.record_heartbeat(self.storage.get_trial_id_from_study_id_trial_number(study_id, trial.number))

    def _heartbeats(self, stop: threading.Event) -> None:
        """Every heartbeat interval, the trials under way are alive: another worker fails a trial whose heartbeat
        has gone stale (its worker was killed) and queues it again."""
        interval = self.storage.get_heartbeat_interval() if self.storage is not None else None
        while interval and not stop.wait(interval):
            self._beat([r.trial for r in list(self.running.values())])
