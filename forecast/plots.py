"""Figures: forecasts of a few windows, and MAE per horizon step for the model and the baselines."""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import Tensor


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the file-only Agg backend (imported on first use: most commands draw nothing)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, safe off the main thread
    import matplotlib.pyplot as plt

    return plt


def forecast_figure(
    batch: dict[str, Any], forecast: Tensor, quantiles: Tensor | None = None, levels: list[float] | None = None
) -> Any:
    """One panel per window: the base, the true target (when known), the forecast and the naive forecast, and
    with ``quantiles`` a fan of the central intervals (the widest palest).

    Args:
        batch: a window batch (``base_close`` (B, L), optional ``target`` (B, H), ``ticker``, ``origin_date``).
        forecast: dollar forecasts ``(B, H)`` (a quantile model's median).
        quantiles: dollar forecasts of every level ``(B, Q, H)``, with their ``levels``.
    """
    from forecast.model.quantiles import central_intervals

    plt = pyplot()
    base, target = batch["base_close"].cpu(), batch.get("target")
    count, length, horizon = base.shape[0], base.shape[1], forecast.shape[1]
    fig, axes = plt.subplots(1, count, figsize=(4 * count, 3), squeeze=False)
    past, future = np.arange(-length + 1, 1), np.arange(1, horizon + 1)
    for i, ax in enumerate(axes[0]):
        ax.plot(past, base[i], color="0.4", label="base")
        if target is not None:
            ax.plot(future, target[i].cpu(), color="black", label="true")
        if quantiles is not None and levels:
            for lo, hi, nominal in central_intervals(levels):  # widest first, so narrower ones draw on top
                ax.fill_between(
                    future, quantiles[i, lo], quantiles[i, hi], color="tab:red", alpha=0.15, lw=0, label=f"{nominal}%"
                )
        ax.plot(future, forecast[i], color="tab:red", label="forecast")
        ax.plot(future, base[i, -1].repeat(horizon), color="tab:blue", ls="--", label="naive")
        ax.set_title(f"{batch['ticker'][i]} from {batch['origin_date'][i]}", fontsize=9)
        ax.set_xlabel("trading days from origin")
    axes[0, 0].set_ylabel("Close ($)")
    axes[0, 0].legend(fontsize=7)
    # fixed margins: tight_layout measures every label, the larger part of this figure's cost each epoch
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.17, top=0.9, wspace=0.25)
    return fig


def per_step_figure(results: dict[str, dict[str, Any]], title: str) -> Any:
    """MAE ($) per horizon step of the model, naive and drift forecasts (``results`` as from ForecastMetrics)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    styles = {"model": ("tab:red", "-"), "naive": ("tab:blue", "--"), "drift": ("tab:green", ":")}
    for name, (color, line) in styles.items():
        steps = np.asarray(results[name]["mae_step"], dtype=float)
        ax.plot(
            np.arange(1, len(steps) + 1),
            steps,
            color=color,
            ls=line,
            marker="o",
            ms=3,
            label=f"{name} (MAE ${float(results[name]['mae']):.3f})",
        )
    ax.set_xlabel("horizon step (trading days)")
    ax.set_ylabel("MAE ($)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
