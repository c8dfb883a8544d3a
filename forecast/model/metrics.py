"""Forecast metrics on the dollar scale, for the model and the naive and drift baselines (torchmetrics)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchmetrics import (
    MeanAbsoluteError,
    MeanAbsolutePercentageError,
    MeanSquaredError,
    MetricCollection,
    SymmetricMeanAbsolutePercentageError,
)

FORECASTERS = ("model", "naive", "drift")


def naive_forecast(base_close: Tensor, horizon: int) -> Tensor:
    """Repeat the last base value: ``(B, L)`` dollars → ``(B, H)``."""
    return base_close[:, -1:].expand(-1, horizon)


def drift_forecast(base_close: Tensor, horizon: int) -> Tensor:
    """Extend the straight line through the first and last base values: ``(B, L)`` → ``(B, H)``."""
    slope = (base_close[:, -1] - base_close[:, 0]) / (base_close.shape[1] - 1)  # dollars per day
    steps = torch.arange(1, horizon + 1, dtype=base_close.dtype, device=base_close.device)
    return base_close[:, -1:] + slope[:, None] * steps


def mean_return_forecast(base_close: Tensor, mu: float | Tensor, horizon: int) -> Tensor:
    """Grow the last base value at a mean daily log-return ``mu`` (learned in training): ``c · exp(μ s)`` for step
    s = 1 .. H, ``(B, L)`` dollars → ``(B, H)``."""
    steps = torch.arange(1, horizon + 1, dtype=base_close.dtype, device=base_close.device)
    mu = mu.to(base_close) if isinstance(mu, Tensor) else mu
    return base_close[:, -1:] * torch.exp(mu * steps)


def naive_quantile_forecast(base_close: Tensor, ratios: Tensor) -> Tensor:
    """The naive-quantile baseline: the last base value times the training split's ratio quantiles.

    ``base_close`` (B, L) dollars, ``ratios`` (Q, H) (:func:`forecast.data.baselines.naive_quantile_ratios`) →
    ``(B, Q, H)`` dollars.
    """
    return base_close[:, -1, None, None] * ratios.to(base_close)


def vol_scaled_forecast(base_close: Tensor, mu: float, levels: list[float], horizon: int) -> Tensor:
    """The volatility-scaled interval baseline ``(B, Q, H)`` dollars: ``c · exp(μ·s + z_τ·σ·√s)`` for step s and
    level τ, with ``c`` the last base close, ``σ`` the standard deviation (n − 1) of the window's own daily
    log-returns over its base ``base_close (B, L)``, ``μ`` a mean daily log-return learned in training, ``z_τ``
    the standard normal quantile. Wide in storms and narrow in calm, which the naive-quantile baseline is not."""
    returns = torch.log(base_close[:, 1:] / base_close[:, :-1])  # (B, L - 1)
    # one return has no standard deviation: NaN, and the backtest leaves this baseline out
    sigma = returns.std(dim=1) if returns.shape[1] > 1 else torch.full_like(returns[:, 0], float("nan"))  # (B,)
    z = torch.special.ndtri(torch.tensor(levels, dtype=base_close.dtype, device=base_close.device))  # (Q,)
    s = torch.arange(1, horizon + 1, dtype=base_close.dtype, device=base_close.device)  # (H,)
    exponent = mu * s + z[:, None] * sigma[:, None, None] * s.sqrt()  # (B, Q, H)
    return base_close[:, -1, None, None] * torch.exp(exponent)


def point_metrics() -> MetricCollection:
    """The protocol's point metrics, float64: ``mae``, ``rmse`` (dollars), ``mape``, ``smape`` (fractions: see
    :func:`in_percent`)."""
    return MetricCollection(
        {
            "mae": MeanAbsoluteError(),
            "rmse": MeanSquaredError(squared=False),
            "mape": MeanAbsolutePercentageError(),
            "smape": SymmetricMeanAbsolutePercentageError(),
        }
    ).set_dtype(torch.float64)


def in_percent(values: dict[str, Tensor]) -> dict[str, Tensor]:
    """:func:`point_metrics` results with MAPE and sMAPE in %, as the protocol reports them."""
    return {k: v * 100 if k in ("mape", "smape") else v for k, v in values.items()}


class ForecastMetrics(nn.Module):
    """MAE, RMSE, MAPE (%), sMAPE (%), per-step MAE and relMAE for the model, naive and drift forecasts.

    ``update`` takes dollar forecasts and targets ``(B, H)``; ``compute`` returns
    ``{forecaster: {metric: value}}`` with ``mae_step`` a ``(H,)`` tensor and ``rel_mae`` = MAE / naive MAE.
    States are float64 and synchronised across processes by torchmetrics.
    """

    def __init__(self, horizon: int) -> None:
        super().__init__()
        self.horizon = horizon
        self.collections = nn.ModuleDict({name: point_metrics() for name in FORECASTERS})
        self.steps = nn.ModuleDict(
            {name: MeanAbsoluteError(num_outputs=horizon).set_dtype(torch.float64) for name in FORECASTERS}
        )

    def update(self, forecast: Tensor, base_close: Tensor, target: Tensor) -> None:
        """Accumulate one batch: ``forecast``, ``target`` (B, H) and ``base_close`` (B, L), all dollars."""
        forecasts = {
            "model": forecast.double(),
            "naive": naive_forecast(base_close, self.horizon),
            "drift": drift_forecast(base_close, self.horizon),
        }
        target = target.double()
        for name, value in forecasts.items():
            self.collections[name].update(value.reshape(-1), target.reshape(-1))
            self.steps[name].update(value, target)

    def compute(self) -> dict[str, dict[str, Tensor]]:
        results: dict[str, dict[str, Tensor]] = {}
        for name in FORECASTERS:
            values = in_percent(dict(self.collections[name].compute()))
            values["mae_step"] = self.steps[name].compute()
            results[name] = values
        for name in FORECASTERS:
            results[name]["rel_mae"] = results[name]["mae"] / results["naive"]["mae"]
        return results

    def reset(self) -> None:
        for module in (*self.collections.values(), *self.steps.values()):
            module.reset()
