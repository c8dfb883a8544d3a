"""``backtest.png``: relMAE per year against the baselines, and the cumulative long-short return per year."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from forecast.backtest.summary import ENSEMBLE
from forecast.plots import pyplot


def figure(result: dict[str, Any], title: str, long_short: dict[str, dict[int, pd.Series]], horizon: int) -> Any:
    """Left: relMAE per year (model: mean with the seeds' std as error bars; ensemble and baselines as markers)
    and pooled, the model's DM p-value against the year's best baseline beside it. Right: :func:`_long_short_panel`."""
    plt = pyplot()
    years, pooled = result["summary"]["years"], result["summary"]["pooled"]
    labels = [*years, "pooled"]
    x = np.arange(len(labels))
    fig, (ax, cumulative) = plt.subplots(1, 2, figsize=(2.2 * len(labels) + 5, 3.8), width_ratios=[1, 1.3])
    model = [e["model"]["rel_mae_mean"] for e in years.values()] + [pooled["model"]["rel_mae_mean"]]
    spread = [e["model"]["rel_mae_std"] for e in years.values()] + [0.0]
    seeds = max(len(e.get("seeds", [])) for e in years.values())
    label = "model (mean ± std over seeds)" if seeds > 1 else "model (one seed)"
    ax.errorbar(x, model, yerr=spread, fmt="o", color="tab:red", capsize=4, label=label)
    baselines = {
        name: [e[name]["rel_mae"] for e in years.values()] + [pooled[name]["rel_mae_mean"]]
        for name in ("drift", "mean_return")
    }
    # the scale follows the model, naive and the mean-return baseline; drift (often 10% worse) would flatten
    # them: when it lies above, it is marked at the top edge with its value
    shown = [*(m - s for m, s in zip(model, spread, strict=True)), *(m + s for m, s in zip(model, spread, strict=True))]
    shown += [*baselines["mean_return"], 1.0]
    low, high = min(shown), max(shown)
    low, high = low - 0.15 * (high - low), high + 0.25 * (high - low)
    ax.plot(x, baselines["mean_return"], ls="none", marker="^", color="tab:purple", label="mean-return")
    drift = np.asarray(baselines["drift"])
    ax.plot(x, np.minimum(drift, high), ls="none", marker="s", color="tab:green", label="drift")
    for i in np.flatnonzero(drift > high):
        ax.annotate(
            f"{drift[i]:.3f}",
            (x[i], high),
            textcoords="offset points",
            xytext=(0, -14),
            ha="center",
            fontsize=7,
            color="tab:green",
        )
    ax.set_ylim(low, high + 0.02 * (high - low))
    ax.axhline(1.0, color="tab:blue", ls="--", label="naive")
    if ENSEMBLE in pooled:
        ensemble = [e[ENSEMBLE]["rel_mae_mean"] for e in years.values()] + [pooled[ENSEMBLE]["rel_mae_mean"]]
        ax.plot(x, ensemble, ls="none", marker="D", color="tab:orange", label="ensemble (seed mean)")
    against_best = [e["model"]["vs_best"]["dm_p"] for e in years.values()] + [pooled["model"]["vs_best"]["dm_p"]]
    for i, p in enumerate(against_best):
        ax.annotate(
            f"p={p:.3f}" if p >= 1e-3 else "p<0.001",
            (x[i], model[i]),
            textcoords="offset points",
            xytext=(7, -3),
            ha="left",
            fontsize=7,
            color="tab:red",
        )
    ax.axvline(len(labels) - 1.5, color="0.8")
    ax.set_xticks(x, labels)
    ax.set_ylabel("relMAE (MAE / naive MAE)")
    ax.set_title("relMAE per year; DM p against the year's best baseline", fontsize=9)
    fig.suptitle(title, fontsize=10)
    ax.legend(fontsize=7, loc="best")
    signal = pooled.get("signal") or {}
    cost = next(iter(signal.values()))["cost_bps"] if signal else 0.0
    _long_short_panel(cumulative, long_short, horizon, cost, seeds)
    fig.tight_layout()
    return fig


def _long_short_panel(
    ax: Any, long_short: dict[str, dict[int, pd.Series]], horizon: int, cost_bps: float, seeds: int
) -> None:
    """Cumulative long-short return after ``cost_bps`` a side within each year, in %, for the model (the seeds' mean
    series when there are several, solid) and the ensemble (dashed). Each origin's h-day return is counted as 1/h
    of it per day: h books overlap, each holding 1/h of the capital."""
    from matplotlib import dates  # pyplot() chose the backend already

    colours = {"model": "tab:red", ENSEMBLE: "tab:orange"}
    for name, years in long_short.items():
        for k, series in enumerate(years.values()):
            ax.plot(
                series.index,
                series.cumsum() / horizon / 100,  # bp per origin -> % of capital
                color=colours.get(name, "0.4"),
                ls="-" if name == "model" else "--",
                lw=1,
                label=(f"{name}{', seeds mean' if name == 'model' and seeds > 1 else ''}" if k == 0 else None),
            )
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.xaxis.set_major_locator(dates.YearLocator())  # one label a year: the curves restart each year
    ax.xaxis.set_major_formatter(dates.DateFormatter("%Y"))
    ax.set_ylabel("cumulative return, %")
    ax.set_title(
        f"long-short after {cost_bps:g} bp a side: top minus bottom third by forecast (restarts each year)", fontsize=9
    )
    if long_short:
        ax.legend(fontsize=7, loc="best")
    else:
        ax.text(0.5, 0.5, "no signal: fewer than 3 tickers a date", ha="center", transform=ax.transAxes)
