"""The effect of conformal calibration alone: a backtest's own checkpoints, their test windows forecast with and
without the shifts they carry (the same weights, so the checkpoint's choice is not part of the comparison).

Usage:
    python scripts/calibration_control.py BACKTEST_DIR DATA_FILE --years 2010 2011 2012 [--seeds 0 1 2]

For each fold (year, seed) it loads the best checkpoint of ``BACKTEST_DIR/runs/<year>_seed<seed>`` (a backtest run
with ``--data.calibration_fraction``), forecasts the fold's test windows calibrated and uncalibrated, and prints per
year (mean over seeds) the 80 % coverage and the mean pinball loss ($, over the levels and steps) of both.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import forecast
from forecast.backtest.intervals import window_pinball
from forecast.data import StockDataModule


def best_checkpoint(run: Path) -> Path:
    """The fold's best checkpoint (the one its predictions came from): the ``epoch…`` file."""
    return next(p for p in run.glob("lightning_logs/version_*/checkpoints/epoch*.ckpt"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backtest")
    parser.add_argument("data")
    parser.add_argument("--years", type=int, nargs="+", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    print("| year | coverage 80 % uncalibrated | calibrated | pinball $ uncalibrated | calibrated | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    for year in args.years:
        rows = []
        for seed in args.seeds:
            loaded = forecast.load(best_checkpoint(Path(args.backtest) / "runs" / f"{year}_seed{seed}"))
            model, data = loaded.model, loaded.settings["data"]
            settings = {k: v for k, v in data.items() if not k.startswith("_")}
            datamodule = StockDataModule(**(settings | {"source": "csv", "path": args.data}))
            datamodule.setup("test")
            test = datamodule.datasets["test"]
            batch = test.__getitems__(list(range(len(test))))
            levels, target = model.quantile_levels, batch["target"]
            row = []
            with torch.no_grad():
                for calibrated in (False, True):
                    dollars = model.to_dollars(model.adjustment(model(batch["x"], calibrated), batch), batch)
                    covered = ((dollars[:, 0] <= target) & (target <= dollars[:, -1])).double().mean()
                    row.append((float(covered), float(window_pinball(dollars, target, levels).mean())))
            rows.append([row[0][0], row[1][0], row[0][1], row[1][1]])
        c0, c1, p0, p1 = np.mean(rows, axis=0)
        print(f"| {year} | {100 * c0:.1f} % | {100 * c1:.1f} % | {p0:.4f} | {p1:.4f} | {p1 / p0:.4f} |")


if __name__ == "__main__":
    main()
