"""Baselines learned from the training split alone: a mean daily return, and quantiles of s-step price ratios."""

from __future__ import annotations

import numpy as np

from forecast.data.errors import NotEnoughDataError
from forecast.data.windows import Panel


def _rows_within(panel: Panel, step: int, last_day: str) -> np.ndarray:
    """Rows t whose ticker also has row t + ``step``, dated on or before ``last_day``."""
    owner_end = np.repeat(panel.offsets[1:], np.diff(panel.offsets))  # (T,) the end row of each row's ticker
    rows = np.arange(len(panel.dates))
    later = rows + step
    ok = later < owner_end
    ok[ok] = panel.dates[later[ok]] <= np.datetime64(last_day, "D")
    return rows[ok]


def mean_daily_log_return(panel: Panel, last_day: str) -> float:
    """Mean of ``log(c_{t+1} / c_t)`` over every ticker's consecutive days with ``t + 1`` on or before ``last_day``."""
    rows = _rows_within(panel, 1, last_day)
    if len(rows) == 0:
        raise NotEnoughDataError(f"no training days on or before {last_day} to learn the mean daily return from")
    close = panel.close.numpy()
    return float(np.log(close[rows + 1] / close[rows]).mean())


def naive_quantile_ratios(panel: Panel, last_day: str, levels: list[float], horizon: int) -> np.ndarray:
    """Empirical quantiles ``(Q, H)`` of the s-step price ratio ``c[t+s] / c[t]``, s = 1 .. ``horizon``.

    Over every ticker's pairs with ``c[t+s]`` dated on or before ``last_day`` (the training split's end), pooled
    over tickers. The naive-quantile forecast of a window is its last base value times these ratios.
    """
    close = panel.close.numpy()
    ratios = np.empty((len(levels), horizon))
    for s in range(1, horizon + 1):
        rows = _rows_within(panel, s, last_day)
        if len(rows) == 0:
            raise NotEnoughDataError(f"no training pairs {s} days apart on or before {last_day}")
        ratios[:, s - 1] = np.quantile(close[rows + s] / close[rows], levels)
    return ratios
