"""``backtest.md``'s tables of where the edge comes from: scale-free scores and the share of tickers won per year,
the best and worst tickers, and the long-short book's annual numbers (:mod:`forecast.backtest.tickers`,
:func:`forecast.backtest.signal.book_stats`)."""

from __future__ import annotations

from typing import Any

SHOWN = 5
"""Tickers shown at each end of the per-ticker table (all of them are in ``backtest.json``)."""


def edge_table(result: dict[str, Any]) -> list[str]:
    """Per year and pooled: MASE and MAPE of the model and the year's best baseline, and the share of tickers whose
    MAE is below that baseline's; then the best and worst tickers over the years."""
    years, pooled = result["summary"]["years"], result["summary"]["pooled"]
    if any("share_beating_best" not in entry["model"] for entry in years.values()):
        return []
    lines = [
        "## Where the edge comes from",
        "",
        "Scale-free scores beside the dollar relMAE: MASE = each ticker's MAE over its in-sample one-step naive MAE "
        "(the training years), averaged over tickers, so a $20 and a $1,000 stock count alike; MAPE in %. "
        "Tickers won = share of tickers whose MAE (mean over seeds) is below the year's best baseline's.",
        "",
        "| year | best baseline | model MASE | its MASE | model MAPE % | its MAPE % | tickers won |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for year, entry in years.items():
        best, model = entry["best_baseline"], entry["model"]
        theirs = entry["naive"] if best == "naive" else entry[best]
        lines.append(
            f"| {year} | {best.replace('_', '-')} | {model['mase_mean']:.4f} | {theirs['mase']:.4f} | "
            f"{model['mape_mean']:.4f} | {theirs['mape']:.4f} | {model['share_beating_best']:.0%} |"
        )
    model = pooled["model"]
    lines.append(f"| mean | | {model['mase_mean']:.4f} | | | | {model['share_beating_best_mean']:.0%} |")
    tickers = model["tickers"]
    lines += [
        "",
        "Per ticker, the mean over the years of its MAE / the year's best baseline's MAE ("
        + (f"the best and worst {SHOWN} of {len(tickers)}; all" if len(tickers) > 2 * SHOWN else "every ticker; also")
        + " in backtest.json):",
        "",
        "| ticker | MAE / best baseline's | years below 1 |",
        "|---|---:|---:|",
    ]
    shown = tickers if len(tickers) <= 2 * SHOWN else [*tickers[:SHOWN], None, *tickers[-SHOWN:]]
    for row in shown:
        cells = "| … | | |" if row is None else f"| {row['ticker']} | {row['ratio_mean']:.4f} | "
        lines.append(cells if row is None else cells + f"{row['years_below_best']} of {row['years']} |")
    return lines


def book_table(result: dict[str, Any]) -> list[str]:
    """The long-short book after costs as a return series: annual return, volatility, Sharpe, max drawdown."""
    summary = result["summary"]
    pooled = summary["pooled"].get("signal") or {}
    if not pooled or "sharpe" not in pooled.get("model", {}):
        return []
    cost = pooled["model"]["cost_bps"]
    lines = [
        f"The long-short book after {cost:g} bp a side, as a daily series (each origin's h-day net return spread over "
        "its h days: the figure's curve; docs/backtest.md): annualised return and volatility (√252), their ratio "
        "(Sharpe, no risk-free rate: the book is dollar-neutral) and the largest fall from a peak, in % of capital.",
        "",
        "| year | forecaster | annual return % | volatility % | Sharpe | max drawdown % |",
        "|---|---|---:|---:|---:|---:|",
    ]
    rows = [(year, entry.get("signal") or {}) for year, entry in summary["years"].items()] + [("pooled", pooled)]
    for year, signal in rows:
        for name, s in signal.items():
            sharpe = "n/a" if s["sharpe"] is None else f"{s['sharpe']:.2f}"
            lines.append(
                f"| {year} | {name} | {s['annual_return_pct']:.2f} | {s['volatility_pct']:.2f} | {sharpe} | "
                f"{s['max_drawdown_pct']:.2f} |"
            )
    return lines
