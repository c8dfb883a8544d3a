"""How long a notebook waits for ``model.predict(prices, at="latest")``, after ``forecast.load`` (import, load and
the first call excluded: a notebook calls it again and again).

    python scripts/bench_python_predict.py CHECKPOINT PRICES.csv [--repeats 5]

Prints each call's seconds and the median; the target is under 2 s for the 31 DJIA tickers.
"""

from __future__ import annotations

import argparse
import statistics
import time

import pandas as pd

import forecast


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("prices")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    model = forecast.load(args.checkpoint)
    prices = pd.read_csv(args.prices)
    model.predict(prices, at="latest")  # the first call pays one-off costs (calendar, kernels)
    seconds = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        rows = len(model.predict(prices, at="latest"))
        seconds.append(time.perf_counter() - started)
    listed = ", ".join(f"{s:.3f}" for s in seconds)
    print(f"{rows} rows a call; seconds: {listed}; median {statistics.median(seconds):.3f}")


if __name__ == "__main__":
    main()
