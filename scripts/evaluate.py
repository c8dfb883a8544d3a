"""Run N seeds of a config (fit, then test) and print mean ± std of the protocol table; optionally a grid first.

Usage:
    python scripts/evaluate.py --config configs/djia.yaml --seeds 0 1 2 [--out runs/eval] [-- EXTRA CLI ARGS]
    python scripts/evaluate.py --config configs/djia.yaml --grid model.lookback=3,5 data.normalisation=zscore,last_std
                               --grid-seeds 0 --seeds 0 1 2

With ``--grid``, every combination is fitted with the ``--grid-seeds`` WITHOUT looking at the test split
(``--test_after_fit false``) and ranked by validation MAE (``val/mae`` of its best epoch); then the winner
alone is fitted with ``--seeds`` and scored on the test split, once. Each run is the real CLI in a
subprocess (``python -m forecast fit``); its logs, checkpoints, ``fit_summary.json`` and ``test_metrics.json``
stay under ``--out``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
from pathlib import Path

from forecast.plots import per_step_figure

METRICS = (("mae", "MAE $"), ("rmse", "RMSE $"), ("mape", "MAPE %"), ("smape", "sMAPE %"), ("rel_mae", "relMAE"))


def read_run(out: Path, test: bool) -> dict:
    log_dir = max((out / "lightning_logs").glob("version_*"), key=lambda p: int(p.name.split("_")[1]))
    result = {"fit": json.loads((log_dir / "fit_summary.json").read_text())}
    if test:
        result["test"] = json.loads((log_dir / "test_metrics.json").read_text())
    return result


def run_fit(
    config: str, seed: int, overrides: list[str], out: Path, test: bool, extra: list[str], reuse: bool = False
) -> dict:
    if reuse and (out / "stdout.txt").is_file():  # a finished run from an earlier invocation
        return read_run(out, test)
    out.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "forecast",
        "fit",
        "--config",
        config,
        "--seed_everything",
        str(seed),
        "--trainer.default_root_dir",
        str(out),
        "--trainer.enable_progress_bar",
        "false",
        "--test_after_fit",
        str(test).lower(),
        *overrides,
        *extra,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    (out / "stdout.txt").write_text(done.stdout)
    (out / "stderr.txt").write_text(done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"run failed ({' '.join(cmd)}):\n{done.stderr[-2000:]}")
    return read_run(out, test)


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def split_values(values: str) -> list[str]:
    """``a,[1,2],b`` → ``["a", "[1,2]", "b"]``: commas inside brackets belong to the value."""
    parts, depth, current = [], 0, ""
    for char in values:
        if char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


def grid_points(grid: list[str]) -> list[list[str]]:
    axes = []
    for item in grid:
        key, _, values = item.partition("=")
        axes.append([(key, v) for v in split_values(values)])
    return [[arg for key, value in combo for arg in (f"--{key}", value)] for combo in itertools.product(*axes)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2], help="final seeds; none: grid only")
    parser.add_argument("--grid", nargs="*", default=[], help="KEY=V1,V2 ... (CLI keys without the leading --)")
    parser.add_argument("--grid-seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", default="runs/evaluate")
    parser.add_argument("--reuse", action="store_true", help="reuse finished runs found under --out")
    parser.add_argument("--plot", default=None, help="write the seeds' mean MAE per step to this PNG")
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="after --: passed to every fit")
    args = parser.parse_args()
    extra = [a for a in args.extra if a != "--"]
    out = Path(args.out)

    chosen: list[str] = []
    if args.grid:
        print("| grid point | val relMAE | val MAE $ | best epoch | s to best |\n|---|---:|---:|---:|---:|")
        ranked = []
        for i, point in enumerate(grid_points(args.grid)):
            fits = [
                run_fit(args.config, s, point, out / f"grid{i:02d}-seed{s}", False, extra)["fit"]
                for s in args.grid_seeds
            ]
            val_mae = statistics.mean(f["best_val_mae"] for f in fits)
            ranked.append((val_mae, point))
            print(
                f"| {' '.join(point)} | {mean_std([f['best_val_rel_mae'] for f in fits])} | "
                f"{mean_std([f['best_val_mae'] for f in fits])} | {'/'.join(str(f['best_epoch']) for f in fits)} | "
                f"{mean_std([f['seconds_to_best'] for f in fits])} |",
                flush=True,
            )
        chosen = min(ranked)[1]
        print(f"\nchosen by validation MAE: {' '.join(chosen) or '(config as is)'}\n")
    if not args.seeds:
        return

    runs = [run_fit(args.config, s, chosen, out / f"final-seed{s}", True, extra, args.reuse) for s in args.seeds]
    print(f"## {args.config} {' '.join([*chosen, *extra])}: {len(runs)} seeds {args.seeds}\n")
    print("| forecaster | " + " | ".join(t for _, t in METRICS) + " |\n|---|" + "---:|" * len(METRICS))
    for name in ("model", "naive", "drift"):
        cells = [mean_std([r["test"][name][k] for r in runs]) for k, _ in METRICS]
        print(f"| {name} | " + " | ".join(cells) + " |")
    steps = len(runs[0]["test"]["model"]["mae_step"])
    print("\n| MAE $ by step | " + " | ".join(str(i + 1) for i in range(steps)) + " |\n|---|" + "---:|" * steps)
    for name in ("model", "naive", "drift"):
        cells = [f"{statistics.mean(r['test'][name]['mae_step'][i] for r in runs):.3f}" for i in range(steps)]
        print(f"| {name} | " + " | ".join(cells) + " |")
    if args.plot:
        mean = {
            name: {
                "mae": statistics.mean(r["test"][name]["mae"] for r in runs),
                "mae_step": [statistics.mean(r["test"][name]["mae_step"][i] for r in runs) for i in range(steps)],
            }
            for name in ("model", "naive", "drift")
        }
        title = f"test 2017, mean of {len(runs)} seeds: MAE per horizon step"
        per_step_figure(mean, title).savefig(args.plot, dpi=120)
        print(f"\nwrote {args.plot}")
    fits = [r["fit"] for r in runs]
    print(
        f"\nvalidation relMAE {mean_std([f['best_val_rel_mae'] for f in fits])}; "
        f"seconds to best checkpoint {mean_std([f['seconds_to_best'] for f in fits])} "
        f"(best epochs {[f['best_epoch'] for f in fits]}); peak RSS {max(f['peak_rss_mb'] for f in fits):.0f} MB; "
        f"{fits[0]['torch_threads']} torch threads"
    )


if __name__ == "__main__":
    main()
