"""Would an adaptive calibration help? Rolling split-conformal shifts, offline, on a backtest's quantile predictions.

Usage:
    python scripts/rolling_calibration.py BACKTEST_DIR DATA_FILE --years 2010 2011 2012 [--seeds 0 1 2] [--days 91]

For each origin date t of a fold's test year, each step h and each level τ ≠ 0.5, the shift is the conformal order
statistic (forecast/model/conformal.py) of the log ratios ``log(y / q_τ)`` of the fold's windows whose target day is
realised by t (on or before t, within the last ``--days`` calendar days), applied as ``q_τ · exp(shift)`` to the
windows of origin t; with fewer than 50 such windows the forecast stays as it is. Only targets known at each origin
are used, as an adaptive conformal method (Gibbs & Candès 2021) would. Prints, per year (mean over seeds), the 80 %
coverage and mean pinball loss ($) before and after, and their ratio.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import torch

from forecast.backtest.intervals import window_pinball
from forecast.model.conformal import conformal_shifts

LEVELS = {"q0.1": 0.1, "q0.5": 0.5, "q0.9": 0.9}


def pinball(quantiles: np.ndarray, target: np.ndarray) -> float:
    """Mean pinball loss over the levels of ``quantiles`` ``(N, 3)`` against ``target`` ``(N,)`` (a row a window and
    step: the backtest's own window pinball of one-step windows)."""
    as_windows = torch.tensor(quantiles)[:, :, None], torch.tensor(target)[:, None]
    return float(window_pinball(*as_windows, list(LEVELS.values())).mean())


def rolling(predictions: pd.DataFrame, days: int) -> np.ndarray:
    """The shifted quantiles ``(N, 3)`` of a fold's predictions (with their realised ``y``): the model's own conformal
    shifts (:func:`conformal_shifts`) of the log forecasts, from the windows realised by each origin."""
    out = predictions[list(LEVELS)].to_numpy().copy()
    origin, target_day, step = (predictions[c].to_numpy() for c in ("origin_date", "target_date", "step"))
    log_q = torch.from_numpy(np.log(out))[:, :, None]  # (N, 3, 1): each row a one-step window
    log_y = torch.from_numpy(np.log(predictions["y"].to_numpy()))[:, None]  # (N, 1)
    for t in np.unique(origin):
        known = (target_day <= t) & (target_day > t - np.timedelta64(days, "D"))
        for h in np.unique(step):
            past, now = known & (step == h), (origin == t) & (step == h)
            if past.sum() < 50:
                continue
            shifts = conformal_shifts(log_q[past], log_y[past], list(LEVELS.values()))  # (3, 1), the median's 0
            out[now] *= np.exp(shifts[:, 0].numpy())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backtest")
    parser.add_argument("data")
    parser.add_argument("--years", type=int, nargs="+", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--days", type=int, default=91)
    args = parser.parse_args()
    prices = pd.read_csv(args.data, usecols=["Date", "Close", "Name"], parse_dates=["Date"])
    close = prices.set_index(["Name", "Date"])["Close"]
    print("| year | coverage 80 % before | after | pinball $ before | after | after / before |")
    print("|---|---:|---:|---:|---:|---:|")
    for year in args.years:
        rows = []
        for seed in args.seeds:
            p = pd.read_csv(
                f"{args.backtest}/predictions/{year}_seed{seed}.csv", parse_dates=["origin_date", "target_date"]
            )
            p["y"] = close.reindex(pd.MultiIndex.from_arrays([p["Name"], p["target_date"]])).to_numpy()
            y, before, after = p["y"].to_numpy(), p[list(LEVELS)].to_numpy(), rolling(p, args.days)
            covered = [np.mean((q[:, 0] <= y) & (y <= q[:, 2])) for q in (before, after)]
            rows.append([*covered, pinball(before, y), pinball(after, y)])
        c0, c1, p0, p1 = np.mean(rows, axis=0)
        print(f"| {year} | {100 * c0:.1f} % | {100 * c1:.1f} % | {p0:.4f} | {p1:.4f} | {p1 / p0:.4f} |")


if __name__ == "__main__":
    main()
