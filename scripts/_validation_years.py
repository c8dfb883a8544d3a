"""Not a script: what ``validation_baselines.py`` and ``interval_priors.py`` share — their command line and each
validation year's windows as a validation-only fold sees them (training through Y−1, validation on Y)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from forecast.data import StockDataModule
from forecast.data.baselines import mean_daily_log_return
from forecast.data.panel import Panel
from forecast.data.windows import WindowDataset


def year_parser(description: str) -> argparse.ArgumentParser:
    """``DATA_FILE --years Y ... [--base_len 30] [--horizon 10]``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("data")
    parser.add_argument("--years", type=int, nargs="+", required=True)
    parser.add_argument("--base_len", type=int, default=30)
    parser.add_argument("--horizon", type=int, default=10)
    return parser


@dataclass(frozen=True)
class ValidationYear:
    """Year Y's validation windows: the ``panel``, the ``windows`` (their dataset), one ``batch`` of all of them
    (``base_close`` (N, L), ``target`` (N, H) dollars, ...), ``train_end`` (Y−1's last day) and ``mu``, the mean
    daily log-return of the training days."""

    panel: Panel
    windows: WindowDataset
    batch: dict[str, Any]
    train_end: str
    mu: float


def validation_year(data: str, year: int, base_len: int, horizon: int) -> ValidationYear:
    """The :class:`ValidationYear` of ``year`` in the CSV file ``data``."""
    train_end = f"{year - 1}-12-31"
    dm = StockDataModule(source="csv", path=data, base_len=base_len, horizon=horizon, train_end=train_end,
                         val_end=f"{year}-12-31")  # fmt: skip
    dm.setup("fit")
    windows, panel = dm.datasets["val"], dm.load_panel()
    batch = windows.__getitems__(list(range(len(windows))))
    return ValidationYear(panel, windows, batch, train_end, mean_daily_log_return(panel, train_end))
