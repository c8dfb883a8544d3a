"""The Optuna study behind ``forecast tune``: its storage, sampler and pruner, and the checks that make running the
command again (or on another machine against the same storage) continue the same search.

- Storage: ``sqlite:///OUT/study.db`` unless ``--storage`` names another SQLAlchemy URL (PostgreSQL, MySQL) that
  every worker reaches. Workers send a heartbeat; a trial whose worker was killed is failed once its heartbeat is
  stale and repeated (same settings, same folder: its finished folds are kept) by the next trial to start.
- Sampler: TPE, seeded from ``--seed`` and the number of trials already in the study, so a rerun does not
  repeat the first run's draws. Workers started together need distinct ``--seed`` values (refused otherwise).
- Pruner: median of the running objective after each validation year, once 5 trials have finished.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.exc
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

from forecast.backtest.walk import setting_changes
from forecast.errors import UserError
from forecast.tune.trials import BASE_ATTR, BASE_RUN, FOLDER_NUMBER, INTERRUPTED, RESUMES

HEARTBEAT_SECONDS = 60
"""How often a worker tells the storage its trials are alive; a trial silent for 3 times that is run again."""
STARTUP_TRIALS = 5
CREATE_ATTEMPTS = 6
SETTINGS_ATTR = "forecast_settings"


class TuneError(UserError):
    """A tune option that cannot work: told in one line before any training."""


def default_storage(out: Path) -> str:
    """The study's storage when ``--storage`` is not given: SQLite in the tune's folder."""
    return f"sqlite:///{out / 'study.db'}"


def open_storage(url: str, heartbeat: int = HEARTBEAT_SECONDS) -> Any:
    """Optuna's RDB storage at ``url`` with heartbeats and retry of lost trials; one :class:`TuneError` line when
    it cannot be reached."""

    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):  # workers of one machine share the file: wait for its lock rather than fail
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    for attempt in range(CREATE_ATTEMPTS):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            try:
                return RDBStorage(
                    url,
                    heartbeat_interval=heartbeat,
                    grace_period=3 * heartbeat,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2),
                    **kwargs,
                )
            except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError) as exc:
                # two workers creating the tables of a new database at once: one wins, the other sees "already
                # exists" (measured: 4 of 6 simultaneous starts on SQLite); the tables are there a moment later
                error: Exception = exc
                time.sleep(0.5 * (attempt + 1))
            except Exception as exc:  # a bad URL, a missing driver, an unreachable server: no point retrying
                error = exc
                break
    message = " ".join(str(error).split())[:300]
    raise TuneError(
        f"cannot open the study storage {redact(url)}: {message} (an SQLAlchemy URL such as sqlite:///study.db or "
        "postgresql://user:password@host/db)"
    ) from error


def redact(url: str) -> str:
    """``url`` with its password hidden, for messages and reports."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}"


def load_study(
    storage: Any, name: str, settings: dict[str, Any], on_create: Callable[[Any], object] | None = None
) -> Any:
    """Create the study ``name`` or load it; refuse one that was run with other settings, search space or years.

    ``settings`` is what defines the search (fit settings, search space, years, the fits' seed): stored with the
    study by the worker that creates it (which then calls ``on_create``, e.g. to queue the base settings), compared
    by every worker that loads it. Creating is atomic in the storage, so of two workers starting together on a new
    study exactly one creates it.
    """

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # one line per trial is ours, with a failure's reason
    pruner = optuna.pruners.MedianPruner(n_startup_trials=STARTUP_TRIALS, n_warmup_steps=0)
    ours = json.loads(json.dumps(settings))
    try:
        study = optuna.create_study(study_name=name, storage=storage, direction="minimize", pruner=pruner)
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage, pruner=pruner)
        theirs = _wait_for_settings(study)
    else:
        study.set_user_attr(SETTINGS_ATTR, ours)
        if on_create is not None:
            on_create(study)
        theirs = ours
    if theirs is None:  # its creator died before writing them: ours define it from now on
        study.set_user_attr(SETTINGS_ATTR, ours)
    elif theirs != ours:
        changes = setting_changes(theirs, ours) or [("settings", theirs, ours)]  # e.g. {} against a missing key
        key, there, now = changes[0]
        raise TuneError(
            f"study {name!r} was run with other settings ({key}: {there!r} there, {now!r} now); use another --out "
            "or --study_name, or the same options as before"
        )
    return study


