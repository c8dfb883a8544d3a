"""What ``forecast tune`` writes: ``best.yaml`` (the base config with the best trial's settings), ``tune.md`` (the
trials, best first), ``tune.json`` (the same as data) and ``tune.png`` (optimisation history and importances)."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import optuna
import yaml

from forecast.atomic import write_atomic
from forecast.tune.space import Dimension, decode_params
from forecast.tune.trials import BASE_ATTR


def trial_rows(study: Any, dimensions: list[Dimension], years: list[int]) -> list[dict[str, Any]]:
    """One row per trial, best first: complete trials by objective, then pruned (by their last running value),
    then failed and running ones by number."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        state = trial.state.name.lower()
        intermediate = list(trial.intermediate_values.values())
        rows.append(
            {
                "number": trial.number,
                "state": state,
                "objective": trial.value,
                "running": intermediate[-1] if intermediate else None,
                "years": {str(y): trial.user_attrs.get(f"val_{y}") for y in years},
                "seconds": trial.user_attrs.get("seconds"),
                "settings": decode_params(dimensions, trial.params),
                "reason": trial.user_attrs.get("fail_reason")
                or (f"pruned after {trial.user_attrs.get('pruned_after')}" if state == "pruned" else "")
                or ("the base config's settings" if trial.user_attrs.get(BASE_ATTR) else ""),
                "base_config": bool(trial.user_attrs.get(BASE_ATTR)),
                "folder": trial.user_attrs.get("folder"),
            }
        )
    order = {"complete": 0, "pruned": 1}
    return sorted(
        rows,
        key=lambda r: (
            order.get(r["state"], 2),
            r["objective"] if r["state"] == "complete" else (r["running"] if r["state"] == "pruned" else 0.0),
            r["number"],
        ),
    )


def pruning_savings(rows: list[dict[str, Any]], years: list[int]) -> dict[str, float] | None:
    """Seconds spent, and seconds the pruned trials would have spent on the years they skipped (each skipped fold
    costed at the mean fold time of the complete trials); None before a complete trial."""
    complete = [r for r in rows if r["state"] == "complete" and r["seconds"]]
    if not complete:
        return None
    per_fold = sum(r["seconds"] for r in complete) / (len(complete) * len(years))
    spent = sum(r["seconds"] or 0.0 for r in rows)
    saved = sum(per_fold * sum(1 for y in years if r["years"][str(y)] is None) for r in rows if r["state"] == "pruned")
    return {"spent_seconds": spent, "saved_seconds": saved, "saved_fraction": saved / (spent + saved) if spent else 0.0}


def importances(study: Any) -> dict[str, float]:
    """Parameter importances over the complete trials by Optuna's default evaluator (PED-ANOVA: how much each
    setting's distribution among the best 10 % of trials departs from that among all; deterministic, no scikit-learn
    needed); empty with fewer than two complete trials."""

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < 2:
        return {}
    try:
        with warnings.catch_warnings():  # few trials: "target and region quantiles select the same set": all equal
            warnings.simplefilter("ignore", UserWarning)
            return dict(optuna.importance.get_param_importances(study))
    except (RuntimeError, ValueError):  # e.g. every complete trial has the same settings
        return {}


def progress_line(study: Any, trial: Any, elapsed: float) -> str:
    """``trial N complete: 0.9871 (2010 0.9901, ...) | best 0.9850 (trial 3) | 78 s | 12:03 elapsed``."""
    years = [f"{k[4:]} {v:.4f}" for k, v in trial.user_attrs.items() if k.startswith("val_")]
    state = trial.state.name.lower()
    if state == "complete":
        what = f"complete: {trial.value:.4f} ({', '.join(years)})"
    elif state == "pruned":
        what = f"pruned after {trial.user_attrs.get('pruned_after')} ({', '.join(years)})"
    else:
        what = f"{state}: {trial.user_attrs.get('fail_reason', 'see the log')}"
    try:
        best = f"best {study.best_value:.4f} (trial {study.best_trial.number})"
    except ValueError:
        best = "no complete trial yet"
    minutes, seconds = divmod(int(elapsed), 60)
    seconds_spent = trial.user_attrs.get("seconds", 0)
    return f"trial {trial.number} {what} | {best} | {seconds_spent:.0f} s | {minutes}:{seconds:02d} elapsed"


