"""Score a fold's predictions file against the price panel: the model, three baselines, and their DM tests.

The predictions file is the protocol's (``Name,origin_date,target_date,step,forecast``); everything else —
the true closes, the naive, drift and mean-return forecasts — comes from the panel, so the score needs no
output of the model but the file, and a file that does not hold exactly the fold's test windows is an error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from forecast.backtest.dm import DMResult, diebold_mariano
from forecast.backtest.folds import BacktestError, FoldDates
from forecast.data.baselines import mean_daily_log_return, naive_quantile_ratios
from forecast.data.windows import Panel, date_splits
from forecast.model.metrics import (
    drift_forecast,
    in_percent,
    naive_forecast,
    naive_quantile_forecast,
    point_metrics,
)
from forecast.model.quantiles import IntervalMetrics

BASELINES = ("naive", "drift", "mean_return")
"""naive: the last base value; drift: the line through the first and last base values; mean_return: the last
base value grown at the training split's mean daily log-return (pooled over tickers)."""


@dataclass
class FoldScore:
    """MAE ($) and relMAE of each forecaster (and in ``metrics`` the protocol's whole table: ``mae``, ``rmse`` in
    dollars, ``mape``, ``smape`` in %, ``rel_mae``), and per origin date the loss differential against naive.

    ``differential[name]``: a Series indexed by origin date (sorted), the mean over tickers and steps of
    ``|e_name| − |e_naive|`` in dollars; its DM test is ``dm[name]``.
    """

    metrics: dict[str, dict[str, float]]
    differential: dict[str, pd.Series]
    dm: dict[str, DMResult]
    windows: int
    intervals: dict[str, float] | None = None
    """For a quantile model's file: ``scaled_pinball``, ``pinball_<level>`` ($), ``coverage_<n>`` and
    ``width_<n>`` ($) of each central interval of n %."""

    @property
    def mae(self) -> dict[str, float]:
        return {name: values["mae"] for name, values in self.metrics.items()}

    @property
    def rel_mae(self) -> dict[str, float]:
        return {name: values["rel_mae"] for name, values in self.metrics.items()}


def _days(column: pd.Series) -> np.ndarray:
    """A column of ``YYYY-MM-DD`` dates as ``datetime64[D]``; NaT where a value is not a date."""
    return pd.to_datetime(column.astype(str), format="ISO8601", errors="coerce").to_numpy().astype("datetime64[D]")


def _origin_rows(panel: Panel, frame: pd.DataFrame) -> np.ndarray:
    """Row in the panel of each prediction's (Name, origin_date); -1 where there is none.

    Rows are found by binary search on a (ticker, day) key, sorted as the panel's rows are: 8 bytes a row of the
    panel, where an index of names and date strings took about 60 (1.5 GB for 25 M rows, built for every fold).
    """
    owner = np.repeat(np.arange(len(panel.names), dtype=np.int64), np.diff(panel.offsets))
    panel_keys = (owner << 32) + panel.dates.astype(np.int64)  # days since 1970: |days| < 2**31
    del owner
    ticker = frame["Name"].astype(str).map({name: k for k, name in enumerate(panel.names)})
    days = _days(frame["origin_date"])
    valid = ticker.notna().to_numpy() & ~np.isnat(days)
    keys = (ticker.fillna(0).to_numpy(np.int64) << 32) + days.astype(np.int64)
    position = np.minimum(np.searchsorted(panel_keys, keys), len(panel_keys) - 1)
    return np.where(valid & (panel_keys[position] == keys), position, -1)


