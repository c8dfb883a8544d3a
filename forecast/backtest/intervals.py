"""Score a quantile model's intervals against the best interval baseline of the fold, with a DM test.

Two baselines, both from the data alone (:func:`forecast.backtest.scoring.fold_forecasts` makes them):

- ``naive_quantile``: the last base value times the empirical quantiles of s-step price ratios over every
  ticker's days through the fold's validation end (unconditional: wide in calm years, narrow in storms);
- ``vol_scaled``: ``c · exp(μ·s + z_τ·σ·√s)``, σ the window's own base volatility
  (:func:`forecast.model.metrics.vol_scaled_forecast`);
- ``garch``: the same with each step's σ from a GARCH(1,1) per ticker fitted through the validation end
  (:mod:`forecast.backtest.garch`; skipped, with the reason in the report, without the ``arch`` package).

The loss of a window is its pinball loss averaged over the levels and steps (dollars); the DM test is on its
per-date mean differential ``model − baseline``, as for the point forecasts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from forecast.backtest.dm import DMResult, diebold_mariano, per_date
from forecast.backtest.folds import BacktestError
from forecast.model.quantiles import IntervalMetrics, pinball

INTERVAL_BASELINES = ("naive_quantile", "vol_scaled", "garch")


@dataclass(frozen=True)
class IntervalScore:
    """``metrics``: the model's ``scaled_pinball`` (against naive-quantile, as the test loop reports it),
    ``pinball_<level>`` ($), ``coverage_<n>``, ``width_<n>`` ($); ``mean_pinball`` ($) of the model and
    ``<baseline>_pinball`` of each baseline, ``<baseline>_coverage_<n>``, and ``scaled_pinball_best`` (the model's
    mean pinball over the best baseline's). ``best``: the baseline with the lowest mean pinball;
    ``differential[b]``: per origin date, the model's mean pinball minus baseline b's; ``dm_best``: its DM test
    against the best; ``skipped``: the baselines that could not run, and why."""

    metrics: dict[str, float]
    best: str
    differential: dict[str, pd.Series]
    dm_best: DMResult
    skipped: dict[str, str] = field(default_factory=dict)


def window_pinball(quantiles: torch.Tensor, target: torch.Tensor, levels: list[float]) -> np.ndarray:
    """Mean pinball loss over levels and steps of each window: ``quantiles (N, Q, H)``, ``target (N, H)`` → (N,)."""
    tau = torch.tensor(levels, dtype=torch.float64)
    return pinball(quantiles.double(), target.double()[:, None, :], tau).mean(dim=(1, 2)).numpy()


def _metric(quantiles: torch.Tensor, target: torch.Tensor, levels: list[float], naive: torch.Tensor | None) -> dict:
    try:
        metric = IntervalMetrics(levels, target.shape[1])
    except ValueError as exc:
        raise BacktestError(f"the predictions' quantile columns: {exc}") from exc
    metric.update(quantiles, target, naive)
    return {name: float(value) for name, value in metric.named(metric.summary()).items()}


def score_intervals(arrays: dict, dates: np.ndarray, year: int, horizon: int) -> IntervalScore:
    """The :class:`IntervalScore` of a fold's arrays (``quantiles``, ``target``, ``levels`` and each baseline's
    forecast, as :func:`forecast.backtest.scoring.fold_forecasts` gives them) with origin ``dates`` (N,)."""
    levels, target = arrays["levels"], arrays["target"]
    baselines = [name for name in INTERVAL_BASELINES if name in arrays]
    metrics = _metric(arrays["quantiles"], target, levels, arrays["naive_quantile"])
    loss = {name: window_pinball(arrays[name], target, levels) for name in ("quantiles", *baselines)}
    metrics["mean_pinball"] = float(loss["quantiles"].mean())
    for name in baselines:
        metrics[f"{name}_pinball"] = float(loss[name].mean())
        coverage = _metric(arrays[name], target, levels, None)
        metrics |= {f"{name}_{k}": v for k, v in coverage.items() if k.startswith("coverage_")}
    # a base of two days has one return, no standard deviation: no vol-scaled forecast to compare with
    usable = [name for name in baselines if np.isfinite(metrics[f"{name}_pinball"])]
    best = min(usable, key=lambda name: metrics[f"{name}_pinball"])
    metrics["scaled_pinball_best"] = metrics["mean_pinball"] / metrics[f"{best}_pinball"]
    differential = {name: per_date(loss["quantiles"] - loss[name], dates) for name in usable}
    try:
        dm_best = diebold_mariano(differential[best].to_numpy(), horizon)
    except ValueError as exc:
        raise BacktestError(f"year {year}: {exc}") from exc
    skipped = dict(arrays.get("skipped", {}))
    return IntervalScore(metrics=metrics, best=best, differential=differential, dm_best=dm_best, skipped=skipped)
