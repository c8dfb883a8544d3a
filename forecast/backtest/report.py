"""``backtest.json``, ``backtest.md`` and ``backtest.png`` from the scored folds."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecast.atomic import write_atomic
from forecast.backtest.dm import diebold_mariano
from forecast.backtest.scoring import BASELINES, FoldScore
from forecast.plots import pyplot

COMPARED = ("model", *(b for b in BASELINES if b != "naive"))


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _dm(series: pd.Series, horizon: int) -> dict[str, float]:
    result = diebold_mariano(series.to_numpy(), horizon)
    return {"dm_stat": result.stat, "dm_p": result.p, "mean_loss_diff": result.mean, "dates": result.n}


def summarise(
    scores: dict[tuple[int, int], FoldScore], records: dict[tuple[int, int], dict[str, Any]], horizon: int
) -> dict[str, Any]:
    """The ``backtest.json`` content: one ``folds`` entry per (year, seed), and the ``summary``.

    Per year, the model's DM test is on the seeds' mean loss differential per date (the test of the average
    seed); the pooled test concatenates those per-date series over the years. Baselines do not depend on the
    seed: their numbers come from the first seed's fold.
    """
    folds = []
    for (year, seed), score in sorted(scores.items()):
        record = records[(year, seed)]
        folds.append(
            {
                "year": year,
                "seed": seed,
                **score.metrics["model"],
                "naive_mae": score.mae["naive"],
                "dm_stat": score.dm["model"].stat,
                "dm_p": score.dm["model"].p,
                "windows": score.windows,
                **(score.intervals or {}),
                "best_epoch": record["best_epoch"],
                "best_val_rel_mae": record["best_val_rel_mae"],
                "seconds": record["seconds"],
                "commands": record["commands"],
            }
        )
    years = sorted({year for year, _ in scores})
    per_year, pooled_series = {}, {name: [] for name in COMPARED}
    for year in years:
        seeds = sorted(seed for y, seed in scores if y == year)
        first = scores[(year, seeds[0])]
        model = pd.concat([scores[(year, s)].differential["model"] for s in seeds], axis=1).mean(axis=1)
        spread = {}
        for key in first.metrics["model"]:
            spread[f"{key}_mean"], spread[f"{key}_std"] = _mean_std(
                [scores[(year, s)].metrics["model"][key] for s in seeds]
            )
        if first.intervals:  # a quantile model: the interval scores' mean and std over seeds
            for key in first.intervals:
                spread[f"{key}_mean"], spread[f"{key}_std"] = _mean_std(
                    [scores[(year, s)].intervals[key] for s in seeds]  # type: ignore[index]
                )
        entry: dict[str, Any] = {
            "seeds": seeds,
            "windows": first.windows,
            "naive_mae": first.mae["naive"],
            "model": {**spread, **_dm(model, horizon)},
            "naive": first.metrics["naive"],
        }
        pooled_series["model"].append(model)
        for name in COMPARED[1:]:
            entry[name] = {
                **first.metrics[name],
                **_dm(first.differential[name], horizon),
            }
            pooled_series[name].append(first.differential[name])
        per_year[str(year)] = entry
    pooled = {
        name: {
            "rel_mae_mean": statistics.mean(
                per_year[str(y)][name]["rel_mae_mean" if name == "model" else "rel_mae"] for y in years
            ),
            **_dm(pd.concat(series), horizon),
        }
        for name, series in pooled_series.items()
    }
    return {"folds": folds, "summary": {"years": per_year, "pooled": pooled}}


def _p(value: float) -> str:
    return "< 0.0001" if value < 1e-4 else f"{value:.4f}"


def _heading(title: dict[str, str]) -> list[str]:
    return [f"# {title['title']}", "", f"Fit options of every fold: `{title['options'] or '(none)'}`", ""]


def markdown(result: dict[str, Any], title: dict[str, str]) -> str:
    """The table a user reads: per year the model (mean ± std over seeds) and the baselines, then pooled."""
    years, pooled = result["summary"]["years"], result["summary"]["pooled"]
    lines = [
        *_heading(title),
        "relMAE = MAE / naive MAE (below 1 beats naive); DM p = two-sided Diebold–Mariano p-value of the loss",
        "differential against naive (docs/backtest.md); the model's is on the mean of its seeds.",
        "",
        "| year | windows | naive MAE $ | model relMAE | model DM p | drift relMAE | drift DM p "
        "| mean-return relMAE | mean-return DM p | best epochs | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for year, entry in years.items():
        folds = [f for f in result["folds"] if str(f["year"]) == year]
        model = entry["model"]
        lines.append(
            f"| {year} | {entry['windows']:,} | {entry['naive_mae']:.4f} | {model['rel_mae_mean']:.4f} ± "
            f"{model['rel_mae_std']:.4f} | {_p(model['dm_p'])} | {entry['drift']['rel_mae']:.4f} | "
            f"{_p(entry['drift']['dm_p'])} | {entry['mean_return']['rel_mae']:.4f} | "
            f"{_p(entry['mean_return']['dm_p'])} | {'/'.join(str(f['best_epoch']) for f in folds)} | "
            f"{sum(f['seconds'] for f in folds):.0f} |"
        )
    total = sum(f["seconds"] for f in result["folds"])
    lines.append(
        f"| pooled | {sum(e['windows'] for e in years.values()):,} | | {pooled['model']['rel_mae_mean']:.4f} "
        f"(mean) | {_p(pooled['model']['dm_p'])} | {pooled['drift']['rel_mae_mean']:.4f} | "
        f"{_p(pooled['drift']['dm_p'])} | {pooled['mean_return']['rel_mae_mean']:.4f} | "
        f"{_p(pooled['mean_return']['dm_p'])} | | {total:.0f} |"
    )
    lines += [
        "",
        f"Pooled DM statistic of the model: {pooled['model']['dm_stat']:.3f} over {pooled['model']['dates']} "
        f"origin dates (negative: the model's errors are smaller).",
    ]
    coverages = sorted(
        {
            k[len("coverage_") : -len("_mean")]
            for e in years.values()
            for k in e["model"]
            if k.startswith("coverage_") and k.endswith("_mean")
        },
        key=int,
        reverse=True,
    )
    if coverages:  # a quantile model
        lines += [
            "",
            "Quantile forecasts (mean ± std over seeds): pinball loss scaled by the naive-quantile baseline's (below 1 "
            "beats it), and each central interval's coverage and mean width in dollars.",
            "",
            "| year | scaled pinball | " + " | ".join(f"{n}% coverage | {n}% width $" for n in coverages) + " |",
            "|---|---:|" + "---:|---:|" * len(coverages),
        ]
        for year, entry in years.items():
            m = entry["model"]
            cells = [f"{m['scaled_pinball_mean']:.4f} ± {m['scaled_pinball_std']:.4f}"]
            for n in coverages:
                cells += [
                    f"{m[f'coverage_{n}_mean']:.4f} ± {m[f'coverage_{n}_std']:.4f}",
                    f"{m[f'width_{n}_mean']:.3f}",
                ]
            lines.append(f"| {year} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def figure(result: dict[str, Any], title: str) -> Any:
    """relMAE per year (model: mean with the seeds' std as error bars; baselines as markers) and pooled."""
    plt = pyplot()
    years, pooled = result["summary"]["years"], result["summary"]["pooled"]
    labels = [*years, "pooled"]
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(1.1 * len(labels) + 3, 3.8))
    model = [e["model"]["rel_mae_mean"] for e in years.values()] + [pooled["model"]["rel_mae_mean"]]
    spread = [e["model"]["rel_mae_std"] for e in years.values()] + [0.0]
    ax.errorbar(x, model, yerr=spread, fmt="o", color="tab:red", capsize=4, label="model (mean ± std over seeds)")
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
    for i, p in enumerate([e["model"]["dm_p"] for e in years.values()] + [pooled["model"]["dm_p"]]):
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
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def validation_summary(records: dict[tuple[int, int], dict[str, Any]]) -> dict[str, Any]:
    """A validation-only backtest: per validation year the best validation relMAE (mean, std over seeds)."""
    folds = [{"year": year, "seed": seed, **record} for (year, seed), record in sorted(records.items())]
    years = {}
    for year in sorted({year for year, _ in records}):
        rows = [r for (y, _), r in sorted(records.items()) if y == year]
        entry: dict[str, Any] = {"seeds": len(rows)}
        for key in [k for k in rows[0] if k.startswith("best_val_")]:  # rel_mae, and a quantile model's scores
            name = key.removeprefix("best_")
            entry[f"{name}_mean"], entry[f"{name}_std"] = _mean_std([r[key] for r in rows])
        years[str(year)] = entry
    mean_over_years = statistics.mean(e["val_rel_mae_mean"] for e in years.values())
    return {"validation_only": True, "folds": folds, "summary": {"years": years, "mean_val_rel_mae": mean_over_years}}


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
            f"| {year} | {entry['val_rel_mae_mean']:.4f} ± {entry['val_rel_mae_std']:.4f} | "
            + "".join(f"{entry[f'{k}_mean']:.4f} | " for k in extra)
            + f"{'/'.join(str(f['best_epoch']) for f in folds)} | {sum(f['seconds'] for f in folds):.0f} |"
        )
    lines.append(f"| mean | {result['summary']['mean_val_rel_mae']:.4f} | " + "| " * len(extra) + "| |")
    return "\n".join(lines) + "\n"


def write(out: Path, result: dict[str, Any], title: dict[str, str]) -> None:
    write_atomic(out / "backtest.json", lambda p: p.write_text(json.dumps(result, indent=2)))
    write_atomic(out / "backtest.md", lambda p: p.write_text(markdown(result, title)))
    fig = figure(result, f"{title['title']}: relMAE per year, DM p-value against naive")
    write_atomic(out / "backtest.png", lambda p: fig.savefig(p, dpi=120, format="png"))
    pyplot().close(fig)


def write_validation(out: Path, result: dict[str, Any], title: dict[str, str]) -> None:
    write_atomic(out / "backtest.json", lambda p: p.write_text(json.dumps(result, indent=2)))
    write_atomic(out / "backtest.md", lambda p: p.write_text(validation_markdown(result, title)))
