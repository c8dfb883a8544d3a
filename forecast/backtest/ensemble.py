"""The seed ensemble of a backtest year: the mean of its seeds' forecasts, as a predictions file of its own."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from forecast.atomic import write_atomic
from forecast.backtest.folds import BacktestError

KEYS = ["Name", "origin_date", "target_date", "step"]


def ensemble_predictions(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The row-by-row mean of several predictions files of the same windows: ``forecast`` and every quantile
    column (the mean of quantile forecasts is a quantile forecast: Vincentization). Rows in the first file's order.

    Raises:
        BacktestError: the files do not hold the same rows (windows, steps, target dates) or columns.
    """
    first = frames[0]
    values = [c for c in first.columns if c not in KEYS]
    for other in frames[1:]:
        if list(other.columns) != list(first.columns) or len(other) != len(first):
            raise BacktestError("the seeds' predictions files have different columns or rows: not one backtest")
    aligned = [f.set_index(KEYS)[values] for f in frames]
    index = aligned[0].index
    if not index.is_unique or any(not a.index.sort_values().equals(index.sort_values()) for a in aligned[1:]):
        raise BacktestError("the seeds' predictions files hold different windows: not one backtest")
    mean = sum(a.reindex(index) for a in aligned) / len(aligned)
    return mean.reset_index()


def write_predictions(path: Path, frame: pd.DataFrame) -> None:
    """Write a predictions frame as ``predict`` does (6 decimals), atomically."""
    write_atomic(path, lambda tmp: frame.to_csv(tmp, index=False, float_format="%.6f"))
