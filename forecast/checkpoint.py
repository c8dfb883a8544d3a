"""Checkpoints and run folders: reading a checkpoint safely, finding a run's checkpoints, and the one rule for
which settings a checkpoint fixes (:func:`apply_rule`, for the command line and Python alike).

A run is one ``fit``: ``<root>/lightning_logs/version_N/`` holds its TensorBoard events, ``config.yaml``,
``fit_summary.json``, test report and ``checkpoints/`` (the best by validation MAE, and ``last.ckpt``).

:class:`CheckpointSettings` splits what a checkpoint records by the rule of :mod:`forecast.settings`: settings
that decide what the weights mean (:data:`FIXED_DATA` and every model setting but :data:`TRAINING_ONLY_MODEL`),
training settings a resume cannot change (:data:`RESUMED_MODEL`), and the data the checkpoint was trained on.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from forecast.errors import UserError, option

log = logging.getLogger(__name__)

RUNS_FOLDER = "lightning_logs"
"""Lightning's default name of the folder that holds the ``version_N`` runs under the root."""

FIXED_DATA = ("base_len", "horizon", "normalisation", "channels")
"""Data settings the weights were trained for: a checkpoint fixes them."""

LINKED_MODEL = ("in_channels", "base_len", "horizon", "target_channel")
"""Model settings the CLI derives from the data settings (never set directly)."""

TRAINING_ONLY_MODEL = ("init_lam", "lam_lr", "huber_delta", "optimizer", "lr_scheduler")
"""Model settings that only steer training, not what the trained weights compute."""

RESUMED_MODEL = ("init_lam", "lam_lr", "optimizer", "lr_scheduler")
"""Training settings a resume cannot change: Lightning restores the optimizer's and scheduler's state."""
KERNEL_CHOICES = frozenset({"fused", "foreach", "capturable"})  # an optimizer's kernel, not its update: a resume
# may change it (a run started before configs/djia.yaml asked for fused AdamW resumes with that config)

TRAINING_KEY = "forecast_training"
"""The checkpoint entry that records the optimizer and LR scheduler settings (class path and arguments)."""

INIT_FROM_KEY = "forecast_init_from"
"""The checkpoint entry that records the checkpoint a warm start (``fit --init_from``) began from."""


class CheckpointError(UserError):
    """A checkpoint path that does not exist, is not a checkpoint, or is not a forecast model's."""


class SettingConflictError(UserError):
    """A setting given in a config or on the command line contradicts what the checkpoint was trained with."""


def read_checkpoint(path: str) -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``), or raise a one-line :class:`CheckpointError`; cached while the
    file stays the same, and shared: callers must not modify it. In today's layout (upgraded)."""
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"checkpoint not found: {path}; pass an existing .ckpt file (or last / best)")
    stat = file.stat()  # one stat: the cache key's time and size are of the same file
    return _read_checkpoint(str(file.absolute()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4)  # parsing, restoring and checking the same file: read it once
def _read_checkpoint(path: str, mtime_ns: int, size: int) -> dict[str, Any]:
    file = Path(path)
    try:
        ckpt = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__})") from exc
    state = ckpt.get("state_dict") if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or "predictor.ridge.raw_lam" not in state:
        raise CheckpointError(f"{path} is not a checkpoint of a forecast model (no ridge predictor in its weights)")
    upgrade_checkpoint(ckpt)
    return ckpt


def upgrade_checkpoint(ckpt: dict[str, Any]) -> None:
    """An older quantile model's checkpoint in today's layout, in place: its second network (``intervals: network``,
    the only kind then) and uncalibrated conformal shifts (``calibration.*``)."""
    hparams, state = ckpt.get("hyper_parameters") or {}, ckpt.get("state_dict") or {}
    levels = hparams.get("quantiles") or []
    if len(levels) > 1:
        hparams.setdefault("intervals", "network")
        state.setdefault("calibration.shifts", torch.zeros(len(levels), int(hparams["horizon"])))
        state.setdefault("calibration.calibrated", torch.zeros((), dtype=torch.bool))


