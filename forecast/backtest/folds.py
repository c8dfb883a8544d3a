"""Folds of a walk-forward backtest: which days train, validate and test for each year."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from forecast.backtest.dm import min_periods
from forecast.data.panel import Panel
from forecast.data.windows import date_splits
from forecast.errors import UserError


class BacktestError(UserError):
    """A backtest option that cannot work (a year without data, an output folder in use by other settings...)."""


@dataclass(frozen=True)
class FoldDates:
    """The split dates of the fold whose scored year is ``year`` (the test year; or the validation year of a
    validation-only search).

    Training windows have every target day on or before ``train_end``; validation windows have their targets in
    the year after it; test windows have theirs in ``year`` (when ``validation_only`` is false). Training starts
    at the data's start (an expanding window).
    """

    year: int
    validation_only: bool = False

    @property
    def train_end(self) -> str:
        """Last day of the training targets: Y−2-12-31 (Y−1 for a validation-only fold)."""
        return f"{self.year - (1 if self.validation_only else 2)}-12-31"

    @property
    def val_end(self) -> str:
        """Last day of the validation targets: Y−1-12-31 (Y for a validation-only fold)."""
        return f"{self.year - (0 if self.validation_only else 1)}-12-31"

    @property
    def test_end(self) -> str | None:
        """Last day of the test targets, Y-12-31; None for a validation-only fold."""
        return None if self.validation_only else f"{self.year}-12-31"

    def arguments(self) -> list[str]:
        """The fit/predict options that select this fold's splits."""
        args = ["--data.train_end", self.train_end, "--data.val_end", self.val_end]
        return [*args, "--data.test_end", self.test_end] if self.test_end else args

    def test_origin_dates(self, panel: Panel, base_len: int, horizon: int) -> int:
        """The number of distinct origin dates (trading days) among the fold's test windows."""
        splits = date_splits(panel, base_len, horizon, self.train_end, self.val_end, test_end=self.test_end)
        return len(np.unique(panel.dates[splits["test"] + base_len - 1]))

    def window_counts(self, panel: Panel, base_len: int, horizon: int) -> dict[str, int]:
        """Windows in each split of this fold: ``{split: count}``."""
        splits = date_splits(panel, base_len, horizon, self.train_end, self.val_end, test_end=self.test_end)
        if self.test_end is None:
            splits.pop("test")
        splits.pop("calibration")  # kept apart only when a fit asks (data.calibration_fraction), and checked then
        return {name: len(starts) for name, starts in splits.items()}


def check_years(panel: Panel, base_len: int, horizon: int, years: list[int], validation_only: bool) -> None:
    """One :class:`BacktestError` naming the first year whose fold would have an empty split, and the usable years."""
    first, last = np.datetime_as_string(panel.dates.min()), np.datetime_as_string(panel.dates.max())
    counts = {
        y: FoldDates(y, validation_only).window_counts(panel, base_len, horizon)
        for y in range(int(first[:4]), int(last[:4]) + 1)
    }
    usable = [y for y, count in counts.items() if min(count.values()) > 0]
    span = f"{usable[0]} .. {usable[-1]}" if usable else "none"
    for year in years:
        count = counts.get(year) or FoldDates(year, validation_only).window_counts(panel, base_len, horizon)
        empty = [name for name, n in count.items() if n == 0]
        if empty:
            raise BacktestError(
                f"year {year}: no {' or '.join(empty)} windows in the data ({first} .. {last}, windows of "
                f"{base_len} + {horizon} days); usable years: {span}"
            )
        if not validation_only:  # the year's DM test needs its dates, found now rather than after the training
            dates = FoldDates(year).test_origin_dates(panel, base_len, horizon)
            if dates < min_periods(horizon):
                raise BacktestError(
                    f"year {year}: {dates} test origin dates, and the Diebold–Mariano test of {horizon}-step "
                    f"forecasts needs {min_periods(horizon)} or more; choose years the data covers whole"
                )
