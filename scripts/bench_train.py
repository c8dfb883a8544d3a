"""Training throughput of the Forecaster on one or more datasets, side by side: windows/s, epoch time, peak RSS.

Usage:
    python scripts/bench_train.py [--data PATH ...] [--config configs/djia.yaml] [--batch-sizes 256 4096]
                                  [--threads N] [--steps 50] [--epoch-batches 200] [--device cpu|cuda|auto]

``--data`` takes CSV files (the DJIA file by default, when ``../shared`` has it; a synthetic panel written by
``scripts/bench_data.py --csv PATH`` for a large universe); without any, the built-in synthetic panel. Model and
data settings come from ``--config`` (its ``model`` and ``data`` sections; ``torch_threads`` unless ``--threads``).
Each dataset is measured in its own process, so its peak RSS is its own. For each device and batch size, a row:

- compute: windows/s of forward + backward + optimizer step over ``--steps`` steps, cycling 20 batches already
  in memory (the model alone);
- epoch: the time to the end of a real training epoch's first step (the sampler draws the epoch's permutation of
  the training windows then), and windows/s over the next ``--epoch-batches`` batches, drawn by the shuffled
  sampler through the DataLoader (gathering and normalising included); the epoch time they imply for the whole
  training split;
- the process's peak RSS after setup and these steps.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

from forecast.data import StockDataModule
from forecast.model import Forecaster

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared/data/djia/all_stocks_2006-01-01_to_2018-01-01.csv.gz"


def load_config(config: str) -> tuple[dict, dict, int | None]:
    """The ``model`` section (without optimizer and scheduler), the ``data`` section (without the source) and
    ``torch_threads`` of a config file."""
    raw = yaml.safe_load(Path(config).read_text()) or {}
    model = {k: v for k, v in (raw.get("model") or {}).items() if k not in ("optimizer", "lr_scheduler")}
    data = {k: v for k, v in (raw.get("data") or {}).items() if k not in ("source", "path", "batch_size")}
    return model, data, raw.get("torch_threads")


def measure(device: str, dm: StockDataModule, model_args: dict, steps: int, epoch_batches: int) -> dict[str, float]:
    """Windows/s of training steps on ``device``: compute alone, then a real epoch's first batches."""
    torch.manual_seed(0)
    model = Forecaster(
        in_channels=dm.in_channels,
        base_len=dm.hparams.base_len,
        horizon=dm.hparams.horizon,
        target_channel=dm.channels.index("Close"),
        **model_args,
    ).to(device)
    optimizer = model.configure_optimizers()["optimizer"]

    def to_device(batch: dict) -> dict:
        return {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items()}

    def step(batch: dict) -> None:
        optimizer.zero_grad(set_to_none=True)
        model.training_loss(batch).backward()
        optimizer.step()

    def synchronise() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    loader = dm.train_dataloader()
    batches = []
    for batch in loader:
        batches.append(to_device(batch))
        if len(batches) == 20:
            break
    for batch in batches[:5]:  # warm-up
        step(batch)
    synchronise()
    start, windows = time.perf_counter(), 0
    for i in range(steps):
        step(batches[i % len(batches)])
        windows += batches[i % len(batches)]["x"].shape[0]
    synchronise()
    compute = windows / (time.perf_counter() - start)
    del batches

    start = time.perf_counter()
    batches = iter(loader)
    step(to_device(next(batches)))  # an epoch starts by drawing its permutation of the training windows
    synchronise()
    first_s = time.perf_counter() - start
    start, windows = time.perf_counter(), 0
    for _, batch in zip(range(epoch_batches), batches, strict=False):
        step(to_device(batch))
        windows += batch["x"].shape[0]
    synchronise()
    epoch = windows / (time.perf_counter() - start)
    return {
        "compute": compute,
        "epoch": epoch,
        "first_s": first_s,
        "epoch_s": first_s + len(dm.datasets["train"]) / epoch,
    }


def duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:,.1f} min"


def run_one(args: argparse.Namespace) -> None:
    """Measure one dataset (in this process) and print its table rows."""
    model_args, data_args, config_threads = load_config(args.config)
    threads = args.threads or config_threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    source = {"source": "csv", "path": args.one} if args.one != "synthetic" else {"source": "synthetic"}
    start = time.perf_counter()
    dm = StockDataModule(**source, **data_args)
    dm.setup("fit")
    setup_s = time.perf_counter() - start
    devices = ["cpu", "cuda"] if args.device == "auto" else [args.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    panel = dm.panel
    name = f"{Path(args.one).name} ({len(panel.names):,} tickers, {len(panel.dates):,} rows)"
    for device in devices:
        for batch_size in args.batch_sizes:
            dm.hparams.batch_size = batch_size
            where = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {threads} thread(s)"
            try:
                r = measure(device, dm, model_args, args.steps, args.epoch_batches)
            except torch.cuda.OutOfMemoryError:  # the largest batch that fits is the one before
                print(f"| {name} | | | {where} | {batch_size} | out of memory | | | | |", flush=True)
                torch.cuda.empty_cache()
                break
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(
                f"| {name} | {len(dm.datasets['train']):,} | {setup_s:.1f} s | {where} | {batch_size} | "
                f"{r['compute']:,.0f} | {r['first_s']:.2f} s | {r['epoch']:,.0f} | {duration(r['epoch_s'])} | "
                f"{rss:,.0f} MB |",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=[str(DEFAULT_DATA)] if DEFAULT_DATA.is_file() else ["synthetic"])
    parser.add_argument("--config", default=str(ROOT / "configs" / "djia.yaml"))
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 4096])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the config's)")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--epoch-batches", type=int, default=200)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--_one", dest="one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        run_one(args)
        return
    for path in args.data:
        if path != "synthetic" and not Path(path).is_file():
            parser.error(f"--data {path}: no such file")
    print(f"# bench_train: config {args.config}, {args.steps} compute steps, {args.epoch_batches} epoch batches")
    print(
        "| data | training windows | setup | device | batch | compute windows/s | epoch's first batch "
        "| epoch windows/s | epoch, implied | peak RSS |"
    )
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|", flush=True)
    for path in args.data:
        options = [
            "--config", args.config, "--steps", str(args.steps), "--epoch-batches", str(args.epoch_batches),
            "--device", args.device, "--batch-sizes", *map(str, args.batch_sizes),
        ]  # fmt: skip
        if args.threads:
            options += ["--threads", str(args.threads)]
        subprocess.run([sys.executable, __file__, "--_one", path, *options], check=True)


if __name__ == "__main__":
    main()
