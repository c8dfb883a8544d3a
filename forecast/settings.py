"""A command line that gives a checkpoint, parsed by the rule of :func:`forecast.checkpoint.apply_rule`: what the
user gave, by a flag or a config that names the checkpoint (any spelling, before or after the subcommand), told from
what a plain config set (docs/settings.md)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from forecast import checkpoint
from forecast.checkpoint import CheckpointSettings, Given, Use, apply_rule, checkpoint_defaults, plain_data
from forecast.errors import ConfigError, option

log = logging.getLogger(__name__)


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


BATCH_LIMITS = tuple(f"limit_{stage}_batches" for stage in ("train", "val", "test", "predict"))


def _yaml(value: str, files: bool = True) -> Any:
    """An option's value: the file it names (with ``files``), else the text itself (an inline config), as YAML;
    None where it is neither (the parser says what is wrong with it)."""
    try:
        return yaml.safe_load(Path(value).read_text() if files and Path(value).is_file() else value)
    except (OSError, ValueError, yaml.YAMLError):
        return None


def one_batch_limits(argv: list[str]) -> set[str]:
    """The Trainer's ``limit_*_batches`` that the command line, or a config it gives, last set to the integer 1.

    Lightning reads an int as a count of batches and a float as a share of them; jsonargparse hands its ``int |
    float`` values over as floats, so ``--trainer.limit_train_batches 1`` would be 1.0, every batch. The caller gives
    these back their one batch; any other number means the same as an int or a float. Read: ``--config`` (a file or
    inline; its ``trainer`` section, or its subcommand's), ``--trainer`` (a file or inline) and
    ``--trainer.limit_*_batches``, each with a space or ``=``.
    """
    sub = next((token for token in argv if token in ("fit", "validate", "test", "predict")), None)
    last: dict[str, bool] = {}
    for i, token in enumerate(argv):
        name, equals, value = token.partition("=")
        if not equals:
            value = argv[i + 1] if i + 1 < len(argv) else ""
        sets: Any = None
        if name == "--config":
            loaded = _yaml(value)
            sections = [loaded, loaded.get(sub)] if isinstance(loaded, dict) else []
            found = [section.get("trainer") for section in sections if isinstance(section, dict)]
            sets = {k: v for trainer in found if isinstance(trainer, dict) for k, v in trainer.items()}
        elif name == "--trainer":
            sets = _yaml(value)
        elif name.startswith("--trainer."):
            sets = {name[len("--trainer.") :]: _yaml(value, files=False)}
        for key, set_to in sets.items() if isinstance(sets, dict) else ():
            if key in BATCH_LIMITS:
                last[key] = type(set_to) is int and set_to == 1
    return {key for key, one in last.items() if one}
