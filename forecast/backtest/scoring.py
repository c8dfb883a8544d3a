"""Score a fold's predictions file against the price panel: the model, three baselines, and their DM tests.

The predictions file is the protocol's (``Name,origin_date,target_date,step,forecast``); everything else —
the true closes, the naive, drift and mean-return forecasts — comes from the panel, so the score needs no
output of the model but the file, and a file that does not hold exactly the fold's test windows is an error.
Baselines learn from every day up to the fold's validation end (Y−1), as the model's checkpoint choice does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from forecast.backtest.dm import DMResult, diebold_mariano, per_date
from forecast.backtest.folds import BacktestError, FoldDates
from forecast.backtest.garch import garch_forecast
from forecast.backtest.intervals import IntervalScore, score_intervals
from forecast.backtest.signal import SignalSeries, signal_series
from forecast.backtest.tickers import mean_mase, naive_scale, ticker_scores
from forecast.data.baselines import mean_daily_log_return, naive_quantile_ratios
from forecast.data.panel import Panel
from forecast.data.windows import date_splits
from forecast.model.metrics import (
    drift_forecast,
    in_percent,
    mean_return_forecast,
    naive_forecast,
    naive_quantile_forecast,
    point_metrics,
    vol_scaled_forecast,
)
from forecast.model.quantiles import central_intervals

BASELINES = ("naive", "drift", "mean_return")
"""naive: the last base value; drift: the line through the first and last base values; mean_return: the last
base value grown at the mean daily log-return of every day through the fold's validation end (pooled over
tickers)."""


def read_predictions(path: str | Path) -> pd.DataFrame:
    """A predictions (or ensemble) file as written by ``predict``: tickers and dates as text, so a ticker ``0700``
    or ``NA`` stays what it is (pandas would read ``700`` and a missing value); only an empty cell is missing."""
    return pd.read_csv(
        path,
        dtype={"Name": str, "origin_date": str, "target_date": str},
        keep_default_na=False,
        na_values=[""],
    )


@dataclass
class FoldScore:
    """MAE ($) and relMAE of each forecaster (and in ``metrics`` the protocol's whole table: ``mae``, ``rmse`` in
    dollars, ``mape``, ``smape`` in %, ``rel_mae``, and the scale-free ``mase``), and per origin date the loss
    differential against naive.

    ``differential[name]``: a Series indexed by origin date (sorted), the mean over tickers and steps of
    ``|e_name| − |e_naive|`` in dollars; its DM test is ``dm[name]``. ``best``: the baseline with the lowest MAE
    (naive, drift or mean_return) and ``dm_best`` the model's DM test against it. ``signal``: the model's
    per-date cross-sectional signal (:mod:`forecast.backtest.signal`; None for fewer than 3 tickers a date).
    """

    metrics: dict[str, dict[str, float]]
    differential: dict[str, pd.Series]
    dm: dict[str, DMResult]
    windows: int
    best: str
    dm_best: DMResult
    signal: SignalSeries | None = None
    intervals: IntervalScore | None = None
    """For a quantile model's file: its scores and those of the interval baselines."""
    tickers: pd.DataFrame | None = None
    """Per ticker: windows, in-sample naive scale, each forecaster's MAE and MASE (:mod:`forecast.backtest.tickers`)."""

    @property
    def mae(self) -> dict[str, float]:
        """MAE ($) of each forecaster."""
        return {name: values["mae"] for name, values in self.metrics.items()}

    @property
    def rel_mae(self) -> dict[str, float]:
        """relMAE (MAE / naive MAE) of each forecaster."""
        return {name: values["rel_mae"] for name, values in self.metrics.items()}


def _days(column: pd.Series) -> np.ndarray:
    """A column of ``YYYY-MM-DD`` dates as ``datetime64[D]``; NaT where a value is not a date."""
    return pd.to_datetime(column.astype(str), format="ISO8601", errors="coerce").to_numpy().astype("datetime64[D]")


