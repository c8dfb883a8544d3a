"""The data pipeline's setup against an earlier commit's, side by side in one run: ``bench_data.py --setup-only``
on one CSV, the two checkouts alternating, each run in a fresh process; the median of each.

    python scripts/compare_reader.py --rev b03d21a --csv /tmp/p5000.csv [--rounds 3] [--tickers 5000 --days 5000]

The CSV is written once by ``bench_data.py`` when it does not exist. The earlier commit is checked out in a temporary
``git worktree``; both run this checkout's ``scripts/bench_data.py``, importing their own ``forecast`` package.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "scripts" / "bench_data.py"


def _run(tree: Path, csv: str, size: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, str(BENCH), "--setup-only", "--csv", csv, *size], cwd=tree, env=env,
                          capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", required=True, help="the earlier commit")
    parser.add_argument("--csv", required=True, help="the panel CSV (written once when missing)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tickers", default="5000")
    parser.add_argument("--days", default="5000")
    args = parser.parse_args()
    size = ["--tickers", args.tickers, "--days", args.days]
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old), args.rev], check=True,
                       capture_output=True)  # fmt: skip
        try:
            runs: dict[str, list[dict]] = {args.rev: [], "this checkout": []}
            for round_ in range(args.rounds):
                for label, tree in ((args.rev, old), ("this checkout", ROOT)):
                    runs[label].append(_run(tree, args.csv, size))
                    print(f"round {round_ + 1} {label}: {runs[label][-1]}", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], check=False)
    print(f"\n| checkout | setup s (median of {args.rounds}) | peak RSS after setup, MB (median) |\n|---|---:|---:|")
    for label, results in runs.items():
        setup = statistics.median(r["setup_s"] for r in results)
        rss = statistics.median(r["rss_setup_mb"] for r in results)
        print(f"| {label} | {setup:.2f} | {rss:.0f} |")


if __name__ == "__main__":
    main()
