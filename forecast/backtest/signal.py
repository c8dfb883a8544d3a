"""Is a forecast worth acting on? Cross-sectional signal of a fold's forecasts: IC, hit rate, long-short spread.

Everything is computed per origin date t across the tickers that have a window there, from the forecast and
realised h-day returns over the last base close ``c_t``::

    f_i = F_{i,t+h} / c_{i,t} − 1          (forecast return of ticker i, step h)
    r_i = c_{i,t+h} / c_{i,t} − 1          (realised return)
    IC_t  = Spearman rank correlation of (f_i, r_i) over i          (needs 3 or more tickers)
    hit_t = share of i with sign(f_i − mean f) = sign(r_i − mean r)  (the right side of the day's mean)
    w_i   = +1/k for the k = ⌊n/3⌋ highest f, −1/k for the k lowest, 0 otherwise
    LS_t  = Σ_i w_i · r_i · 10⁴                                      (long-short h-day return, basis points)
    turnover_t = Σ_i |w_{i,t} − w_{i,t−h}|                           (the first h origins: Σ|w|)
    net_t = LS_t − cost · turnover_t                                 (cost in bp a side: each unit traded pays it)

The book formed at origin t is held h days: h books overlap, each of 1/h of the capital, and book t replaces the
one formed h origins earlier (the Jegadeesh–Titman construction). So book t's h-day return pays for trading from
book t−h to book t; charging only the change from the previous day's book would understate the costs about
threefold for h = 10 (neighbouring books share most names).

The daily series of the overlapping books, as the cumulative curve counts them: origin t's net h-day return spread
over its h days, ``daily_t = net_t / h`` (bp of the capital). From it, over a year or pooled::

    annual return = 252 · mean(daily)        volatility = √252 · std(daily)        Sharpe = return / volatility
    max drawdown  = max_t (max_{u ≤ t} C_u − C_t),  C_t = Σ_{u ≤ t} daily_u   (additive, % of the capital)

(no risk-free rate: the book is dollar-neutral). Consecutive daily values share h − 1 books, so they are smoother
than a book's own daily returns: read the volatility and Sharpe as those of this series, not as a trading record.

Over a year: mean IC, its standard deviation, ICIR = mean / std, and for the IC, LS and net series the
significance of their mean by :func:`forecast.backtest.dm.diebold_mariano` (the series overlap as the loss
differentials do: h-day returns from consecutive origins). Per step s = 1 .. h, the mean IC of step s returns.
With a quantile model, ``width_ic`` is the mean over dates of the Spearman correlation of the relative width of
the central interval at step h, ``(F^{hi} − F^{lo}) / c``, with ``|r|``: does it know when it is unsure?

The mean-return and naive baselines give every ticker the same return: they carry no cross-sectional signal,
so any IC the model has is its own.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from forecast.backtest.dm import diebold_mariano, min_periods

MIN_TICKERS = 3
"""Fewest tickers on an origin date for its IC, hit rate and long-short spread (a rank correlation of two
points is ±1 whatever the forecast)."""


@dataclass(frozen=True)
class SignalSeries:
    """Per origin date (the index, sorted ``datetime64[D]``): ``ic``, ``hit`` (fraction), ``spread`` (bp, before
    costs), ``turnover`` (units of capital traded replacing the book of h origins earlier), ``ic_step`` (D, H) and
    ``width_ic`` (or None)."""

    ic: pd.Series
    hit: pd.Series
    spread: pd.Series
    turnover: pd.Series
    ic_step: pd.DataFrame
    width_ic: pd.Series | None = None


def cross_section(values: np.ndarray, dates: np.ndarray, tickers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Windows' ``values`` (N,) as a matrix ``(D, K)``: one row per origin date (sorted), one column per ticker,
    NaN where the ticker has no window that day. Returns the matrix and the dates ``(D,)``."""
    days, row = np.unique(dates, return_inverse=True)
    _, column = np.unique(tickers, return_inverse=True)
    matrix = np.full((len(days), column.max(initial=-1) + 1), np.nan)
    matrix[row, column] = values
    return matrix, days


