"""Benchmark the data pipeline on a large synthetic panel: setup time, batch throughput, peak RSS.

Usage:
    python scripts/bench_data.py [--tickers 500] [--days 5000] [--batch-size 256] [--csv PATH]

Generates a synthetic panel (tickers x business days), writes it to a CSV (a temporary one, or ``--csv PATH``,
kept and reused when it exists: 5,000 x 5,000 takes two minutes and 1.3 GB), then times
``StockDataModule.setup("fit")`` (read + validate + index, stride 1) and one pass over the training batches,
and prints a table with the window counts, the memory the window index takes, what materialising every
window would take instead, and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from forecast.data import StockDataModule, synthetic_panel


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def write_panel(path: str, tickers: int, days: int) -> None:
    end = (pd.Timestamp("2000-01-03") + pd.offsets.BDay(days - 1)).strftime("%Y-%m-%d")
    synthetic_panel(n_tickers=tickers, start="2000-01-03", end=end, seed=0).to_csv(path, index=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickers", type=int, default=500)
    parser.add_argument("--days", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--csv", default=None, help="keep the generated CSV here; reuse it when it exists")
    parser.add_argument(
        "--setup-only", action="store_true", help="stop after setup: print its seconds and peak RSS as one JSON line"
    )
    parser.add_argument("--_write", dest="write", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write:
        write_panel(args.write, args.tickers, args.days)
        return
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.csv or Path(tmp) / "panel.csv")
        generate_s = 0.0
        if not path.is_file():
            # generated in a child process, so this process's peak RSS measures the data pipeline alone
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, __file__, "--_write", str(path), "--tickers", str(args.tickers), "--days",
                 str(args.days)],
                check=True,
            )  # fmt: skip
            generate_s = time.perf_counter() - start
        rss_before = peak_rss_mb()
        start = time.perf_counter()
        dm = StockDataModule(source="csv", path=str(path), batch_size=args.batch_size)
        dm.setup("fit")
        setup_s = time.perf_counter() - start
        rss_setup = peak_rss_mb()
    if args.setup_only:
        print(json.dumps({"setup_s": round(setup_s, 2), "rss_setup_mb": round(rss_setup), "rows": len(dm.panel.dates)}))
        return
    train = dm.datasets["train"]
    start = time.perf_counter()
    batches = sum(1 for _ in dm.train_dataloader())
    epoch_s = time.perf_counter() - start
    windows = sum(len(dm.datasets[k]) for k in ("train", "val", "test"))
    index_mb = sum(dm.datasets[k].starts.numel() * 8 for k in ("train", "val", "test")) / 2**20
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in (dm.panel.values, dm.panel.close)}
    data_mb = sum(storages.values()) / 2**20  # Close may be a view of the input channels
    materialised_mb = windows * (30 + 10) * 8 / 2**20

    rows = [
        ("panel", f"{args.tickers} tickers x {args.days} days = {len(dm.panel.dates):,} rows"),
        ("generate + write CSV (not timed below)", f"{generate_s:.1f} s" if generate_s else f"reused {path}"),
        ("setup('fit'): read CSV + validate + index", f"{setup_s:.2f} s"),
        (
            "windows (train / val / test)",
            f"{len(train):,} / {len(dm.datasets['val']):,} / {len(dm.datasets['test']):,}",
        ),
        (
            "one pass over train batches (gather + normalise)",
            f"{epoch_s:.2f} s, {batches} batches, {len(train) / epoch_s:,.0f} windows/s",
        ),
        ("price tensors held", f"{data_mb:.1f} MB"),
        ("window index held (int64 starts)", f"{index_mb:.1f} MB"),
        ("every window materialised would be", f"{materialised_mb:.0f} MB"),
        (
            "peak RSS after imports / after setup / after one pass",
            f"{rss_before:.0f} MB / {rss_setup:.0f} MB / {peak_rss_mb():.0f} MB",
        ),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"# bench_data (torch.set_num_threads(1), batch {args.batch_size})")
    print(f"| {'what'.ljust(width)} | value |\n|{'-' * (width + 2)}|---|")
    for key, value in rows:
        print(f"| {key.ljust(width)} | {value} |")


if __name__ == "__main__":
    main()
