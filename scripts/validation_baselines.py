"""The simple baselines on validation years: relMAE (MAE / naive MAE) of drift and the mean-return drift, so that a
validation-only backtest's ``val relMAE`` can be read against the year's best baseline.

Usage:
    python scripts/validation_baselines.py DATA_FILE --years 2010 2011 2012 [--base_len 30] [--horizon 10]

Each year Y is scored as a validation-only fold sees it: validation windows with their targets in Y, the mean
daily log-return learned from every training day through Y−1 (``forecast.data.baselines``). The model's MAE over
the best baseline's is then ``val relMAE / min(1, drift, mean_return)``.
"""

from __future__ import annotations

import numpy as np
from _validation_years import validation_year, year_parser

from forecast.model.metrics import drift_forecast, mean_return_forecast, naive_forecast


def main() -> None:
    args = year_parser(__doc__.splitlines()[0]).parse_args()
    print("| validation year | drift relMAE | mean-return relMAE | best |")
    print("|---|---:|---:|---|")
    for year in args.years:
        fold = validation_year(args.data, year, args.base_len, args.horizon)
        base, target, mu = fold.batch["base_close"], fold.batch["target"], fold.mu  # (N, L), (N, H) dollars
        forecasts = {
            "naive": naive_forecast(base, args.horizon),
            "drift": drift_forecast(base, args.horizon),
            "mean_return": mean_return_forecast(base, mu, args.horizon),
        }
        mae = {name: float((f - target).abs().mean()) for name, f in forecasts.items()}
        rel = {name: mae[name] / mae["naive"] for name in mae}
        best = min(rel, key=rel.__getitem__)
        print(f"| {year} | {rel['drift']:.4f} | {rel['mean_return']:.4f} | {best} ({np.round(rel[best], 4)}) |")


if __name__ == "__main__":
    main()
