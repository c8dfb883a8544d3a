"""The one rule for settings when a checkpoint is given, as a pure function.

Three ways a command can use a checkpoint:

- ``resume``: ``fit --ckpt_path`` continues a run — its weights, optimizer, scheduler and epoch count;
- ``warm_start``: ``fit --init_from`` starts a new run from its weights, with a fresh optimizer and schedule;
- ``evaluate``: ``validate``, ``test``, ``predict`` use its weights as they are.

For each setting (dotted, ``model.lookback``):

- settings that decide what the weights mean (:attr:`CheckpointSettings.fixed_model`, ``fixed_data``) come from
  the checkpoint in every use; a different value given anywhere (a flag, any config) is a conflict;
- on ``resume`` the optimizer, the LR scheduler (class and arguments), ``model.lam_lr`` and ``model.init_lam``
  (:attr:`CheckpointSettings.resumed`) come from the checkpoint too, since Lightning restores the optimizer's and
  scheduler's state: a different value is a conflict that points at ``--init_from``;
- the data the checkpoint was trained on (source, path, tickers, split dates, batch size, ...) is the user's when
  given on the command line or in a config that itself names the checkpoint, else the checkpoint's: a config
  that does not name the checkpoint (e.g. the one it was trained with) does not override it, and a warning says
  which of its values the checkpoint replaced. A warm start is a new training run: there every config counts as
  given, and the optimizer, scheduler, ``init_lam`` and ``lam_lr`` are the user's (or the defaults).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from forecast.checkpoint import CheckpointSettings, SettingConflictError, plain_data

Use = Literal["resume", "warm_start", "evaluate"]


class ConfigError(ValueError):
    """A setting the model, the data or the optimizer refuses (raised while building them from the settings)."""


log = logging.getLogger(__name__)

MISSING = object()
"""A setting a config does not set."""


@dataclass(frozen=True)
class Given:
    """What the user gave, as parsed with the checkpoint's values as the defaults.

    Attributes:
        values: every setting after parsing, dotted (``data.path``); a setting the user did not give has the
            checkpoint's value.
        from_configs: the settings that configs not naming the checkpoint set, dotted, with their values.
    """

    values: dict[str, Any]
    from_configs: dict[str, Any]

    def given(self, key: str, theirs: Any) -> bool:
        """Whether the user gave ``key`` a value other than the checkpoint's ``theirs`` on the command line (or in
        a config naming the checkpoint): it differs from ``theirs`` and is not just a plain config's value."""
        value = plain_data(self.values.get(key, theirs))
        return value != theirs and plain_data(self.from_configs.get(key, MISSING)) != value


def _ruled(settings: CheckpointSettings, use: Use) -> tuple[dict[str, Any], dict[str, Any]]:
    """The settings the checkpoint decides (dotted, with its values) and those it supplies unless given."""
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
    ``init_args.lr``, not its whole dictionary)."""
    if isinstance(value, dict) and isinstance(theirs, dict) and value.get("class_path") == theirs.get("class_path"):
        return [
            found
            for name in sorted(set(value) | set(theirs))
            # the flag a user types has no "init_args": --model.optimizer.lr
            for found in _differences(
                key if name == "init_args" else f"{key}.{name}", value.get(name), theirs.get(name)
            )
        ]
    return [] if value == theirs else [(key, value, theirs)]


def _nested(dotted: dict[str, Any]) -> dict[str, dict[str, Any]]:
    nested: dict[str, dict[str, Any]] = {"model": {}, "data": {}}
    for key, value in dotted.items():
        section, _, name = key.partition(".")
        nested[section][name] = value
    return nested


def checkpoint_defaults(settings: CheckpointSettings, use: Use, chosen: bool = True) -> dict[str, dict[str, Any]]:
    """What the checkpoint supplies for ``use``, as ``{"model": ..., "data": ...}``: the defaults to parse the
    user's arguments with, so that any value that still differs afterwards was given by the user. With
    ``chosen=False`` only the settings it decides (the final parse adds :func:`apply_rule`'s after the user's)."""
    fixed, supplied = _ruled(settings, use)
    return _nested(fixed | supplied) if chosen else _nested(fixed)


def apply_rule(settings: CheckpointSettings, given: Given, use: Use) -> dict[str, dict[str, Any]]:
    """The checkpoint's values that the final settings keep over what the user's configs say.

    Returns ``{"model": ..., "data": ...}`` to apply after everything the user gave.

    Raises:
        SettingConflictError: one line naming each conflicting setting, the given and the checkpoint's value,
            and what to do instead.
    """
    fixed, chosen = _ruled(settings, use)
    conflicts = [
        difference
        for key, theirs in fixed.items()
        if key in given.values
        for difference in _differences(key, plain_data(given.values[key]), theirs)
    ]
    if conflicts:
        listed = "; ".join(f"{key} {value} (the checkpoint has {theirs})" for key, value, theirs in conflicts)
        if any(key.startswith("model.") and key.split(".")[1] in settings.resumed for key, _, _ in conflicts):
            advice = (
                "a resume continues the checkpoint's optimizer and schedule; to train its weights with new ones, "
                "start a new run with --init_from instead of --ckpt_path"
            )
        else:
            advice = "the checkpoint's value decides what its weights mean; drop the option (or the config's value)"
        raise SettingConflictError(f"{listed}: {advice}, or train a new model")
    given_keys = {key for key, theirs in chosen.items() if given.given(key, theirs)}
    if {"data.source", "data.path"} & given_keys:  # a new origin of the data replaces both
        given_keys |= {"data.source", "data.path"}
    return _nested({key: theirs for key, theirs in chosen.items() if key not in given_keys})


def given_by_parser(parser: Any, parsed: Any, sub: str) -> Given:
    """What the user gave, from a jsonargparse result ``parsed`` (parsed with the checkpoint's values as the
    first config) of subcommand ``sub``: its settings, and the values of the config files it read."""
    return Given(values=_dotted(parsed[sub]), from_configs=_plain_config_values(parser, parsed, sub))


def _dotted(sub_config: Any) -> dict[str, Any]:
    """The parsed ``model`` and ``data`` settings of a subcommand as plain values by dotted key."""
    return {
        f"{section}.{key}": plain_data(value)
        for section in ("model", "data")
        for key, value in sub_config[section].as_dict().items()
    }


def _replaced(from_configs: dict[str, Any], kept: dict[str, dict[str, Any]]) -> list[str]:
    """``key config-value -> checkpoint-value`` for each config value that the checkpoint's kept value replaces."""
    found = []
    for key, value in from_configs.items():
        section, _, name = key.partition(".")
        if name in kept.get(section, {}) and value != kept[section][name]:
            found.append(f"{key} {value} -> {kept[section][name]}")
    return found


