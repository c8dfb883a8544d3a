"""A seeded generator of a realistic daily price panel in the project's CSV schema (runs offline).

Log-returns follow a one-factor model (a shared market return plus idiosyncratic noise, so tickers are
correlated), each component with GARCH(1,1) volatility (volatility clustering), Student-t innovations
(fat tails) and rare jumps. Open/High/Low are drawn around Close so that Low <= min(Open, Close) and
High >= max(Open, Close); Volume is log-normal and rises with the size of the move.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

COLUMNS = ["Date", "Open", "High", "Low", "Close", "Volume", "Name"]
MAX_DAILY_VARIANCE = 0.1**2


def _garch_path(rng: np.random.Generator, days: int, omega: float, alpha: float, beta: float, dof: float) -> np.ndarray:
    """GARCH(1,1) returns with unit-variance Student-t shocks: (days,) daily log-returns."""
    shocks = rng.standard_t(dof, size=days) / np.sqrt(dof / (dof - 2.0))
    returns = np.empty(days)
    variance = omega / (1.0 - alpha - beta)  # start at the unconditional variance
    for t in range(days):
        returns[t] = np.sqrt(variance) * shocks[t]
        # fat-tailed shocks can start a run of ever larger moves over thousands of paths; no stock's daily
        # volatility stays above 10%, so the variance is capped there
        variance = min(omega + alpha * returns[t] ** 2 + beta * variance, MAX_DAILY_VARIANCE)
    return returns


def synthetic_panel(
    n_tickers: int = 10,
    start: str = "2006-01-03",
    end: str = "2017-12-29",
    seed: int = 0,
) -> pd.DataFrame:
    """Generate a price panel with columns ``Date,Open,High,Low,Close,Volume,Name`` over business days.

    Args:
        n_tickers: number of tickers, named ``SYN00``, ``SYN01``, ...
        start: first business day (inclusive), ``YYYY-MM-DD``.
        end: last business day (inclusive).
        seed: random seed; the same seed gives the same panel.

    Returns:
        One row per ticker and business day, sorted by (Name, Date); prices in dollars, all positive.
    """
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range(start, end)
    days = len(dates)
    # daily variance ~ (1%)^2 for the market, persistence alpha + beta = 0.98 like equity indices
    market = _garch_path(rng, days, omega=2e-6, alpha=0.08, beta=0.90, dof=5.0)
    frames = []
    for i in range(n_tickers):
        beta_i = rng.uniform(0.6, 1.4)
        idio = _garch_path(rng, days, omega=3e-6, alpha=0.06, beta=0.91, dof=4.0)
        jumps = rng.binomial(1, 0.002, size=days) * rng.normal(0.0, 0.08, size=days)
        drift = rng.uniform(0.0, 0.0006)  # per day, a few percent a year
        log_returns = drift + beta_i * market + idio + jumps
        close = rng.uniform(20.0, 200.0) * np.exp(np.cumsum(log_returns))
        prev_close = np.concatenate([[close[0]], close[:-1]])
        open_ = prev_close * np.exp(rng.normal(0.0, 0.004, size=days))
        spread = np.abs(rng.normal(0.0, 0.006, size=days))
        high = np.maximum(open_, close) * np.exp(spread * rng.uniform(0.2, 1.0, size=days))
        low = np.minimum(open_, close) * np.exp(-spread * rng.uniform(0.2, 1.0, size=days))
        # a move beyond 50% (a jump) adds no more volume: the exponent stays finite
        volume = np.exp(rng.normal(15.0, 0.3, size=days) + 20.0 * np.minimum(np.abs(log_returns), 0.5)).round()
        frames.append(
            pd.DataFrame(
                {
                    "Date": dates,
                    "Open": open_.round(2),
                    "High": high.round(2),
                    "Low": low.round(2),
                    "Close": close.round(2).clip(0.01),
                    "Volume": volume.astype(np.int64),
                    "Name": f"SYN{i:02d}",
                }
            )
        )
    panel = pd.concat(frames, ignore_index=True)
    # rounding to cents can break High >= Close by a cent; restore the OHLC ordering exactly
    panel["High"] = panel[["Open", "High", "Close"]].max(axis=1)
    panel["Low"] = panel[["Open", "Low", "Close"]].min(axis=1).clip(lower=0.01)
    return panel[COLUMNS]