def _wait_for_settings(study: Any, seconds: float = 10.0) -> dict[str, Any] | None:
    """The settings stored with ``study``, waiting a moment for a creator that has not written them yet."""
    deadline = time.monotonic() + seconds
    while True:
        theirs = study.user_attrs.get(SETTINGS_ATTR)
        if theirs is not None or time.monotonic() > deadline:
            return theirs
        time.sleep(0.2)


def seed_sampler(study: Any, seed: int) -> None:
    """Give ``study`` a TPE sampler seeded from ``seed`` and the number of trials already there (a rerun does not
    repeat the first run's draws); refuse a second worker that starts with the same seed at the same point (it
    would sample the very same settings). Called only by a command that runs trials."""

    existing = len(study.trials)
    marker = f"worker_seed_{seed}_at_{existing}"
    if marker in study.user_attrs:
        raise TuneError(
            f"a worker with --seed {seed} started on study {study.study_name!r} at this same point and would sample "
            "the same settings; give each worker its own --seed"
        )
    study.set_user_attr(marker, True)
    # constant_liar: trials under way (other threads, other machines) count as bad guesses, so that workers do not
    # all sample next to the same promising point
    study.sampler = optuna.samplers.TPESampler(seed=seed * 100_003 + existing, constant_liar=True)  # public attribute


def enqueue_interrupted(study: Any) -> int:
    """Queue again, with the same settings and folder, every trial of this study stopped by Ctrl-C and not yet
    repeated; returns how many."""

    trials = study.get_trials(deepcopy=False)
    count = 0
    for trial in trials:
        reason = trial.user_attrs.get("fail_reason") or ""
        if trial.state != optuna.trial.TrialState.FAIL or not reason.startswith(INTERRUPTED.split("(")[0]):
            continue
        origin = trial.user_attrs.get(FOLDER_NUMBER, trial.number)
        if any(t.number > trial.number and t.user_attrs.get(RESUMES) == origin for t in trials):
            continue  # already queued (or run) again, perhaps interrupted again: that later trial is the one
        attrs = {RESUMES: origin, **({BASE_ATTR: True} if trial.user_attrs.get(BASE_ATTR) else {})}
        study.enqueue_trial(trial.params, user_attrs=attrs, skip_if_exists=False)
        count += 1
    return count


def enqueue_base(study: Any, dimensions: list[Any], settings: dict[str, Any]) -> dict[str, Any]:
    """On a new study, put first the base config's own settings: the bar the search has to clear, run exactly as
    configured. Where the space holds its value of every searched setting, as the study's first trial (returns the
    values queued); else beside the study (:data:`BASE_RUN`, run by :meth:`forecast.tune.trials.Search.run`, returns
    {}), since a trial can only run values of the space. Nothing on a study with trials."""
    if study.trials:
        return {}
    values, params = base_values(dimensions, settings), {}
    for dimension in dimensions:
        node = values[dimension.name]
        stored = json.dumps(node) if dimension.structured else node
        d = dimension.distribution
        if dimension.is_categorical:
            inside = stored in d.choices
        else:
            inside = isinstance(node, (int, float)) and not isinstance(node, bool) and d.low <= node <= d.high
        if not inside:
            study.set_user_attr(BASE_RUN, {"settings": values})  # to be run beside the study
            return {}
        params[dimension.name] = stored
    study.enqueue_trial(params, user_attrs={BASE_ATTR: True})
    return params


def base_values(dimensions: list[Any], settings: dict[str, Any]) -> dict[str, Any]:
    """The base config's value of each searched setting (None where it sets none)."""
    values = {}
    for dimension in dimensions:
        node: Any = settings
        for part in dimension.name.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        values[dimension.name] = node
    return values