def write_best(path: Path, config: dict[str, Any], header: str) -> None:
    """``best.yaml``: ``config`` (fit's own parse of the user's options and the best trial's, so that a setting
    named by a shorthand lands where fit reads it) under a comment ``header``."""
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    text = comment + yaml.safe_dump(config, sort_keys=False, default_flow_style=None)
    write_atomic(path, lambda tmp: tmp.write_text(text))


def _number(value: float | None, digits: int = 4) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _setting(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def write_markdown(path: Path, summary: dict[str, Any], rows: list[dict[str, Any]], years: list[int]) -> None:
    """``tune.md``: what was searched and how long it took, the best trial, the importances, every trial."""
    names = summary["dimensions"]
    lines = [f"# {summary['title']}", "", f"`{summary['command']}`", ""]
    lines += [f"- {key}: {value}" for key, value in summary["facts"].items()]
    best = summary.get("best")
    if best:
        lines += [
            "",
            f"**Best: trial {best['number']}, mean validation relMAE {best['objective']:.4f}** "
            f"({', '.join(f'{y}: {v:.4f}' for y, v in best['years'].items())}); settings in `best.yaml`:",
            "",
        ]
        lines += [f"- `{k}`: {_setting(v)}" for k, v in best["settings"].items()]
    base = summary.get("base")
    if base:
        years_text = ", ".join(f"{y}: {v:.4f}" for y, v in base["years"].items())
        where = f"trial {base['number']}" if base["number"] is not None else "run beside the study: outside the space"
        settings = ", ".join(f"{k} {_setting(v)}" for k, v in base["settings"].items())
        lines += ["", f"The base config as configured ({where}; {settings}): {base['objective']:.4f} ({years_text})."]
    if summary.get("importances"):
        lines += ["", "Parameter importances (PED-ANOVA over the complete trials, Optuna's default evaluator):", ""]
        lines += [f"- `{k}`: {v:.3f}" for k, v in summary["importances"].items()]
    header = ["trial", "state", "objective", *(f"val {y}" for y in years), "seconds", *names, "note"]
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [str(row["number"]), row["state"], _number(row["objective"])]
        cells += [_number(row["years"][str(y)]) for y in years]
        cells += [_number(row["seconds"], 0), *(_setting(row["settings"].get(n, "")) for n in names)]
        cells.append(str(row["reason"]).replace("|", "/"))
        lines.append("| " + " | ".join(cells) + " |")
    write_atomic(path, lambda tmp: tmp.write_text("\n".join(lines) + "\n"))


def write_figure(path: Path, rows: list[dict[str, Any]], importance: dict[str, float]) -> None:
    """``tune.png``: the objective of each complete trial and the best so far (pruned and failed trials as ticks
    along the bottom), and the parameter importances."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    figure, (history, bars) = plt.subplots(1, 2, figsize=(12, 4.5), width_ratios=[3, 2])
    complete = sorted((r["number"], r["objective"]) for r in rows if r["state"] == "complete")
    if complete:
        history.scatter(*zip(*complete, strict=True), s=18, color="tab:blue", label="complete")
        best, steps = math.inf, []
        for number, value in complete:
            best = min(best, value)
            steps.append((number, best))
        history.step(*zip(*steps, strict=True), where="post", color="tab:red", label="best so far")
        base = [(r["number"], r["objective"]) for r in rows if r["state"] == "complete" and r.get("base_config")]
        if base:
            history.scatter(*zip(*base, strict=True), s=90, marker="*", color="tab:orange", label="base config")
    # a pruned trial has no mean over all the years (its first years' scores are not on the same scale): a tick
    other = {"pruned": "grey", "fail": "black"}
    for state, colour in other.items():
        numbers = [r["number"] for r in rows if r["state"] == state]
        if numbers:
            history.plot(numbers, [0.02 if state == "pruned" else 0.06] * len(numbers), "|", color=colour, ms=10,
                         transform=history.get_xaxis_transform(), label=state)  # fmt: skip
    history.set(xlabel="trial", ylabel="mean validation relMAE", title="Optimisation history")
    history.xaxis.set_major_locator(MaxNLocator(integer=True))  # trial numbers, not 0.25
    if complete or any(r["state"] in other for r in rows):
        history.legend(loc="best", fontsize=8)
    if importance:
        names = list(importance)[::-1]
        bars.barh(names, [importance[n] for n in names], color="tab:blue")
        bars.tick_params(axis="y", labelsize=7)
    bars.set(xlabel="importance (PED-ANOVA)", title="Parameter importances")
    figure.tight_layout()
    try:
        write_atomic(path, lambda tmp: figure.savefig(tmp, dpi=110, format="png"))
    finally:
        plt.close(figure)
