"""The evaluation table: model vs naive vs drift on the same windows, as Markdown and JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import Tensor

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


def write_report(
    results: dict[str, dict[str, Tensor]],
    log_dir: Path,
    split: str,
    examples: tuple[dict[str, Any], Tensor] | None = None,
) -> str:
    """Save the table (``{split}_metrics.md`` / ``.json``) and figures (``{split}_per_step_mae.png``, and
    ``{split}_forecasts.png`` from ``examples = (batch, dollar forecasts)``) in ``log_dir``; return the table."""
    plain = results_to_dict(results)
    table = markdown_table(plain, split)
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / f"{split}_metrics.json").write_text(json.dumps(plain, indent=2))
    (log_dir / f"{split}_metrics.md").write_text(table + "\n")
    per_step = per_step_figure(plain, f"{split}: MAE per horizon step")
    per_step.savefig(log_dir / f"{split}_per_step_mae.png", dpi=120)
    if examples is not None:
        forecast_figure(*examples).savefig(log_dir / f"{split}_forecasts.png", dpi=120)
    return table + f"\n\n(saved {log_dir / f'{split}_metrics.md'}, .json and figures)"
