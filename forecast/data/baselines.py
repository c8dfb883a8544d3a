"""What baselines learn from the days up to a given last day (the training end for the test loop, the validation
end for the backtest): a mean daily return, and quantiles of s-step price ratios."""

from __future__ import annotations

import numpy as np

from forecast.data.errors import NotEnoughDataError
from forecast.data.panel import Panel


def _remaining(panel: Panel) -> np.ndarray:
    """Rows left in its ticker after each row ``(T,)``, int32: 0 on a ticker's last day."""
    ends = np.repeat(panel.offsets[1:].astype(np.int32), np.diff(panel.offsets))
    ends -= np.arange(1, len(ends) + 1, dtype=np.int32)
    return ends


def _closes_steps_apart(panel: Panel, step: int, last_day: str, remaining: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Closes ``(c[t], c[t + step])`` of every ticker's pair of rows ``step`` apart whose later day is on or before
    ``last_day``, in row order (each ``(P,)`` dollars). ``remaining``: :func:`_remaining` of the panel."""
    close = panel.close.numpy()
    if step >= len(close):
        return np.empty(0), np.empty(0)
    ok = (remaining[:-step] >= step) & (panel.dates[step:] <= np.datetime64(last_day, "D"))
    return close[:-step][ok], close[step:][ok]


def mean_daily_log_return(panel: Panel, last_day: str) -> float:
    """Mean of ``log(c_{t+1} / c_t)`` over every ticker's consecutive days with ``t + 1`` on or before ``last_day``."""
    before, after = _closes_steps_apart(panel, 1, last_day, _remaining(panel))
    if len(before) == 0:
        raise NotEnoughDataError(f"no training days on or before {last_day} to learn the mean daily return from")
    return float(np.log(after / before).mean())


def naive_quantile_ratios(panel: Panel, last_day: str, levels: list[float], horizon: int) -> np.ndarray:
    """Empirical quantiles ``(Q, H)`` of the s-step price ratio ``c[t+s] / c[t]``, s = 1 .. ``horizon``.

    Over every ticker's pairs with ``c[t+s]`` dated on or before ``last_day`` (the training split's end), pooled
    over tickers. The naive-quantile forecast of a window is its last base value times these ratios.
    """
    remaining = _remaining(panel)
    ratios = np.empty((len(levels), horizon))
    for s in range(1, horizon + 1):
        before, after = _closes_steps_apart(panel, s, last_day, remaining)
        if len(before) == 0:
            raise NotEnoughDataError(f"no training pairs {s} days apart on or before {last_day}")
        ratios[:, s - 1] = np.quantile(after / before, levels)
    return ratios