def _row_mean(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Mean of each row of ``values`` (D, K) over its ``valid`` columns, as ``(D, 1)``; 0 for a row with none."""
    return np.where(valid, values, 0.0).sum(axis=1, keepdims=True) / np.maximum(valid.sum(axis=1, keepdims=True), 1)


def rank_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman correlation of each row of ``a`` and ``b`` ``(D, K)`` over the columns where both are finite
    (average ranks for ties); NaN for a row with fewer than :data:`MIN_TICKERS` such columns or a constant side.
    """
    both = np.isfinite(a) & np.isfinite(b)
    ranks = [rankdata(np.where(both, x, np.nan), axis=1, nan_policy="omit") for x in (a, b)]
    count = both.sum(axis=1)
    centred = [np.where(both, r - _row_mean(r, both), 0.0) for r in ranks]
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (centred[0] * centred[1]).sum(axis=1) / np.sqrt(
            (centred[0] ** 2).sum(axis=1) * (centred[1] ** 2).sum(axis=1)
        )
    return np.where(count >= MIN_TICKERS, rho, np.nan)


def long_short_weights(forecast: np.ndarray) -> np.ndarray:
    """Weights ``(D, K)`` of the long-short book: +1/k on the k = ⌊n/3⌋ highest forecasts of a row, −1/k on the k
    lowest, 0 elsewhere and on rows with fewer than :data:`MIN_TICKERS` finite forecasts (ties: the earlier column
    ranks lower)."""
    valid = np.isfinite(forecast)
    n = valid.sum(axis=1, keepdims=True)
    k = n // 3
    rank = rankdata(np.where(valid, forecast, np.nan), axis=1, method="ordinal", nan_policy="omit")  # 1 .. n
    with np.errstate(invalid="ignore", divide="ignore"):
        weight = np.where(rank > n - k, 1.0 / k, 0.0) - np.where(rank <= k, 1.0 / k, 0.0)
    return np.where(valid & (n >= MIN_TICKERS), weight, 0.0)


def book_turnover(weights: np.ndarray, horizon: int) -> np.ndarray:
    """``(D,)``: the capital traded when book t (row t of ``weights`` (D, K)) replaces book t − h, ``Σ|w_t − w_{t−h}|``;
    the first h books are built from nothing (``Σ|w_t|``)."""
    previous = np.concatenate([np.zeros((min(horizon, len(weights)), weights.shape[1])), weights[:-horizon]])
    return np.abs(weights - previous).sum(axis=1)


def hit_rate(forecast: np.ndarray, realised: np.ndarray) -> np.ndarray:
    """Per row of ``(D, K)`` matrices, the share of finite columns whose forecast and realised values lie on the
    same side of their row's mean; NaN for rows with fewer than :data:`MIN_TICKERS`."""
    valid = np.isfinite(forecast) & np.isfinite(realised)
    count = valid.sum(axis=1)
    f, r = forecast - _row_mean(forecast, valid), realised - _row_mean(realised, valid)
    hits = (valid & (np.sign(f) == np.sign(r))).sum(axis=1) / np.maximum(count, 1)
    return np.where(count >= MIN_TICKERS, hits, np.nan)


def signal_series(
    last: np.ndarray,
    forecast: np.ndarray,
    target: np.ndarray,
    dates: np.ndarray,
    tickers: np.ndarray,
    width: np.ndarray | None = None,
) -> SignalSeries | None:
    """The per-date series of the module's formulas from a fold's windows: ``last`` close (N,), ``forecast`` and
    ``target`` (N, H) dollars, origin ``dates`` and ``tickers`` (N,), and an interval ``width`` at step h (N,)
    dollars or None. None when no origin date has :data:`MIN_TICKERS` tickers (a universe of one or two)."""
    horizon = forecast.shape[1]
    forecast_return = forecast / last[:, None] - 1  # (N, H)
    realised = target / last[:, None] - 1
    f, days = cross_section(forecast_return[:, -1], dates, tickers)
    r, _ = cross_section(realised[:, -1], dates, tickers)
    ic = rank_correlation(f, r)
    keep = np.isfinite(ic)
    if not keep.any():
        return None
    weights = long_short_weights(f)
    turnover = book_turnover(weights, horizon)
    spread = np.nansum(weights * r, axis=1) * 1e4
    ic_step = np.stack(
        [
            rank_correlation(
                cross_section(forecast_return[:, s], dates, tickers)[0],
                cross_section(realised[:, s], dates, tickers)[0],
            )
            for s in range(horizon)
        ],
        axis=1,
    )
    index = pd.Index(days.astype("datetime64[D]"), name="origin_date")

    def series(values: np.ndarray) -> pd.Series:
        return pd.Series(values, index=index)[keep]

    width_ic = None
    if width is not None:
        width_ic = series(rank_correlation(cross_section(width / last, dates, tickers)[0], np.abs(r)))
    return SignalSeries(
        ic=series(ic),
        hit=series(hit_rate(f, r)),
        spread=series(spread),
        turnover=series(turnover),
        ic_step=pd.DataFrame(ic_step, index=index, columns=range(1, horizon + 1))[keep],
        width_ic=width_ic,
    )


def combine(parts: list[SignalSeries], how: str) -> SignalSeries:
    """Several folds' series as one: ``how="mean"`` averages them date by date (the seeds of one year: the signal of
    the average seed), ``how="concat"`` puts them one after another (years, for the pooled numbers)."""

    def join(values: list[Any]) -> Any:
        if values[0] is None:
            return None
        stacked = pd.concat(values)
        return stacked if how == "concat" else stacked.groupby(level=0).mean()

    return SignalSeries(**{field.name: join([getattr(p, field.name) for p in parts]) for field in fields(SignalSeries)})


def net_return(series: SignalSeries, cost_bps: float) -> pd.Series:
    """The long-short h-day return after costs per date, bp: ``spread − cost_bps · turnover``."""
    return series.spread - cost_bps * series.turnover


def _test(series: pd.Series, horizon: int) -> tuple[float | None, float | None]:
    """The DM statistic and p-value of the series' mean, or (None, None) with too few dates to test."""
    if len(series) < min_periods(horizon):
        return None, None
    result = diebold_mariano(series.to_numpy(), horizon)
    return result.stat, result.p


def book_stats(net: pd.Series, horizon: int) -> dict[str, float | None]:
    """``annual_return_pct``, ``volatility_pct``, ``sharpe`` and ``max_drawdown_pct`` of the module's formulas from
    the net h-day returns per origin (bp); Sharpe None when the series does not vary."""
    daily = net.to_numpy(dtype=np.float64) / horizon / 100  # % of the capital
    cumulative = np.cumsum(daily)
    volatility = float(np.sqrt(252) * daily.std(ddof=1)) if len(daily) > 1 else float("nan")
    annual = float(252 * daily.mean())
    return {
        "annual_return_pct": annual,
        "volatility_pct": volatility,
        "sharpe": annual / volatility if volatility > 0 else None,
        "max_drawdown_pct": float((np.maximum.accumulate(np.maximum(cumulative, 0.0)) - cumulative).max()),
    }


def signal_stats(series: SignalSeries, horizon: int, cost_bps: float) -> dict[str, Any]:
    """The year's (or pooled) numbers of the module's formulas: ``dates``, ``ic_mean``, ``ic_std``, ``icir``,
    ``ic_t``, ``ic_p``, ``hit_rate``, ``long_short_bps``, ``long_short_t``, ``long_short_p``, ``turnover``,
    ``cost_bps``, ``net_bps``, ``net_t``, ``net_p``, ``ic_step`` (H,), :func:`book_stats`' four, and ``width_ic``
    for a quantile model.
    A t or p is None when there are fewer than ``2 · horizon`` dates."""
    ic_std = float(series.ic.std()) if len(series.ic) > 1 else float("nan")
    net = net_return(series, cost_bps)
    ic_t, ic_p = _test(series.ic, horizon)
    ls_t, ls_p = _test(series.spread, horizon)
    net_t, net_p = _test(net, horizon)
    stats: dict[str, Any] = {
        "dates": len(series.ic),
        "ic_mean": float(series.ic.mean()),
        "ic_std": ic_std,
        "icir": float(series.ic.mean()) / ic_std if ic_std > 0 else None,
        "ic_t": ic_t,
        "ic_p": ic_p,
        "hit_rate": float(series.hit.mean()),
        "long_short_bps": float(series.spread.mean()),
        "long_short_t": ls_t,
        "long_short_p": ls_p,
        "turnover": float(series.turnover.mean()),
        "cost_bps": cost_bps,
        "net_bps": float(net.mean()),
        "net_t": net_t,
        "net_p": net_p,
        "ic_step": [float(v) for v in series.ic_step.mean(axis=0)],
        **book_stats(net, horizon),
    }
    if series.width_ic is not None:
        stats["width_ic"] = float(series.width_ic.mean())
    return stats
