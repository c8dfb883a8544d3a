"""The one rule for settings when a checkpoint is given (docs/settings.md has it setting by setting), for its three
uses: ``resume`` (``fit --ckpt_path``), ``warm_start`` (``fit --init_from``) and ``evaluate`` (``validate``,
``test``, ``predict``); and the parse of a command line that gives a checkpoint."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from forecast import checkpoint
from forecast.checkpoint import CheckpointSettings, SettingConflictError, plain_data
from forecast.errors import ConfigError, option

Use = Literal["resume", "warm_start", "evaluate"]
MISSING = object()
log = logging.getLogger(__name__)


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
        names = sorted(set(value) | set(theirs))  # the flag has no "init_args": --model.optimizer.lr
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


def _dotted(sub_config: Any) -> dict[str, Any]:
    """A subcommand's parsed ``model`` and ``data`` settings as plain values by dotted key."""
    return {f"{s}.{k}": plain_data(v) for s in ("model", "data") for k, v in sub_config[s].as_dict().items()}


def _plain_values(parser: Any, parsed: Any, layer: list[str], sub: str) -> dict[str, Any]:
    """The ``model``/``data`` settings set by the configs read that name no checkpoint (an inline config, or one that
    sets ``ckpt_path``/``init_from``, counts as given), as the parser types them (an unquoted ``2014-12-31`` is then
    the command line's text): those configs alone parsed over the checkpoint's ``layer``."""
    before, after, keys = [], [], set()
    configs = [(p, True) for p in parsed.get("config") or []] + [(p, False) for p in parsed[sub].get("config") or []]
    for path, top in configs:
        try:
            loaded = yaml.safe_load(Path(str(path)).read_text()) if path else None
        except (OSError, yaml.YAMLError):
            continue
        section = loaded.get(sub) if top and isinstance(loaded, dict) else loaded
        if isinstance(section, dict) and not (section.get("ckpt_path") or section.get("init_from")):
            (before if top else after).extend(["--config", str(path)])
            keys |= {f"{name}.{k}" for name in ("model", "data") for k in (section.get(name) or {})}
    if not keys:
        return {}
    values = _dotted(parser.parse_args([*layer, *before, sub, *after])[sub])
    return {key: values[key] for key in keys if key in values}


@dataclass(frozen=True)
class Parsed:
    """The settings a command runs with: jsonargparse's ``config``, and with a checkpoint its path and ``use``."""

    config: Any
    ckpt_path: str | None = None
    use: Use | None = None


def parse_with_checkpoint(parser: Any, argv: list[str], runs_of: Any) -> Parsed:
    """Parse ``argv``; when it gives a checkpoint (``--ckpt_path``, or ``fit --init_from``; ``last``/``best`` found
    under ``runs_of(subcommand config)``) apply :func:`apply_rule`. The user's arguments are parsed over the
    checkpoint's values, so a value that still differs was given by a flag or a config (any spelling, before or after
    the subcommand); the plain configs are parsed once more alone, to tell their values from the flags'."""
    config = parser.parse_args(argv)
    sub = config.get("subcommand")
    ckpt_arg = config[sub].get("ckpt_path") if sub else None
    init_from = config[sub].get("init_from") if sub == "fit" else None
    if ckpt_arg and init_from:
        raise ConfigError(
            f"{option('ckpt_path')} resumes a run and {option('init_from')} starts a new one from a checkpoint's "
            "weights: give one"
        )
    if not (ckpt_arg or init_from):
        return Parsed(config)
    use: Use = "evaluate" if sub != "fit" else "resume" if ckpt_arg else "warm_start"
    flag = "--ckpt_path" if ckpt_arg else "--init_from"
    path = checkpoint.resolve_checkpoint(str(ckpt_arg or init_from), runs_of(config[sub]),
                                         config[sub].checkpoint.get("dirpath"), flag)  # fmt: skip
    settings = CheckpointSettings.of(checkpoint.read_checkpoint(path))
    layer = ["--config", json.dumps({sub: checkpoint_defaults(settings, use)})]
    over = parser.parse_args([*layer, *argv])
    # a warm start: every config counts as given
    from_configs = _plain_values(parser, over, layer, sub) if use != "warm_start" else {}
    values = _dotted(over[sub])
    kept = apply_rule(settings, Given(values, from_configs), use)
    dotted_kept = {f"{section}.{k}": v for section, items in kept.items() for k, v in items.items()}
    replaced = [f"{k} {v} -> {dotted_kept[k]}" for k, v in from_configs.items() if dotted_kept.get(k, v) != v]
    if replaced:
        log.warning(
            "the checkpoint's own data settings replace a config's (a config that does not name the checkpoint does "
            "not choose its data; give them as flags, or set ckpt_path in that config): %s",
            "; ".join(replaced),
        )
    # a setting the rule gives back to the user that only the checkpoint's layer set (the source, beside a new path)
    dropped = [
        k for k, v in settings.chosen_data.items() if f"data.{k}" not in dotted_kept and values[f"data.{k}"] == v
    ]
    if replaced or dropped:  # parse again with the checkpoint's layer of what it decides alone, and what it keeps
        fixed = ["--config", json.dumps({sub: checkpoint_defaults(settings, use, chosen=False)})]
        over = parser.parse_args([*fixed, *argv, "--config", json.dumps(kept)])  # after the subcommand: its own
    over[sub][flag[2:]] = path
    restored = ", ".join(f"{k}={v}" for k, v in kept["data"].items() if k in ("source", "path", "predict_set"))
    what = "weights" if use == "warm_start" else "model and data settings"
    log.info("checkpoint %s: %s restored from it (%s)", path, what, restored or "data as given")
    return Parsed(over, path, use)
