"""What intervals cost: the fit of the point model and of the quantile model, side by side, alternating.

Usage:
    python scripts/bench_intervals.py DATA_FILE [--rounds 2] [--config configs/djia.yaml] [-- EXTRA FIT OPTIONS]

Each round fits ``--config`` alone, then with ``configs/intervals.yaml`` (its quantile levels and calibration), in
fresh processes, one after the other, on the 2017 fold of the config (no test). It prints the training seconds
(``fit_summary.json``'s ``seconds_total``: the epochs, validation and calibration included, start-up excluded) and
the wall time of each fit, and the ratio of the quantile fit's training seconds to the point fit's, per round and of
the medians. Run it alone on the machine: timings are ratios measured side by side.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def fit(data: str, configs: list[str], extra: list[str], root: Path) -> tuple[float, float]:
    """Training seconds and wall seconds of one fit."""
    command = [sys.executable, "-m", "forecast", "fit", *(a for c in configs for a in ("--config", c)),
               "--data.source", "csv", "--data.path", data, "--test_after_fit", "false",
               "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(root), *extra]  # fmt: skip
    started = time.monotonic()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.monotonic() - started
    summary = json.loads(next(root.glob("lightning_logs/version_*/fit_summary.json")).read_text())
    return float(summary["seconds_total"]), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--config", default="configs/djia.yaml")
    args, extra = parser.parse_known_args()  # the rest: more fit options (after --)
    args.extra = [a for a in extra if a != "--"]
    kinds = {"point": [args.config], "intervals": [args.config, "configs/intervals.yaml"]}
    seconds: dict[str, list[float]] = {kind: [] for kind in kinds}
    print("| round | point: training s (wall s) | intervals: training s (wall s) | ratio |")
    print("|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(1, args.rounds + 1):
            cells = []
            for kind, configs in kinds.items():
                train, wall = fit(args.data, configs, args.extra, Path(tmp) / f"{kind}{round_}")
                seconds[kind].append(train)
                cells.append(f"{train:.1f} ({wall:.1f})")
            print(f"| {round_} | {cells[0]} | {cells[1]} | {seconds['intervals'][-1] / seconds['point'][-1]:.2f} |")
    ratio = statistics.median(seconds["intervals"]) / statistics.median(seconds["point"])
    print(f"\nmedian training seconds: point {statistics.median(seconds['point']):.1f}, intervals "
          f"{statistics.median(seconds['intervals']):.1f}: ratio {ratio:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