def _plain_config_values(parser: Any, parsed: Any, sub: str) -> dict[str, Any]:
    """``model``/``data`` settings (dotted) set by the config files the parser read that do not name a checkpoint,
    with the values the parser gives them (an unquoted ``2014-12-31`` is the same text as the command line's).

    A config that sets ``ckpt_path`` or ``init_from`` itself is about that checkpoint: its values count as given.
    Inline configs (a YAML string instead of a file) count as given too.
    """
    found: dict[str, Any] = {}
    files = [(path, True) for path in parsed.get("config") or []]
    files += [(path, False) for path in parsed[sub].get("config") or []]
    for path, top_level in files:
        try:
            loaded = yaml.safe_load(Path(str(path)).read_text()) if path else None
        except (OSError, yaml.YAMLError):
            loaded = None
        section = (loaded or {}).get(sub) if top_level and isinstance(loaded, dict) else loaded
        if not isinstance(section, dict) or section.get("ckpt_path") or section.get("init_from"):
            continue
        keys = [f"{name}.{k}" for name in ("model", "data") for k in (section.get(name) or {})]
        alone = ["--config", str(path), sub] if top_level else [sub, "--config", str(path)]
        try:  # the parser's reading of this config alone: its values typed as the real parse types them
            values = _dotted(parser.parse_args(alone)[sub])
        except Exception:  # a fragment that does not parse alone: its keys, as YAML reads them
            values = {
                f"{name}.{k}": plain_data(v) for name in ("model", "data") for k, v in (section.get(name) or {}).items()
            }
        found |= {key: values[key] for key in keys if key in values}
    return found


@dataclass(frozen=True)
class Parsed:
    """The settings a command runs with: ``config`` (jsonargparse's), and when a checkpoint is given its path,
    its ``use`` and the checkpoint's values ``kept`` over the user's configs."""

    config: Any
    ckpt_path: str | None = None
    use: Use | None = None
    kept: dict[str, dict[str, Any]] | None = None


def parse_with_checkpoint(parser: Any, argv: list[str], runs_of: Any) -> Parsed:
    """Parse ``argv``, then apply :func:`apply_rule` when a checkpoint is given (``--ckpt_path``, or ``fit
    --init_from``; ``last``/``best`` found under ``runs_of(subcommand config)``).

    What the user gave, and where, is read from the parser itself: the arguments are parsed with the checkpoint's
    values as the first config, so a value that still differs was given by a flag or a config (any spelling,
    before or after the subcommand), and the parsed ``config`` entries say which configs were read.
    """
    from forecast.checkpoint import CheckpointSettings, read_checkpoint, resolve_checkpoint

    config = parser.parse_args(argv)
    sub = config.get("subcommand")
    ckpt_arg = config[sub].get("ckpt_path") if sub else None
    init_from = config[sub].get("init_from") if sub == "fit" else None
    if ckpt_arg and init_from:
        raise ConfigError(
            "--ckpt_path resumes a run and --init_from starts a new one from a checkpoint's weights: give one"
        )
    if not (ckpt_arg or init_from):
        return Parsed(config)
    use: Use = "evaluate" if sub != "fit" else "resume" if ckpt_arg else "warm_start"
    flag = "--ckpt_path" if ckpt_arg else "--init_from"
    ckpt_path = resolve_checkpoint(
        str(ckpt_arg or init_from), runs_of(config[sub]), config[sub].checkpoint.get("dirpath"), flag
    )
    settings = CheckpointSettings.of(read_checkpoint(ckpt_path))
    over_checkpoint = parser.parse_args(["--config", json.dumps({sub: checkpoint_defaults(settings, use)}), *argv])
    given = given_by_parser(parser, over_checkpoint, sub)
    if use == "warm_start":  # a new training run: every config counts as given
        given = Given(given.values, from_configs={})
    kept = apply_rule(settings, given, use)
    replaced = _replaced(given.from_configs, kept)
    if replaced:
        log.warning(
            "the checkpoint's own data settings replace a config's (a config that does not name the checkpoint does "
            "not choose its data; give them as flags, or set ckpt_path in that config): %s",
            "; ".join(replaced),
        )
    fixed = ["--config", json.dumps({sub: checkpoint_defaults(settings, use, chosen=False)})]
    final = parser.parse_args([*fixed, *argv, "--config", json.dumps(kept), flag, ckpt_path])
    restored = ", ".join(f"{k}={v}" for k, v in kept["data"].items() if k in ("source", "path", "predict_set"))
    what = "weights" if use == "warm_start" else "model and data settings"
    log.info("checkpoint %s: %s restored from it (%s)", ckpt_path, what, restored or "data as given")
    return Parsed(final, ckpt_path, use, kept)
