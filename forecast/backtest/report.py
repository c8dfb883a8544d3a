"""``backtest.md`` (the tables a user reads) and the files of a finished backtest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from forecast.atomic import write_atomic
from forecast.backtest.figure import figure
from forecast.backtest.report_edge import book_table, edge_table
from forecast.backtest.summary import ENSEMBLE
from forecast.plots import pyplot

NAMES = {"naive": "naive", "drift": "drift", "mean_return": "mean-return", "naive_quantile": "naive-quantile"}
NAMES |= {"vol_scaled": "vol-scaled", "garch": "GARCH(1,1)", "model": "model", ENSEMBLE: "ensemble"}


def _p(value: float | None) -> str:
    if value is None:
        return "n/a"
    return "< 0.0001" if value < 1e-4 else f"{value:.4f}"


def _num(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _heading(title: dict[str, str]) -> list[str]:
    return [f"# {title['title']}", "", f"Fit options of every fold: `{title['options'] or '(none)'}`", ""]


def _spread(entry: dict[str, Any], seeds: int, key: str = "rel_mae") -> str:
    """A mean ± std over seeds (the mean alone for one seed, or for the ensemble: one forecast)."""
    mean, std = entry[f"{key}_mean"], entry[f"{key}_std"]
    return f"{mean:.4f}" if seeds == 1 else f"{mean:.4f} ± {std:.4f}"


def _forecasters(summary: dict[str, Any]) -> list[str]:
    return ["model", *([ENSEMBLE] if ENSEMBLE in summary["pooled"] else [])]


def _best_table(result: dict[str, Any]) -> list[str]:
    """The lead table: the model (and ensemble) against the best simple baseline of each year."""
    years, pooled = result["summary"]["years"], result["summary"]["pooled"]
    names = _forecasters(result["summary"])
    lines = [
        "## The model vs the best simple baseline",
        "",
        "Per year the best of naive, drift and mean-return by MAE is the bar. relMAE = MAE / naive MAE; "
        "vs best = MAE / the best baseline's MAE (below 1 beats it); DM p = two-sided Diebold–Mariano p-value "
        "against the best baseline (docs/backtest.md).",
        "",
        "| year | best baseline | its relMAE | "
        + " | ".join(f"{NAMES[n]} relMAE | {NAMES[n]} vs best | {NAMES[n]} DM p" for n in names)
        + " |",
        "|---|---|---:|" + "---:|---:|---:|" * len(names),
    ]
    for year, entry in years.items():
        best = entry["best_baseline"]
        cells = [year, NAMES[best], "1.0000" if best == "naive" else f"{entry[best]['rel_mae']:.4f}"]
        for name in names:
            seeds = len(entry["seeds"]) if name == "model" else 1
            cells += [
                _spread(entry[name], seeds),
                f"{entry[name]['rel_mae_vs_best']:.4f}",
                _p(entry[name]["vs_best"]["dm_p"]),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    cells = ["pooled", "", f"{pooled['best_baseline']['rel_mae_mean']:.4f} (mean)"]
    for name in names:
        p = pooled[name]
        cells += [f"{p['rel_mae_mean']:.4f} (mean)", f"{p['rel_mae_vs_best_mean']:.4f}", _p(p["vs_best"]["dm_p"])]
    lines.append("| " + " | ".join(cells) + " |")
    return lines


def _naive_table(result: dict[str, Any]) -> list[str]:
    """Every forecaster against naive, per year and pooled, with the seeds' best epochs and the folds' seconds."""
    years, pooled = result["summary"]["years"], result["summary"]["pooled"]
    names = [*_forecasters(result["summary"]), "drift", "mean_return"]
    lines = [
        "## Every forecaster against naive",
        "",
        "| year | windows | naive MAE $ | "
        + " | ".join(f"{NAMES[n]} relMAE | {NAMES[n]} DM p" for n in names)
        + " | best epochs | seconds |",
        "|---|---:|---:|" + "---:|---:|" * len(names) + "---|---:|",
    ]
    for year, entry in years.items():
        folds = [f for f in result["folds"] if str(f["year"]) == year]
        cells = [year, f"{entry['windows']:,}", f"{entry['naive_mae']:.4f}"]
        for name in names:
            value = entry[name]
            relmae = f"{value['rel_mae']:.4f}" if "rel_mae" in value else _spread(value, len(entry["seeds"]))
            cells += [relmae if name != ENSEMBLE else f"{value['rel_mae_mean']:.4f}", _p(value["dm_p"])]
        cells += ["/".join(str(f["best_epoch"]) for f in folds), f"{sum(f['seconds'] for f in folds):.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    cells = ["pooled", f"{sum(e['windows'] for e in years.values()):,}", ""]
    for name in names:
        cells += [f"{pooled[name]['rel_mae_mean']:.4f}", _p(pooled[name]["dm_p"])]
    cells += ["", f"{sum(f['seconds'] for f in result['folds']):.0f}"]
    lines.append("| " + " | ".join(cells) + " |")
    model = pooled["model"]
    lines += [
        "",
        f"Pooled DM statistic of the model against naive: {model['dm_stat']:.3f} over {model['dates']} origin "
        f"dates (negative: the model's errors are smaller); against the best baseline: "
        f"{model['vs_best']['dm_stat']:.3f}.",
    ]
    return lines


def _signal_table(result: dict[str, Any]) -> list[str]:
    """Mean IC, ICIR, its p-value, hit rate and the long-short spread before and after costs."""
    summary = result["summary"]
    if not summary["pooled"].get("signal"):
        return ["## Signal", "", "n/a: the signal needs 3 or more tickers on an origin date."]
    rows = [(year, entry["signal"]) for year, entry in summary["years"].items()]
    rows.append(("pooled", summary["pooled"]["signal"]))
    cost = next(iter(summary["pooled"]["signal"].values()))["cost_bps"]
    lines = [
        "## Signal: is it worth acting on?",
        "",
        "Per origin date across tickers (docs/backtest.md): IC = Spearman correlation of the forecast and realised "
        "h-day returns; ICIR = mean IC / its std; p = two-sided p-value of the mean (the DM test's variance); hit = "
        "share of tickers on the right side of the day's mean; long-short = top third minus bottom third by "
        f"forecast return, mean h-day return in basis points, before and after {cost:g} bp a side on the turnover "
        "from one origin to the next. Naive and mean-return give every ticker the same return: no signal.",
        "",
        "| year | forecaster | dates | mean IC | IC std | ICIR | IC p | hit rate | long-short bp | p | "
        "after costs bp | p | turnover |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for year, signal in rows:
        for name, s in signal.items():
            lines.append(
                f"| {year} | {NAMES[name]} | {s['dates']} | {s['ic_mean']:.4f} | {s['ic_std']:.4f} | "
                f"{_num(s['icir'])} | {_p(s['ic_p'])} | {s['hit_rate']:.4f} | {s['long_short_bps']:.1f} | "
                f"{_p(s['long_short_p'])} | {s['net_bps']:.1f} | {_p(s['net_p'])} | {s['turnover']:.3f} |"
            )
    width = [(y, n, s["width_ic"]) for y, signal in rows for n, s in signal.items() if "width_ic" in s]
    if width:
        lines += ["", "Does the interval know when it is unsure? Mean over dates of the Spearman correlation of the "
                  "80 % interval's relative width at step h with the realised |h-day return|: "
                  + ", ".join(f"{y} {NAMES[n]} {v:.3f}" for y, n, v in width) + "."]  # fmt: skip
    return lines


def _interval_table(result: dict[str, Any]) -> list[str]:
    """A quantile model's pinball against the best interval baseline, and its intervals' coverage and width."""
    years = result["summary"]["years"]
    first = next(iter(years.values()))
    if "interval_best_baseline" not in first:
        return []
    coverages = sorted(
        {
            k[len("coverage_") : -len("_mean")]
            for k in first["model"]
            if k.startswith("coverage_") and k.endswith("_mean")
        },
        key=int,
        reverse=True,
    )
    lines = [
        "## Quantile forecasts",
        "",
        "Mean pinball loss (mean ± std over seeds) over the best interval baseline's of the year (naive-quantile, "
        "vol-scaled or GARCH(1,1), docs/backtest.md; below 1 beats it) with the DM p-value of the per-date pinball "
        "differential; the scaled pinball against naive-quantile as the test loop reports it; each central "
        "interval's coverage and mean width in dollars.",
        "",
        "| year | best interval baseline | vs best | DM p | vs naive-quantile | "
        + " | ".join(f"{n}% coverage | {n}% width $ | baseline {n}% coverage" for n in coverages)
        + " |",
        "|---|---|---:|---:|---:|" + "---:|---:|---:|" * len(coverages),
    ]
    for year, entry in years.items():
        m, best = entry["model"], entry["interval_best_baseline"]
        cells = [
            year,
            NAMES[best],
            _spread(m, len(entry["seeds"]), "scaled_pinball_best"),
            _p(m["interval_vs_best"]["dm_p"]),
            _spread(m, len(entry["seeds"]), "scaled_pinball"),
        ]
        for n in coverages:
            baseline = entry["interval_baselines"].get(f"{best}_coverage_{n}")
            cells += [
                _spread(m, len(entry["seeds"]), f"coverage_{n}"),
                f"{m[f'width_{n}_mean']:.3f}",
                _num(baseline),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    skipped = {
        f"{NAMES[name]} ({year}): {why}"
        for year, e in years.items()
        for name, why in e.get("interval_skipped", {}).items()
    }
    if skipped:
        lines += ["", "Interval baselines skipped, so not in the bar: " + "; ".join(sorted(skipped)) + "."]
    return lines


def markdown(result: dict[str, Any], title: dict[str, str]) -> str:
    """The tables a user reads: against the best baseline first, then against naive, the signal, the intervals."""
    sections = [_best_table(result), edge_table(result), _naive_table(result), _signal_table(result)]
    sections += [book_table(result), _interval_table(result)]
    lines = _heading(title)
    for section in sections:
        if section:
            lines += [*section, ""]
    return "\n".join(lines)


def validation_markdown(result: dict[str, Any], title: dict[str, str]) -> str:
    """Per validation year the best validation relMAE (mean ± std over seeds; and a quantile model's interval
    scores at that epoch), and the mean over the years."""
    years = result["summary"]["years"]
    first = next(iter(years.values()))
    extra = [
        k.removesuffix("_mean") for k in first if k.endswith("_mean") and k not in ("val_rel_mae_mean", "val_mae_mean")
    ]
    lines = [
        *_heading({**title, "title": f"{title['title']}: validation years only"}),
        "| validation year | val relMAE (mean ± std over seeds) | "
        + "".join(f"{k.removeprefix('val_')} | " for k in extra)
        + "best epochs | seconds |",
        "|---|---:|" + "---:|" * len(extra) + "---|---:|",
    ]
    for year, entry in years.items():
        folds = [f for f in result["folds"] if str(f["year"]) == year]
        lines.append(
            f"| {year} | {_spread(entry, entry['seeds'], 'val_rel_mae')} | "
            + "".join(f"{entry[f'{k}_mean']:.4f} | " for k in extra)
            + f"{'/'.join(str(f['best_epoch']) for f in folds)} | {sum(f['seconds'] for f in folds):.0f} |"
        )
    lines.append(f"| mean | {result['summary']['mean_val_rel_mae']:.4f} | " + "| " * len(extra) + "| |")
    return "\n".join(lines) + "\n"


def write(
    out: Path,
    result: dict[str, Any],
    title: dict[str, str],
    long_short: dict[str, dict[int, pd.Series]],
    horizon: int,
) -> None:
    """``backtest.json``, ``backtest.md`` and ``backtest.png`` in ``out``; ``long_short``: per forecaster and year
    the per-date h-day long-short return after costs (bp) for the figure's second panel."""
    write_atomic(out / "backtest.json", lambda p: p.write_text(json.dumps(result, indent=2)))
    write_atomic(out / "backtest.md", lambda p: p.write_text(markdown(result, title)))
    fig = figure(result, title["title"], long_short, horizon)
    write_atomic(out / "backtest.png", lambda p: fig.savefig(p, dpi=120, format="png"))
    pyplot().close(fig)


def write_validation(out: Path, result: dict[str, Any], title: dict[str, str]) -> None:
    """``backtest.json`` and ``backtest.md`` of a validation-only backtest in ``out``."""
    write_atomic(out / "backtest.json", lambda p: p.write_text(json.dumps(result, indent=2)))
    write_atomic(out / "backtest.md", lambda p: p.write_text(validation_markdown(result, title)))
