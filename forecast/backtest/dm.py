"""The Diebold–Mariano test of equal forecast accuracy, with the Harvey–Leybourne–Newbold correction."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class DMResult:
    """``stat`` < 0: the first forecast's loss is lower. ``p``: two-sided. ``mean``: the mean loss differential
    (dollars for absolute errors). ``n``: the number of periods (origin dates)."""

    stat: float
    p: float
    mean: float
    n: int


def diebold_mariano(differential: np.ndarray, horizon: int) -> DMResult:
    """Test that a loss differential series ``d_t`` (T,) has mean zero, for ``horizon``-step forecasts.

    ``d_t`` is one value per forecast origin, e.g. the mean over tickers and steps of
    ``|e_model| − |e_naive|`` on day t. Forecasts ``horizon`` days ahead from consecutive origins overlap, so
    ``d_t`` is autocorrelated up to lag ``horizon − 1``: its long-run variance is estimated by Newey–West
    (Bartlett weights ``1 − k / horizon`` for lags ``k = 1 .. horizon − 1``; always non-negative), the statistic
    ``d̄ / sqrt(V / T)`` is multiplied by the Harvey–Leybourne–Newbold factor
    ``sqrt((T + 1 − 2h + h(h − 1) / T) / T)`` and compared with Student's t with ``T − 1`` degrees of freedom.

    With ``horizon = 1`` this is exactly the one-sample t-test of ``d_t``.
    """
    d = np.asarray(differential, dtype=np.float64)
    n = len(d)
    if n < 2 or not np.isfinite(d).all():
        raise ValueError(f"the Diebold–Mariano test needs two or more finite values, got {n}")
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    mean = float(d.mean())
    dev = d - mean
    variance = float(dev @ dev) / n
    lags = min(horizon - 1, n - 1)
    for k in range(1, lags + 1):
        variance += 2 * (1 - k / horizon) * float(dev[k:] @ dev[:-k]) / n
    if variance <= 0:  # every differential equal: no spread to test against
        return DMResult(stat=0.0 if mean == 0 else math.copysign(math.inf, mean), p=float(mean == 0), mean=mean, n=n)
    correction = math.sqrt((n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n)
    stat = mean / math.sqrt(variance / n) * correction
    p = float(2 * stats.t.sf(abs(stat), df=n - 1))
    return DMResult(stat=stat, p=p, mean=mean, n=n)
