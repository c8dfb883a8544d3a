"""Time and memory of scoring one backtest fold (``score_fold``) on a large panel.

Usage:
    python scripts/bench_scoring.py --csv PATH [--year 2017] [--base-len 30] [--horizon 10]

Reads the panel (a CSV such as ``scripts/bench_data.py --csv PATH`` writes), builds the predictions file of the
year's fold in memory — every test window, each step, the naive forecast as the model's, in the protocol's
columns — and times ``score_fold`` on it: finding each prediction's panel row, checking the windows, the baselines
and the Diebold–Mariano tests. Prints the time and the process's peak RSS before and after.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import pandas as pd

from forecast.backtest.folds import FoldDates
from forecast.backtest.scoring import score_fold
from forecast.data import StockDataModule
from forecast.data.windows import date_splits


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", required=True)
    parser.add_argument("--year", type=int, default=2017)
    parser.add_argument("--base-len", type=int, default=30)
    parser.add_argument("--horizon", type=int, default=10)
    args = parser.parse_args()
    panel = StockDataModule(source="csv", path=args.csv).load_panel()
    fold = FoldDates(args.year)
    starts = date_splits(panel, args.base_len, args.horizon, fold.train_end, fold.val_end, test_end=fold.test_end)
    origins = starts["test"] + args.base_len - 1
    steps = np.tile(np.arange(1, args.horizon + 1), len(origins))
    rows = np.repeat(origins, args.horizon)
    names = np.asarray(panel.names, dtype=object)
    predictions = pd.DataFrame(
        {
            "Name": names[panel.ticker_of(rows)],
            "origin_date": np.datetime_as_string(panel.dates[rows]).astype(object),
            "target_date": np.datetime_as_string(panel.dates[rows + steps]).astype(object),
            "step": steps,
            "forecast": panel.close.numpy()[rows],
        }
    )
    before = peak_rss_mb()
    start = time.perf_counter()
    score = score_fold(panel, predictions, fold, args.base_len, args.horizon)
    seconds = time.perf_counter() - start
    print(
        f"score_fold {args.year}: {len(panel.names):,} tickers, {len(panel.dates):,} panel rows, {score.windows:,} "
        f"windows, {len(predictions):,} prediction rows: {seconds:.1f} s, peak RSS {before:,.0f} -> "
        f"{peak_rss_mb():,.0f} MB (model relMAE {score.rel_mae['model']:.4f}: the naive forecast, so 1)"
    )


if __name__ == "__main__":
    main()
