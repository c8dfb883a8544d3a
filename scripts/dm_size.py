"""Size of the backtest's significance tests under the null, by seeded simulation.

    python scripts/dm_size.py [--draws 2000] [--seed 20261202]

Prints the rejection rate at 5 % of (1) the Diebold–Mariano test on MA(h − 1) differentials (h = 10, the sum of
h consecutive shocks: what h-step forecasts from consecutive origins give), with the uniform long-run variance
the backtest uses and with Bartlett weights for comparison, for T = 250 and 1,250 origin dates; (2) the IC test
on forecasts independent of the returns (30 tickers, both overlapping h-day sums).
"""

from __future__ import annotations

import argparse
import math

import numpy as np
from scipy import stats

from forecast.backtest.dm import diebold_mariano
from forecast.backtest.signal import rank_correlation


def bartlett_p(d: np.ndarray, horizon: int) -> float:
    """The p-value with Newey–West (Bartlett) weights 1 − k/h: the estimator the backtest used before."""
    n, dev = len(d), d - d.mean()
    variance = dev @ dev / n + sum(2 * (1 - k / horizon) * (dev[k:] @ dev[:-k]) / n for k in range(1, horizon))
    stat = d.mean() / math.sqrt(variance / n) * math.sqrt((n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n)
    return float(2 * stats.t.sf(abs(stat), n - 1))


def ma_series(rng: np.random.Generator, draws: int, periods: int, horizon: int) -> np.ndarray:
    """``draws`` MA(h − 1) series ``(draws, periods)``: each value the sum of h consecutive standard normal shocks."""
    shocks = rng.normal(size=(draws, periods + horizon - 1))
    return np.stack([shocks[:, k : k + periods] for k in range(horizon)]).sum(axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=20261202)
    args = parser.parse_args()
    rng, horizon = np.random.default_rng(args.seed), 10
    for periods in (250, 1250):
        series = ma_series(rng, args.draws, periods, horizon)
        uniform = np.mean([diebold_mariano(d, horizon).p < 0.05 for d in series])
        bartlett = np.mean([bartlett_p(d, horizon) < 0.05 for d in series])
        print(f"DM, MA(9), T = {periods:5d}, {args.draws} draws: rejects {uniform:.2%} (uniform, the backtest's), "
              f"{bartlett:.2%} (Bartlett)")  # fmt: skip
    draws = args.draws // 4
    rejected = 0
    for _ in range(draws):
        realised = ma_series(rng, 30, 1250, horizon).T  # (dates, tickers)
        forecast = ma_series(rng, 30, 1250, horizon).T
        rejected += diebold_mariano(rank_correlation(forecast, realised), horizon).p < 0.05
    print(f"IC test, independent forecasts, T = 1250, 30 tickers, {draws} draws: rejects {rejected / draws:.2%}")


if __name__ == "__main__":
    main()