def _origin_rows(panel: Panel, frame: pd.DataFrame) -> np.ndarray:
    """Row in the panel of each prediction's (Name, origin_date); -1 where there is none.

    Rows are found by binary search on a (ticker, day) key, sorted as the panel's rows are: 8 bytes a row of the
    panel, where an index of names and date strings takes several times that, built for every fold.
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
    """The fold's test windows as arrays: ``origin`` rows (N,), ``cell`` (each file row's ``window · H + step −
    1``), ``tickers`` (N,), ``last`` close (N,), ``target`` and each forecaster's ``(N, H)``; with quantile
    columns also ``levels``, the model's ``quantiles`` and the interval baselines' ``naive_quantile``,
    ``vol_scaled`` and ``garch`` forecasts ``(N, Q, H)`` (``skipped``: ``{"garch": why}`` when it could not run).

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
    wrong_target = panel.dates[target_rows] != _days(predictions["target_date"])
    if wrong_target.any():
        raise BacktestError(
            f"{where}: {int(wrong_target.sum())} target dates are not the ticker's trading days after origin"
        )

    def by_window(column: str) -> np.ndarray:
        """A column of the file as ``(N, H)``: window by step."""
        out = np.empty(len(expected) * horizon)
        out[cell] = predictions[column].to_numpy(dtype=np.float64)
        return out.reshape(len(expected), horizon)

    close = panel.close
    origin = torch.as_tensor(expected_origins)
    base = close[origin[:, None] + torch.arange(-base_len + 1, 1)]  # (N, L) dollars
    target = close[origin[:, None] + torch.arange(1, horizon + 1)]  # (N, H) dollars
    mu = mean_daily_log_return(panel, fold.val_end)
    arrays = {
        "origin": expected_origins,
        "cell": cell,
        "tickers": np.searchsorted(panel.offsets, expected_origins, side="right") - 1,
        "last": base[:, -1].numpy(),
        "target": target,
        "model": torch.from_numpy(by_window("forecast")),
        "naive": naive_forecast(base, horizon),
        "drift": drift_forecast(base, horizon),
        "mean_return": mean_return_forecast(base, mu, horizon),
    }
    levels = quantile_columns(predictions)
    if levels:
        ratios = naive_quantile_ratios(panel, fold.val_end, list(levels), horizon)
        arrays["levels"] = list(levels)
        arrays["quantiles"] = torch.from_numpy(np.stack([by_window(c) for c in levels.values()], axis=1))
        arrays["naive_quantile"] = naive_quantile_forecast(base, torch.from_numpy(ratios))
        arrays["vol_scaled"] = vol_scaled_forecast(base, mu, list(levels), horizon)
        garch, why_not = garch_forecast(panel, expected_origins, fold.val_end, list(levels), horizon)
        arrays |= {"garch": garch} if garch is not None else {"skipped": {"garch": why_not}}
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


def score_fold(panel: Panel, predictions: pd.DataFrame, fold: FoldDates, base_len: int, horizon: int) -> FoldScore:
    """MAE, relMAE and the DM tests (against naive and the best baseline) of the model and each baseline on the
    fold's test windows; the model's cross-sectional signal; and a quantile model's interval scores."""
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
    scale = naive_scale(panel, fold.train_end)
    tickers = ticker_scores({n: arrays[n] for n in names}, target, arrays["tickers"], panel.names, scale)
    for name in names:
        metrics[name]["mase"] = mean_mase(tickers, name)
    dates = panel.dates[arrays["origin"]]
    naive_loss = (arrays["naive"] - target).abs().mean(dim=1)
    differential = {
        name: per_date(((arrays[name] - target).abs().mean(dim=1) - naive_loss).numpy(), dates) for name in names
    }
    best = min(BASELINES, key=lambda name: metrics[name]["mae"])
    try:
        dm = {name: diebold_mariano(series.to_numpy(), horizon) for name, series in differential.items()}
        dm_best = diebold_mariano((differential["model"] - differential[best]).to_numpy(), horizon)
    except ValueError as exc:
        raise BacktestError(f"year {fold.year}: {exc}") from exc
    del differential["naive"], dm["naive"]  # zero by definition
    width = None
    if "quantiles" in arrays:
        intervals = central_intervals(arrays["levels"])
        widest = next((pair for pair in intervals if pair[2] == 80), intervals[0] if intervals else None)
        if widest is not None:
            width = (arrays["quantiles"][:, widest[1], -1] - arrays["quantiles"][:, widest[0], -1]).numpy()
    signal = signal_series(arrays["last"], arrays["model"].numpy(), target.numpy(), dates, arrays["tickers"], width)
    return FoldScore(
        metrics=metrics,
        differential=differential,
        dm=dm,
        windows=len(arrays["origin"]),
        best=best,
        dm_best=dm_best,
        signal=signal,
        intervals=score_intervals(arrays, dates, fold.year, horizon) if "quantiles" in arrays else None,
        tickers=tickers,
    )
