"""Training throughput of the Forecaster: windows/s for forward + backward + optimizer step, epoch time, peak RSS.

Usage:
    python scripts/bench_train.py [--data PATH] [--config configs/djia.yaml] [--threads 2] [--steps 100]
                                  [--device cpu|cuda|auto]

Uses the DJIA training split when ``--data`` (default ``../shared/data/djia/...csv.gz``) exists, else the
synthetic panel. Model and data settings come from ``--config`` (its ``model`` and ``data`` sections).
Prints one row per device: windows/s over ``--steps`` steps after warm-up, the implied time of one epoch
over the whole training split, the wall time of one real epoch through the DataLoader (CPU only), and the
process's peak RSS. With ``--device auto`` a GPU, when present, is measured after the CPU.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import torch
import yaml

from forecast.data import StockDataModule
from forecast.model import Forecaster

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared/data/djia/all_stocks_2006-01-01_to_2018-01-01.csv.gz"


def load_sections(config: str | None) -> tuple[dict, dict]:
    if not config:
        return {}, {}
    raw = yaml.safe_load(Path(config).read_text()) or {}
    model = {k: v for k, v in (raw.get("model") or {}).items() if k not in ("optimizer", "lr_scheduler")}
    data = {k: v for k, v in (raw.get("data") or {}).items() if k not in ("source", "path")}
    return model, data


def measure(device: str, dm: StockDataModule, model_args: dict, steps: int) -> dict[str, float]:
    data_hp = dm.hparams
    model = Forecaster(
        in_channels=dm.in_channels,
        base_len=data_hp.base_len,
        horizon=data_hp.horizon,
        target_channel=dm.channels.index("Close"),
        **model_args,
    ).to(device)
    optimizer = model.configure_optimizers()["optimizer"]
    loader = dm.train_dataloader()
    batches = []
    for batch in loader:
        batches.append({k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items()})
        if len(batches) == 20:
            break

    def step(batch: dict) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = model.training_loss(batch)
        loss.backward()
        optimizer.step()

    for batch in batches[:5]:  # warm-up
        step(batch)
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    windows = 0
    for i in range(steps):
        batch = batches[i % len(batches)]
        step(batch)
        windows += batch["x"].shape[0]
    if device == "cuda":
        torch.cuda.synchronize()
    rate = windows / (time.perf_counter() - start)
    result = {"windows_per_s": rate, "epoch_s_implied": len(dm.datasets["train"]) / rate}
    if device == "cpu":
        start = time.perf_counter()
        for batch in loader:
            step(batch)
        result["epoch_s_real"] = time.perf_counter() - start
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "configs" / "djia.yaml"))
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model_args, data_args = load_sections(args.config)
    source = {"source": "csv", "path": args.data} if Path(args.data).is_file() else {"source": "synthetic"}
    dm = StockDataModule(**source, **data_args)
    dm.setup("fit")
    devices = ["cpu", "cuda"] if args.device == "auto" else [args.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    print(
        f"# bench_train: {source['source']} data, {len(dm.datasets['train']):,} training windows, "
        f"batch {dm.hparams.batch_size}, config {args.config}, torch.set_num_threads({args.threads})"
    )
    print("| device | windows/s (fwd+bwd+step) | epoch, implied | epoch, real (with data loading) | peak RSS |")
    print("|---|---:|---:|---:|---:|")
    for device in devices:
        r = measure(device, dm, model_args, args.steps)
        name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
        real = f"{r['epoch_s_real']:.1f} s" if "epoch_s_real" in r else "—"
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"| {name} | {r['windows_per_s']:,.0f} | {r['epoch_s_implied']:.1f} s | {real} | {rss:.0f} MB |")


if __name__ == "__main__":
    main()
