"""How noisy one validation score is, and how optimistic the best of N tuning trials therefore looks.

    .venv/bin/python scripts/seed_noise.py runs/backtest [--trials 30]

Reads a finished backtest's ``backtest.json`` (two or more seeds per year), takes each fold's best validation
relMAE (validation year Y−1 of test year Y), and prints the spread between seeds per year, the standard deviation
of a mean over 3 validation years (seeds independent), and the expected minimum of ``--trials`` settings that are
all equally good — by how much the best trial of a tune beats its true score by chance alone.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backtest", type=Path, help="a backtest folder with backtest.json")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--years", type=int, default=3, help="validation years a trial averages over")
    options = parser.parse_args()
    folds = json.loads((options.backtest / "backtest.json").read_text())["folds"]
    by_year: dict[int, list[float]] = {}
    for fold in folds:
        by_year.setdefault(fold["year"] - 1, []).append(fold["best_val_rel_mae"])
    sds = []
    for year, scores in sorted(by_year.items()):
        sd = float(np.std(scores, ddof=1))
        sds.append(sd)
        print(f"validation year {year}: best val relMAE by seed {np.round(scores, 4).tolist()}, sd {sd:.4f}")
    per_year = float(np.sqrt(np.mean(np.square(sds))))
    of_mean = per_year / np.sqrt(options.years)
    expected_min = np.random.default_rng(0).standard_normal((200_000, options.trials)).min(axis=1).mean()
    print(f"seed sd of one year's score (pooled): {per_year:.4f}; of a {options.years}-year mean: {of_mean:.4f}")
    print(
        f"best of {options.trials} equally good settings looks {-expected_min * of_mean:.4f} better than it is "
        f"(E[min of {options.trials} N(0,1)] = {expected_min:.3f})"
    )


if __name__ == "__main__":
    main()