def fold_forecasts(panel: Panel, predictions: pd.DataFrame, fold: FoldDates, base_len: int, horizon: int) -> dict:
    """The fold's test windows as arrays: ``origin`` rows (N,), ``target`` and each forecaster's ``(N, H)``.

    Raises:
        BacktestError: the file misses or adds windows, steps, or target dates of the fold's test split.
    """
    where = f"predictions for {fold.year}"
    expected = date_splits(panel, base_len, horizon, fold.train_end, fold.val_end, test_end=fold.test_end)["test"]
    expected_origins = expected + base_len - 1  # sorted, as the starts are
    rows = _origin_rows(panel, predictions)
    if (rows < 0).any():
        bad = predictions[rows < 0].iloc[0]
        raise BacktestError(f"{where}: {bad['Name']} has no day {bad['origin_date']} in the data")
    steps = predictions["step"].to_numpy(dtype=np.int64)
    if steps.min(initial=1) < 1 or steps.max(initial=1) > horizon:
        raise BacktestError(f"{where}: steps must be 1 .. {horizon}, found {steps.min()} .. {steps.max()}")
    window = np.minimum(np.searchsorted(expected_origins, rows), max(len(expected) - 1, 0))
    in_split = (expected_origins[window] == rows) if len(expected) else np.zeros(len(rows), dtype=bool)
    if len(predictions) != len(expected) * horizon or not in_split.all():
        raise BacktestError(
            f"{where}: {len(np.unique(rows))} windows in the file, the fold's test split has {len(expected)}; "
            "was it written by another run or for other split dates?"
        )
    cell = window * horizon + steps - 1  # (window, step) of each row
    if (np.bincount(cell, minlength=len(expected) * horizon) != 1).any():
        raise BacktestError(f"{where}: each window needs each step 1 .. {horizon} exactly once")
    target_rows = rows + steps
    named = panel.dates[target_rows] != _days(predictions["target_date"])
    if named.any():
        raise BacktestError(f"{where}: {int(named.sum())} target dates are not the ticker's trading days after origin")

    def by_window(column: str) -> np.ndarray:
        """A column of the file as ``(N, H)``: window by step."""
        out = np.empty(len(expected) * horizon)
        out[cell] = predictions[column].to_numpy(dtype=np.float64)
        return out.reshape(len(expected), horizon)

    forecast = by_window("forecast")
    levels = quantile_columns(predictions)
    quantiles = np.stack([by_window(column) for column in levels.values()], axis=1) if levels else None  # (N, Q, H)
    close = panel.close
    origin = torch.as_tensor(expected_origins)
    base = close[origin[:, None] + torch.arange(-base_len + 1, 1)]  # (N, L) dollars
    target = close[origin[:, None] + torch.arange(1, horizon + 1)]  # (N, H) dollars
    mu = mean_daily_log_return(panel, fold.train_end)
    steps_ahead = torch.arange(1, horizon + 1, dtype=torch.float64)
    arrays = {
        "origin": expected_origins,
        "target": target,
        "model": torch.from_numpy(forecast),
        "naive": naive_forecast(base, horizon),
        "drift": drift_forecast(base, horizon),
        "mean_return": base[:, -1:] * torch.exp(mu * steps_ahead),
    }
    if quantiles is not None:
        ratios = naive_quantile_ratios(panel, fold.train_end, list(levels), horizon)
        arrays["quantiles"] = torch.from_numpy(quantiles)
        arrays["naive_quantiles"] = naive_quantile_forecast(base, torch.from_numpy(ratios))
        arrays["levels"] = list(levels)
    return arrays


def quantile_columns(predictions: pd.DataFrame) -> dict[float, str]:
    """``{level: column}`` of a predictions file's quantile columns (``q0.1``, ...), in increasing level."""
    found = {}
    for column in predictions.columns:
        if column.startswith("q"):
            try:
                found[float(column[1:])] = column
            except ValueError:
                continue
    return dict(sorted(found.items()))


def interval_scores(arrays: dict) -> dict[str, float]:
    """Pinball, scaled pinball, coverage and width of a fold's quantile forecasts (as in the test loop)."""
    try:
        metric = IntervalMetrics(arrays["levels"], arrays["target"].shape[1])
    except ValueError as exc:
        raise BacktestError(f"the predictions' quantile columns: {exc}") from exc
    metric.update(arrays["quantiles"], arrays["target"], arrays["naive_quantiles"])
    return {name: float(value) for name, value in metric.named(metric.summary()).items()}


def score_fold(panel: Panel, predictions: pd.DataFrame, fold: FoldDates, base_len: int, horizon: int) -> FoldScore:
    """MAE, relMAE and the DM test against naive of the model and each baseline on the fold's test windows."""
    arrays = fold_forecasts(panel, predictions, fold, base_len, horizon)
    target = arrays["target"]
    names = ("model", *BASELINES)
    collection, metrics = point_metrics(), {}
    for name in names:  # the same metrics as the test loop's (ForecastMetrics)
        collection.reset()
        collection.update(arrays[name].reshape(-1), target.reshape(-1))
        metrics[name] = {k: float(v) for k, v in in_percent(dict(collection.compute())).items()}
    for values in metrics.values():
        values["rel_mae"] = values["mae"] / metrics["naive"]["mae"]
    dates = pd.Index(panel.dates[arrays["origin"]], name="origin_date")
    naive_loss = (arrays["naive"] - target).abs().mean(dim=1)
    differential, dm = {}, {}
    for name in names:
        if name == "naive":
            continue
        per_window = ((arrays[name] - target).abs().mean(dim=1) - naive_loss).numpy()
        series = pd.Series(per_window, index=dates).groupby(level=0).mean().sort_index()
        differential[name] = series
        dm[name] = diebold_mariano(series.to_numpy(), horizon)
    return FoldScore(
        metrics=metrics,
        differential=differential,
        dm=dm,
        windows=len(arrays["origin"]),
        intervals=interval_scores(arrays) if "quantiles" in arrays else None,
    )
