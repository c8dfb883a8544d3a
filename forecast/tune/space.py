"""The search space of ``forecast tune``: a YAML file mapping fit options to Optuna distributions.

Each key is a fit option's dotted name as on the command line, each value exactly one of::

    model.optimizer.init_args.lr: {float: [1.0e-4, 1.0e-2], log: true}     # optional: log, or step
    trainer.max_epochs: {int: [3, 10]}                                       # optional: log, or step
    model.encoder_channels: {categorical: [[8, 16, 32], [16, 32, 64]]}

A categorical choice that is a list or mapping is stored in the study as its JSON text (Optuna's categorical
choices are scalars), and decoded back into the value before it reaches the fit.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml

from forecast.errors import UserError

KINDS = ("float", "int", "categorical")
OPTIONS = {"float": {"log", "step"}, "int": {"log", "step"}, "categorical": set()}


class SearchSpaceError(UserError):
    """A search-space file that cannot be read or sampled."""


@dataclass(frozen=True)
class Dimension:
    """One setting of the search: its dotted option ``name``, the Optuna ``distribution``, and whether it is a
    categorical whose choices are lists or mappings (``structured``: stored in the study as JSON text)."""

    name: str
    distribution: Any  # an optuna.distributions.BaseDistribution
    structured: bool = False

    @property
    def is_categorical(self) -> bool:
        return hasattr(self.distribution, "choices")

    def decode(self, stored: Any) -> Any:
        """The setting's value from what the study stores."""
        return json.loads(stored) if self.structured else stored

    def corners(self) -> list[Any]:
        """Values that together exercise the whole range: both ends of a number, every categorical choice."""
        if self.is_categorical:
            return [self.decode(c) for c in self.distribution.choices]
        low, high = self.distribution.low, self.distribution.high
        return [low, high] if low != high else [low]

    def sample(self, trial: Any) -> Any:
        """This setting's value for the Optuna ``trial`` (decoded, ready for the fit)."""
        d = self.distribution
        if self.is_categorical:
            return self.decode(trial.suggest_categorical(self.name, d.choices))
        if isinstance(d.low, int):
            return trial.suggest_int(self.name, d.low, d.high, step=d.step, log=d.log)
        return trial.suggest_float(self.name, d.low, d.high, step=d.step, log=d.log)


def option_argument(name: str, value: Any) -> str:
    """The fit command-line argument that sets option ``name`` to ``value`` (the value as JSON, which is YAML)."""
    return f"--{name}={json.dumps(value)}" if not isinstance(value, str) else f"--{name}={value}"


def read_space(path: str | Path) -> list[Dimension]:
    """The dimensions of the search-space file ``path``, or one :class:`SearchSpaceError` naming what is wrong."""

    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SearchSpaceError(f"cannot read the search space {path}: {exc.strerror or exc}") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SearchSpaceError(f"search space {path} is not valid YAML: {' '.join(str(exc).split())}") from exc
    if not isinstance(raw, dict) or not raw:
        raise SearchSpaceError(
            f"search space {path} must map option names to distributions, e.g. "
            "'model.dropout: {categorical: [0.0, 0.1]}'"
        )
    return [_dimension(str(name), spec, path, optuna) for name, spec in raw.items()]


def _dimension(name: str, spec: Any, path: Path, optuna: Any) -> Dimension:
    where = f"search space {path}, {name}"
    if name.startswith("-") or not name.replace("_", "").replace(".", "").isalnum():
        raise SearchSpaceError(f"{where}: a key is an option's dotted name as on the command line, without '--'")
    kinds = [k for k in KINDS if isinstance(spec, dict) and k in spec]
    if len(kinds) != 1:
        raise SearchSpaceError(
            f"{where}: give exactly one of {{float: [low, high]}}, {{int: [low, high]}} or "
            f"{{categorical: [choices]}}, got {spec!r}"
        )
    kind = kinds[0]
    extra = set(spec) - {kind} - OPTIONS[kind]
    if extra:
        raise SearchSpaceError(
            f"{where}: unknown key(s) {sorted(extra)} for a {kind} (allowed: {sorted(OPTIONS[kind])})"
        )
    values = spec[kind]
    if kind == "categorical":
        if not isinstance(values, list) or not values:
            raise SearchSpaceError(f"{where}: categorical takes a non-empty list of choices, got {values!r}")
        structured = any(isinstance(v, (list, dict)) for v in values)
        choices = [json.dumps(v) if structured else v for v in values]
        same = [
            (a, b) for i, a in enumerate(values) for b in values[i + 1 :] if a == b or json.dumps(a) == json.dumps(b)
        ]
        if same:  # Optuna finds a choice by ==: 1, 1.0 and true would all be stored as the first of them
            raise SearchSpaceError(f"{where}: choices {same[0][0]!r} and {same[0][1]!r} are equal; keep one")
        return Dimension(name, optuna.distributions.CategoricalDistribution(choices), structured)
    number = float if kind == "float" else int
    if (
        not isinstance(values, list)
        or len(values) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        or (kind == "int" and not all(float(v).is_integer() for v in values))
        or not all(math.isfinite(v) for v in values)
    ):
        raise SearchSpaceError(f"{where}: {kind} takes [low, high] as two finite {kind}s, got {values!r}")
    low, high = (number(v) for v in values)
    log, step = spec.get("log", False), spec.get("step")
    if not isinstance(log, bool):
        raise SearchSpaceError(f"{where}: log must be true or false, got {log!r}")
    if low > high:
        raise SearchSpaceError(f"{where}: low {low} is above high {high}")
    if log and low <= 0:
        raise SearchSpaceError(f"{where}: a log scale needs low > 0, got {low}")
    if step is not None and (
        log
        or not isinstance(step, (int, float))
        or isinstance(step, bool)
        or step <= 0
        or (kind == "int" and not float(step).is_integer())
    ):
        raise SearchSpaceError(
            f"{where}: step must be {'an integer' if kind == 'int' else 'a number'} > 0 and cannot go with log, "
            f"got {step!r}"
        )
    try:
        if kind == "float":
            distribution = optuna.distributions.FloatDistribution(low, high, log=log, step=step)
        else:
            distribution = optuna.distributions.IntDistribution(int(low), int(high), log=log, step=int(step or 1))
    except ValueError as exc:
        raise SearchSpaceError(f"{where}: {exc}") from exc
    return Dimension(name, distribution)


def suggest(trial: Any, dimensions: list[Dimension]) -> dict[str, Any]:
    """Sample every dimension for ``trial``: ``{option name: value}``."""
    return {d.name: d.sample(trial) for d in dimensions}


def decode_params(dimensions: list[Dimension], params: dict[str, Any]) -> dict[str, Any]:
    """A finished trial's stored ``params`` as option values (JSON-text choices decoded)."""
    by_name = {d.name: d for d in dimensions}
    return {name: by_name[name].decode(value) if name in by_name else value for name, value in params.items()}
