"""The evaluation table: model vs naive vs drift on the same windows, as Markdown and JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import Tensor

from forecast.model.quantiles import central_intervals, level_name
from forecast.plots import forecast_figure, per_step_figure

ROWS = ("model", "naive", "drift")
COLUMNS = (("mae", "MAE $"), ("rmse", "RMSE $"), ("mape", "MAPE %"), ("smape", "sMAPE %"), ("rel_mae", "relMAE"))


def results_to_dict(results: dict[str, dict[str, Tensor]]) -> dict[str, dict[str, float | list[float]]]:
    """Tensors → plain floats (``mae_step`` → list), for JSON."""
    return {
        name: {k: (v.tolist() if v.ndim else float(v)) for k, v in values.items()} for name, values in results.items()
    }


def markdown_table(results: dict[str, dict[str, float | list[float]]], split: str) -> str:
    """Two Markdown tables: the summary metrics, and MAE per horizon step."""
    lines = [
        f"### {split}: model vs baselines (dollars)",
        "",
        "| forecaster | " + " | ".join(t for _, t in COLUMNS) + " |",
    ]
    lines.append("|---|" + "---:|" * len(COLUMNS))
    for name in ROWS:
        lines.append(f"| {name} | " + " | ".join(f"{results[name][k]:.4f}" for k, _ in COLUMNS) + " |")
    steps = len(results["model"]["mae_step"])  # type: ignore[arg-type]
    lines += ["", "| MAE $ by step | " + " | ".join(str(i + 1) for i in range(steps)) + " |"]
    lines.append("|---|" + "---:|" * steps)
    for name in ROWS:
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in results[name]["mae_step"]) + " |")  # type: ignore[union-attr]
    return "\n".join(lines)


def interval_table(intervals: dict[str, Any], levels: list[float], split: str) -> str:
    """Markdown: pinball loss per level (model and the naive-quantile baseline), the scaled pinball, and the
    coverage and width of each central interval, overall and per horizon step."""
    pairs = central_intervals(levels)
    lines = [
        f"### {split}: quantile forecasts (dollars)",
        "",
        "| level | pinball $ | naive-quantile pinball $ |",
        "|---|---:|---:|",
    ]
    for k, level in enumerate(levels):
        lines.append(f"| {level_name(level)} | {intervals['pinball'][k]:.4f} | {intervals['naive_pinball'][k]:.4f} |")
    lines += ["", f"mean pinball / naive-quantile mean pinball: {intervals['scaled_pinball']:.4f}", ""]
    steps = len(intervals["coverage_step"][0]) if pairs else 0
    lines.append(
        "| interval | coverage | mean width $ | " + " | ".join(f"cov. step {i + 1}" for i in range(steps)) + " |"
    )
    lines.append("|---|---:|---:|" + "---:|" * steps)
    for k, (_, _, nominal) in enumerate(pairs):
        per_step = " | ".join(f"{v:.3f}" for v in intervals["coverage_step"][k])
        lines.append(f"| {nominal}% | {intervals['coverage'][k]:.4f} | {intervals['width'][k]:.4f} | {per_step} |")
    return "\n".join(lines)


def write_report(
    results: dict[str, dict[str, Tensor]],
    log_dir: Path,
    split: str,
    examples: tuple[Any, ...] | None = None,
    intervals: dict[str, Tensor] | None = None,
    levels: list[float] | None = None,
) -> str:
    """Save the table (``{split}_metrics.md`` / ``.json``) and figures (``{split}_per_step_mae.png``, and
    ``{split}_forecasts.png`` from ``examples``, as :func:`forecast.callbacks.forecast_examples` gives them) in
    ``log_dir``; with a quantile model's ``intervals`` and ``levels``, their table too (in the JSON under
    ``intervals``). Returns the tables."""
    tables: dict[str, Any] = results_to_dict(results)
    table = markdown_table(tables, split)
    if intervals is not None and levels:
        tables["intervals"] = {
            "levels": levels,
            **{k: (v.tolist() if v.ndim else float(v)) for k, v in intervals.items()},
        }
        table += "\n\n" + interval_table(tables["intervals"], levels, split)
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / f"{split}_metrics.json").write_text(json.dumps(tables, indent=2))
    (log_dir / f"{split}_metrics.md").write_text(table + "\n")
    per_step = per_step_figure(tables, f"{split}: MAE per horizon step")
    per_step.savefig(log_dir / f"{split}_per_step_mae.png", dpi=120)
    if examples is not None:
        forecast_figure(*examples).savefig(log_dir / f"{split}_forecasts.png", dpi=120)
    return table + f"\n\n(saved {log_dir / f'{split}_metrics.md'}, .json and figures)"
