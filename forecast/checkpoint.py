"""Checkpoints and run folders: reading a checkpoint safely, finding a run's checkpoints, and the one rule for
which settings a checkpoint fixes.

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
from typing import Any

import torch

from forecast.errors import UserError

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

TRAINING_KEY = "forecast_training"
"""The checkpoint entry that records the optimizer and LR scheduler settings (class path and arguments)."""

INIT_FROM_KEY = "forecast_init_from"
"""The checkpoint entry that records the checkpoint a warm start (``fit --init_from``) began from."""


class CheckpointError(UserError):
    """A checkpoint path that does not exist, is not a checkpoint, or is not a forecast model's."""


class SettingConflictError(UserError):
    """A setting given in a config or on the command line contradicts what the checkpoint was trained with."""


def read_checkpoint(path: str) -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``), or raise a one-line :class:`CheckpointError`.

    The result is cached while the file stays the same, and shared: callers must not modify it.
    """
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"checkpoint not found: {path}; pass an existing .ckpt file (or last / best)")
    stat = file.stat()
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
    return ckpt


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
        model = {k: plain_data(v) for k, v in (ckpt.get("hyper_parameters") or {}).items() if not k.startswith("_")}
        data = {
            k: plain_data(v)
            for k, v in (ckpt.get("datamodule_hyper_parameters") or {}).items()
            if not k.startswith("_")
        }
        for linked in LINKED_MODEL:
            model.pop(linked, None)
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
                f"--ckpt_path best: the newest run's best checkpoint ({recorded or 'none recorded'}) is not in "
                f"{folder}; pass the path of a .ckpt file"
            )
        return best
    where = candidates[0] if checkpoint_dir else runs / "version_*" / "checkpoints"
    raise CheckpointError(
        f"--ckpt_path {alias}: no last.ckpt found in {where}; train a model first (fit) or pass the path of "
        "a .ckpt file"
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
    missing = sorted(set(ours) - set(theirs))
    unexpected = sorted(set(theirs) - set(ours))
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
