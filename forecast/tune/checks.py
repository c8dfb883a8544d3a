"""What ``forecast tune`` checks about its search space before any training: each setting is one fit takes (every
categorical choice and both ends of every range through fit's own parser, constructors and optimizer), is not one
the tune sets itself nor one the command line also gives, and leaves every validation year with windows."""

from __future__ import annotations

import argparse
from typing import Any

from forecast.backtest.folds import BacktestError, FoldDates, check_years
from forecast.backtest.walk import OWNED, owned_option, quiet_lightning
from forecast.errors import option
from forecast.tune.space import Dimension, option_argument
from forecast.tune.study import TuneError

TUNE_OWNED = {key: by for key, by in OWNED.items() if key != "seed_everything"}
"""Fit options set for every fold by the tune (``seed_everything`` stays the user's: it seeds every fit)."""

NOT_SEARCHED = {
    **dict.fromkeys(TUNE_OWNED, "is set for each fold by the tune"),
    "seed_everything": "is one seed for every fit (the config's): a seed is not a setting to tune",
    "torch_threads": "sets speed, not the model (and the tune sets it for --jobs N)",
}
"""Options the search space may not hold, and why."""


def check_space(dimensions: list[Dimension], fit_args: list[str], fold: FoldDates, parser: Any) -> None:
    """Give every categorical choice and both ends of every range to fit's ``parser`` and constructors (the other
    settings as configured); one :class:`TuneError` line for the first that is refused."""
    for dimension in dimensions:
        if dimension.name in NOT_SEARCHED:
            raise TuneError(f"search space: {dimension.name} {NOT_SEARCHED[dimension.name]}; remove it")
    given = owned_option(fit_args, {d.name: "" for d in dimensions})
    if given:
        raise TuneError(
            f"{option(given)} is given and the search space also names {given}: a searched setting is the search's; "
            "drop one of them"
        )
    for dimension in dimensions:
        for value in dimension.corners():
            try:
                with quiet_lightning():
                    built = parser.instantiate_classes(
                        parser.parse_args([*fit_args, *fold.arguments(), option_argument(dimension.name, value)])
                    )
                    built.model.configure_optimizers()  # the optimizer and schedule are built only when a fit starts
            except (argparse.ArgumentError, ValueError, TypeError) as exc:
                message = " ".join(str(exc).split())
                raise TuneError(
                    f"search space: {dimension.name} = {value!r} is not accepted by fit: {message[:400]}"
                ) from exc


def check_window_years(datamodule: Any, dimensions: list[Dimension], years: list[int]) -> None:
    """Every year must have windows for the base config and for both ends of a searched base_len or horizon."""
    lengths = {"data.base_len": [datamodule.hparams.base_len], "data.horizon": [datamodule.hparams.horizon]}
    for dimension in dimensions:
        if dimension.name in lengths:
            lengths[dimension.name] += dimension.corners()
    for base_len in lengths["data.base_len"]:
        for horizon in lengths["data.horizon"]:
            try:
                check_years(datamodule.panel, int(base_len), int(horizon), years, True)
            except BacktestError as exc:
                raise TuneError(f"{exc} (data.base_len {base_len}, data.horizon {horizon})") from exc
