"""The ``backtest.json`` content from the scored folds: per fold, per year (over seeds) and pooled over years."""

from __future__ import annotations

import statistics
from typing import Any

import pandas as pd

from forecast.backtest.dm import diebold_mariano
from forecast.backtest.intervals import INTERVAL_BASELINES
from forecast.backtest.scoring import BASELINES, FoldScore
from forecast.backtest.signal import SignalSeries, combine, signal_stats
from forecast.backtest.tickers import share_beating

ENSEMBLE = "ensemble"
"""The seed-mean forecast of a year, scored as its own forecaster (``predictions/{Y}_ensemble.csv``)."""


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def dm_fields(series: pd.Series, horizon: int) -> dict[str, Any]:
    """The DM test of a per-date differential as JSON fields."""
    result = diebold_mariano(series.to_numpy(), horizon)
    return {
        "dm_stat": result.stat,
        "dm_p": result.p,
        "mean_loss_diff": result.mean,
        "dates": result.n,
        "dm_estimator": result.estimator,
    }


def against_best(score: FoldScore) -> pd.Series:
    """Per date, the mean absolute error of the forecaster minus that of the fold's best baseline ($)."""
    return score.differential["model"] - score.differential.get(score.best, 0.0)


def _fold(score: FoldScore, record: dict[str, Any], horizon: int, cost_bps: float) -> dict[str, Any]:
    fold = {
        **score.metrics["model"],
        "naive_mae": score.mae["naive"],
        "dm_stat": score.dm["model"].stat,
        "dm_p": score.dm["model"].p,
        "best_baseline": score.best,
        "rel_mae_vs_best": score.mae["model"] / score.mae[score.best],
        "share_beating_best": share_beating(score.tickers, "model", score.best) if score.tickers is not None else None,
        "dm_best_stat": score.dm_best.stat,
        "dm_best_p": score.dm_best.p,
        "windows": score.windows,
        "signal": signal_stats(score.signal, horizon, cost_bps) if score.signal else None,
    }
    if score.intervals:
        fold |= {
            **score.intervals.metrics,
            "interval_best_baseline": score.intervals.best,
            "interval_dm_best_p": score.intervals.dm_best.p,
        }
    return {**fold, **{k: record[k] for k in ("best_epoch", "best_val_rel_mae", "seconds", "commands")}}


def _forecaster(scores: list[FoldScore], horizon: int) -> tuple[dict[str, Any], pd.Series, pd.Series]:
    """A forecaster's year entry over its folds (the seeds; one for the ensemble): each metric's mean and std,
    the DM tests of the folds' mean differential per date against naive and against the best baseline, and those
    two series (for pooling)."""
    entry: dict[str, Any] = {}
    for key in scores[0].metrics["model"]:
        entry[f"{key}_mean"], entry[f"{key}_std"] = mean_std([s.metrics["model"][key] for s in scores])
    if scores[0].intervals:  # a quantile model: the interval scores' mean and std over seeds
        for key in scores[0].intervals.metrics:
            entry[f"{key}_mean"], entry[f"{key}_std"] = mean_std([s.intervals.metrics[key] for s in scores])  # type: ignore[union-attr]
    vs_naive = pd.concat([s.differential["model"] for s in scores], axis=1).mean(axis=1)
    vs_best = pd.concat([against_best(s) for s in scores], axis=1).mean(axis=1)
    entry |= dm_fields(vs_naive, horizon)
    entry["rel_mae_vs_best"] = statistics.mean(s.mae["model"] / s.mae[s.best] for s in scores)
    if scores[0].tickers is not None:
        entry["tickers"] = ticker_table(scores)
        entry["share_beating_best"] = statistics.mean(row["mae"] < row["best_mae"] for row in entry["tickers"])
    entry["vs_best"] = dm_fields(vs_best, horizon)
    if scores[0].intervals:
        best = scores[0].intervals.best
        entry["interval_vs_best"] = dm_fields(
            pd.concat([s.intervals.differential[best] for s in scores], axis=1).mean(axis=1),  # type: ignore[union-attr]
            horizon,
        )
    return entry, vs_naive, vs_best