def plain_data(value: Any) -> Any:
    """Tuples → lists, recursively: the form YAML, JSON and the parser give back."""
    if isinstance(value, (tuple, list)):
        return [plain_data(v) for v in value]
    if isinstance(value, dict):
        return {k: plain_data(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class CheckpointSettings:
    """The settings a checkpoint carries, split by the rule in this module's docstring.

    Attributes:
        fixed_model: model settings the weights mean (without the linked ones).
        fixed_data: data settings the weights mean (:data:`FIXED_DATA`).
        chosen_model: training-only model settings a resume can change (``huber_delta``).
        chosen_data: the data the checkpoint was trained on (source, path, split dates, ...).
        resumed: training settings a resume cannot change (:data:`RESUMED_MODEL`): ``init_lam``, ``lam_lr``, and
            the optimizer and LR scheduler (``{"class_path", "init_args"}``) when the checkpoint records them.
    """

    fixed_model: dict[str, Any]
    fixed_data: dict[str, Any]
    chosen_model: dict[str, Any]
    chosen_data: dict[str, Any]
    resumed: dict[str, Any]

    @classmethod
    def of(cls, ckpt: dict[str, Any]) -> CheckpointSettings:
        """The settings a loaded checkpoint carries, split by the rule."""

        def public(key: str) -> dict[str, Any]:
            return {k: plain_data(v) for k, v in (ckpt.get(key) or {}).items() if not k.startswith("_")}

        model = {k: v for k, v in public("hyper_parameters").items() if k not in LINKED_MODEL}
        data = public("datamodule_hyper_parameters")
        model |= {k: plain_data(v) for k, v in (ckpt.get(TRAINING_KEY) or {}).items() if k in RESUMED_MODEL}
        return cls(
            fixed_model={k: v for k, v in model.items() if k not in TRAINING_ONLY_MODEL},
            fixed_data={k: v for k, v in data.items() if k in FIXED_DATA},
            chosen_model={k: v for k, v in model.items() if k in TRAINING_ONLY_MODEL and k not in RESUMED_MODEL},
            chosen_data={k: v for k, v in data.items() if k not in FIXED_DATA},
            resumed={k: v for k, v in model.items() if k in RESUMED_MODEL},
        )


def runs_folder(save_dir: str | Path | None, name: str | None = RUNS_FOLDER) -> Path:
    """``<save_dir>/<name>``: where the ``version_N`` run folders are (``save_dir`` default: the current dir)."""
    return Path(save_dir or ".").absolute() / (name or "")


def _version_number(folder: Path) -> int:
    suffix = folder.name.removeprefix("version_")
    return int(suffix) if suffix.isdigit() else -1


def newest_run_checkpoint(runs: Path, alias: str, checkpoint_dir: str | Path | None = None) -> Path:
    """The checkpoint ``alias`` (``last`` or ``best``) of the newest run that has one.

    Runs are ``runs/version_N`` (the highest N is the newest); ``checkpoint_dir``, when the user fixed one,
    replaces the search. The run is the newest one with a ``last.ckpt``, for both aliases; ``best`` is the
    best checkpoint that ``last.ckpt`` records, looked up by name in the same folder (the run may have moved
    since). A run whose best checkpoint is gone is an error, never a reason to take an older run's.

    Raises:
        CheckpointError: no run has a ``last.ckpt``, or the newest one's best checkpoint is missing.
    """
    if checkpoint_dir:
        candidates = [Path(checkpoint_dir).absolute()]
    else:
        versions = sorted((p for p in runs.glob("version_*") if p.is_dir()), key=_version_number, reverse=True)
        candidates = [v / "checkpoints" for v in versions]
    for folder in candidates:
        last = folder / "last.ckpt"
        if not last.is_file():
            continue
        if alias == "last":
            return last
        recorded = best_model_path(read_checkpoint(str(last)))
        best = folder / Path(recorded).name if recorded else None
        if best is None or not best.is_file():
            raise CheckpointError(
                f"{option('ckpt_path', 'checkpoint')} best: the newest run's best checkpoint "
                f"({recorded or 'none recorded'}) is not in {folder}; give the path of a .ckpt file"
            )
        return best
    where = candidates[0] if checkpoint_dir else runs / "version_*" / "checkpoints"
    raise CheckpointError(
        f"{option('ckpt_path', 'checkpoint')} {alias}: no last.ckpt found in {where}; train a model first (fit), give "
        f"the path of a .ckpt file, or the folder that holds the runs ({option('trainer.default_root_dir', 'root')})"
    )


def resolve_checkpoint(
    given: str, runs: Path, checkpoint_dir: str | Path | None = None, flag: str = "--ckpt_path"
) -> str:
    """``last`` / ``best`` → that checkpoint of the newest run under ``runs`` (:func:`newest_run_checkpoint`, one log
    line says which); a path stays as it is."""
    if given not in ("last", "best"):
        return given
    path = newest_run_checkpoint(runs, given, checkpoint_dir)
    log.info("%s %s: %s", flag, given, path)
    return str(path)


def check_weights(path: str, ours: dict[str, torch.Tensor]) -> None:
    """A :class:`CheckpointError` when the checkpoint's weights do not fit a model whose ``state_dict`` is ``ours``
    (missing, unexpected or resized tensors): caught before any output is written."""
    theirs = read_checkpoint(path)["state_dict"]
    missing, unexpected = sorted(set(ours) - set(theirs)), sorted(set(theirs) - set(ours))
    resized = sorted(k for k in set(ours) & set(theirs) if tuple(ours[k].shape) != tuple(theirs[k].shape))
    if missing or unexpected or resized:
        first = (missing or unexpected or resized)[0]
        raise CheckpointError(
            f"{path} does not fit this model ({len(missing)} missing, {len(unexpected)} unexpected, "
            f"{len(resized)} resized weights, e.g. {first}); it was saved by another version of the model"
        )


def best_model_path(ckpt: dict[str, Any]) -> str:
    """The best checkpoint recorded by the checkpoint callback that monitors a metric ('' if none)."""
    for key, state in (ckpt.get("callbacks") or {}).items():
        if key.startswith("ModelCheckpoint") and isinstance(state, dict) and state.get("monitor"):
            return str(state.get("best_model_path") or "")
    return ""


def run_folder_of(ckpt_path: str | Path) -> Path | None:
    """The run folder ``.../version_N`` of a checkpoint stored in ``.../version_N/checkpoints/``, else None."""
    path = Path(ckpt_path).absolute()
    if path.parent.name == "checkpoints" and path.parent.parent.name.startswith("version_"):
        return path.parent.parent
    return None


Use = Literal["resume", "warm_start", "evaluate"]
"""How a command uses a checkpoint: ``resume`` (``fit --ckpt_path``), ``warm_start`` (``fit --init_from``),
``evaluate`` (``validate``, ``test``, ``predict``; ``forecast.load``)."""

MISSING = object()


@dataclass(frozen=True)
class Given:
    """What the user gave: ``values`` of every setting, dotted, parsed over the checkpoint's (an untouched setting
    has the checkpoint's value), and ``from_configs``, the values that plain configs set."""

    values: dict[str, Any]
    from_configs: dict[str, Any]

    def given(self, key: str, theirs: Any) -> bool:
        """Whether ``key`` was given a value other than the checkpoint's ``theirs`` by a flag (or a config that
        names the checkpoint), rather than only by a plain config."""
        value = plain_data(self.values.get(key, theirs))
        return value != theirs and plain_data(self.from_configs.get(key, MISSING)) != value


def _ruled(settings: CheckpointSettings, use: Use) -> tuple[dict[str, Any], dict[str, Any]]:
    """The settings the checkpoint decides, and those it supplies unless given (dotted, with its values)."""
    fixed = {f"model.{k}": v for k, v in settings.fixed_model.items()}
    fixed |= {f"data.{k}": v for k, v in settings.fixed_data.items()}
    chosen = {f"data.{k}": v for k, v in settings.chosen_data.items()}
    if use == "resume":
        fixed |= {f"model.{k}": v for k, v in settings.resumed.items()}
    if use != "warm_start":  # a warm start trains as the user configures it: only the weights come along
        chosen |= {f"model.{k}": v for k, v in settings.chosen_model.items()}
    return fixed, chosen


def _differences(key: str, value: Any, theirs: Any) -> list[tuple[str, Any, Any]]:
    """``(dotted key, given, checkpoint's)`` of each leaf where ``value`` differs from ``theirs`` (an optimizer's
    ``lr``, not its whole dictionary)."""
    if isinstance(value, dict) and isinstance(theirs, dict) and value.get("class_path") == theirs.get("class_path"):
        names = sorted((set(value) | set(theirs)) - KERNEL_CHOICES)  # no "init_args" in --model.optimizer.lr
        inner = [(key if name == "init_args" else f"{key}.{name}", value.get(name), theirs.get(name)) for name in names]
        return [found for args in inner for found in _differences(*args)]
    return [] if value == theirs else [(key, value, theirs)]


def _nested(dotted: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s: {k.partition(".")[2]: v for k, v in dotted.items() if k.startswith(f"{s}.")} for s in ("model", "data")}


def checkpoint_defaults(settings: CheckpointSettings, use: Use, chosen: bool = True) -> dict[str, dict[str, Any]]:
    """What the checkpoint supplies for ``use`` as ``{"model": ..., "data": ...}`` (``chosen=False``: only what it
    decides): the layer the user's arguments are parsed over."""
    fixed, supplied = _ruled(settings, use)
    return _nested(fixed | supplied if chosen else fixed)


def apply_rule(settings: CheckpointSettings, given: Given, use: Use) -> dict[str, dict[str, Any]]:
    """The checkpoint's values that the final settings keep over the user's configs, ``{"model": ..., "data": ...}``;
    a :class:`SettingConflictError` naming each conflicting setting, both values, and what to do instead."""
    fixed, chosen = _ruled(settings, use)
    values = {k: plain_data(v) for k, v in given.values.items() if k in fixed}
    conflicts = [found for k, v in values.items() for found in _differences(k, v, fixed[k])]
    if conflicts:
        listed = "; ".join(f"{key} {value} (the checkpoint has {theirs})" for key, value, theirs in conflicts)
        advice = "the checkpoint's value decides what its weights mean; drop the option (or the config's value)"
        if any(key.startswith("model.") and key.split(".")[1] in settings.resumed for key, _, _ in conflicts):
            advice = (f"a resume continues the checkpoint's optimizer and schedule; to train its weights with new "
                      f"ones, start a new run with {option('init_from')} instead of {option('ckpt_path')}")  # fmt: skip
        raise SettingConflictError(f"{listed}: {advice}, or train a new model")
    given_keys = {key for key, theirs in chosen.items() if given.given(key, theirs)}
    if {"data.source", "data.path"} & given_keys:  # a new origin of the data replaces both
        given_keys |= {"data.source", "data.path"}
    return _nested({key: theirs for key, theirs in chosen.items() if key not in given_keys})