def ticker_table(scores: list[FoldScore]) -> list[dict[str, Any]]:
    """Per ticker, over the folds (seeds) of one year: the model's MAE and MASE (seed means), the year's best
    baseline's, and their ratio; one dict a ticker, sorted by ratio (the best first)."""
    best = scores[0].best
    first = scores[0].tickers
    assert first is not None
    model = (
        pd.concat([s.tickers[["mae_model", "mase_model"]] for s in scores if s.tickers is not None])
        .groupby(level=0)
        .mean()
    )
    rows = [
        {
            "ticker": str(name),
            "mae": float(model.at[name, "mae_model"]),
            "best_mae": float(first.at[name, f"mae_{best}"]),
            "ratio": float(model.at[name, "mae_model"] / first.at[name, f"mae_{best}"]),
            "mase": float(model.at[name, "mase_model"]),
            "best_mase": float(first.at[name, f"mase_{best}"]),
            "windows": int(first.at[name, "windows"]),
        }
        for name in first.index
    ]
    return sorted(rows, key=lambda row: row["ratio"])


def pooled_tickers(years: list[dict[str, Any]], name: str = "model") -> list[dict[str, Any]]:
    """Per ticker over the years it has windows in: the mean of its yearly MAE ratio to the year's best baseline,
    and in how many of those years it was below 1; sorted by mean ratio (the best first)."""
    ratios: dict[str, list[float]] = {}
    for entry in years:
        for row in entry[name].get("tickers", []):
            ratios.setdefault(row["ticker"], []).append(row["ratio"])
    rows = [
        {"ticker": t, "ratio_mean": statistics.mean(r), "years": len(r), "years_below_best": sum(v < 1 for v in r)}
        for t, r in ratios.items()
    ]
    return sorted(rows, key=lambda row: row["ratio_mean"])


def summarise(
    scores: dict[tuple[int, int], FoldScore],
    records: dict[tuple[int, int], dict[str, Any]],
    horizon: int,
    cost_bps: float,
    ensembles: dict[int, FoldScore] | None = None,
) -> dict[str, Any]:
    """The ``backtest.json`` content: one ``folds`` entry per (year, seed), and the ``summary``.

    Per year, the model's DM tests are on the seeds' mean loss differential per date (the test of the average
    seed), its signal on the seeds' mean series; the ``ensemble`` (the seeds' mean forecast, when there are two
    or more seeds) is scored as its own forecaster. The pooled tests concatenate the per-date series over the
    years. Baselines do not depend on the seed: their numbers come from the first seed's fold.
    """
    ensembles = ensembles or {}
    folds = [
        {"year": year, "seed": seed, **_fold(score, records[(year, seed)], horizon, cost_bps)}
        for (year, seed), score in sorted(scores.items())
    ]
    forecasters = ("model", *([ENSEMBLE] if ensembles else []))
    pooled_series: dict[str, list[pd.Series]] = {}
    pooled_signal: dict[str, list[SignalSeries]] = {name: [] for name in forecasters}
    per_year = {}
    for year in sorted({year for year, _ in scores}):
        seeds = sorted(seed for y, seed in scores if y == year)
        first = scores[(year, seeds[0])]
        entry: dict[str, Any] = {
            "seeds": seeds,
            "windows": first.windows,
            "naive_mae": first.mae["naive"],
            "best_baseline": first.best,
            "naive": first.metrics["naive"],
        }
        folds_of = {"model": [scores[(year, s)] for s in seeds], ENSEMBLE: [ensembles[year]] if ensembles else []}
        for name in forecasters:
            entry[name], vs_naive, vs_best = _forecaster(folds_of[name], horizon)
            pooled_series.setdefault(name, []).append(vs_naive)
            pooled_series.setdefault(f"{name}_vs_best", []).append(vs_best)
        for name in BASELINES[1:]:
            entry[name] = {**first.metrics[name], **dm_fields(first.differential[name], horizon)}
            pooled_series.setdefault(name, []).append(first.differential[name])
        if first.intervals:
            entry["interval_best_baseline"] = first.intervals.best
            entry["interval_baselines"] = {
                k: v
                for k, v in first.intervals.metrics.items()
                if k.startswith(tuple(f"{n}_" for n in INTERVAL_BASELINES))
            }
            if first.intervals.skipped:
                entry["interval_skipped"] = first.intervals.skipped
        if first.signal is not None:
            entry["signal"] = {}
            for name in forecasters:
                series = combine([s.signal for s in folds_of[name]], "mean")  # type: ignore[misc]
                entry["signal"][name] = signal_stats(series, horizon, cost_bps)
                pooled_signal[name].append(series)
        per_year[str(year)] = entry
    return {
        "folds": folds,
        "summary": {"years": per_year, "pooled": _pooled(per_year, pooled_series, pooled_signal, horizon, cost_bps)},
    }


def _pooled(
    per_year: dict[str, Any],
    series: dict[str, list[pd.Series]],
    signal: dict[str, list[SignalSeries]],
    horizon: int,
    cost_bps: float,
) -> dict[str, Any]:
    """Mean relMAE over the years, and every DM and signal test on the years' per-date series put end to end."""
    years = list(per_year.values())
    pooled: dict[str, Any] = {}
    for name in [k for k in series if not k.endswith("_vs_best")]:
        key = "rel_mae" if name in BASELINES else "rel_mae_mean"
        pooled[name] = {
            "rel_mae_mean": statistics.mean(e[name][key] for e in years),
            **dm_fields(pd.concat(series[name]), horizon),
        }
        if f"{name}_vs_best" in series:
            pooled[name]["rel_mae_vs_best_mean"] = statistics.mean(e[name]["rel_mae_vs_best"] for e in years)
            pooled[name]["vs_best"] = dm_fields(pd.concat(series[f"{name}_vs_best"]), horizon)
            if all("share_beating_best" in e[name] for e in years):
                pooled[name]["share_beating_best_mean"] = statistics.mean(e[name]["share_beating_best"] for e in years)
                pooled[name]["mase_mean"] = statistics.mean(e[name]["mase_mean"] for e in years)
                pooled[name]["tickers"] = pooled_tickers(years, name)
    pooled["best_baseline"] = {
        "rel_mae_mean": statistics.mean(
            1.0 if e["best_baseline"] == "naive" else e[e["best_baseline"]]["rel_mae"] for e in years
        )
    }
    pooled["signal"] = {
        name: signal_stats(combine(parts, "concat"), horizon, cost_bps) for name, parts in signal.items() if parts
    }
    return pooled


def validation_summary(records: dict[tuple[int, int], dict[str, Any]]) -> dict[str, Any]:
    """A validation-only backtest: per validation year the best validation relMAE (mean, std over seeds)."""
    folds = [{"year": year, "seed": seed, **record} for (year, seed), record in sorted(records.items())]
    years = {}
    for year in sorted({year for year, _ in records}):
        rows = [r for (y, _), r in sorted(records.items()) if y == year]
        entry: dict[str, Any] = {"seeds": len(rows)}
        for key in [k for k in rows[0] if k.startswith("best_val_")]:  # rel_mae, and a quantile model's scores
            name = key.removeprefix("best_")
            entry[f"{name}_mean"], entry[f"{name}_std"] = mean_std([r[key] for r in rows])
        years[str(year)] = entry
    mean_over_years = statistics.mean(e["val_rel_mae_mean"] for e in years.values())
    return {"validation_only": True, "folds": folds, "summary": {"years": years, "mean_val_rel_mae": mean_over_years}}
