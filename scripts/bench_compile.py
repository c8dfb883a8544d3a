"""Training throughput of the Forecaster eager vs ``torch.compile`` (``--model.compile true``), side by side.

Usage:
    python scripts/bench_compile.py [--config configs/djia.yaml] [--steps 100] [--rounds 2] [--quantiles]
                                    [--device cpu|cuda]

Each measurement runs in its own process with the config's model, ``batch_size`` and ``torch_threads``, on
windows of the built-in synthetic panel (31 tickers; throughput does not depend on the prices): training steps
(forward + backward + AdamW step) over batches already in memory, the last one smaller than the rest as in a
real epoch. Three kinds, in turn, ``--rounds`` times:

- ``eager``: the model as it runs by default;
- ``compiled, cold``: ``compile=True`` with an empty inductor cache (a fresh ``TORCHINDUCTOR_CACHE_DIR``): what a
  user's first run pays;
- ``compiled, warm``: the same again with the cache the cold run filled (a second run on the same machine).

For each: seconds to the end of the first step (compiling included), then windows/s over ``--steps`` steps.
Then one validation pass in eval mode (a second compile for the compiled model) and the largest relative
difference of its forecasts from the eager model's with the same weights, the tolerance the compiled model
keeps (float32).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]


def worker(config: str, compiled: bool, steps: int, quantiles: bool, device: str) -> dict[str, float]:
    from forecast.data import StockDataModule
    from forecast.model import Forecaster

    raw = yaml.safe_load(Path(config).read_text()) or {}
    torch.set_num_threads(int(raw.get("torch_threads") or torch.get_num_threads()))
    data = raw.get("data") or {}
    model_args = {k: v for k, v in (raw.get("model") or {}).items() if k not in ("optimizer", "lr_scheduler")}
    if quantiles:
        model_args |= {"quantiles": [0.1, 0.5, 0.9], "loss": "mae"}
    dm = StockDataModule(
        source="synthetic", synthetic_tickers=31, batch_size=int(data.get("batch_size", 256)),
        base_len=int(data.get("base_len", 30)), horizon=int(data.get("horizon", 10)),
        normalisation=data.get("normalisation", "last_std"),
    )  # fmt: skip
    dm.setup("fit")
    train = dm.datasets["train"]
    size = dm.hparams.batch_size
    # 8 full batches and a smaller last one, as an epoch ends
    picks = [list(range(i * size, (i + 1) * size)) for i in range(8)] + [list(range(8 * size, 8 * size + 77))]
    batches = [{k: v.to(device) if torch.is_tensor(v) else v for k, v in train.__getitems__(p).items()} for p in picks]
    torch.manual_seed(0)
    model = Forecaster(in_channels=dm.in_channels, base_len=dm.hparams.base_len, horizon=dm.hparams.horizon,
                       compile=compiled, **model_args).to(device)  # fmt: skip
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step(batch: dict) -> None:
        optimizer.zero_grad(set_to_none=True)
        model.training_loss(batch).backward()
        optimizer.step()

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    start = time.perf_counter()
    step(batches[0])
    step(batches[-1])  # the smaller last batch: no second compile with dynamic shapes
    sync()
    first = time.perf_counter() - start
    start = time.perf_counter()
    windows = 0
    for i in range(steps):
        batch = batches[i % (len(batches) - 1)]
        step(batch)
        windows += len(batch["x"])
    sync()
    rate = windows / (time.perf_counter() - start)
    model.eval()
    start = time.perf_counter()
    with torch.no_grad():
        compiled_dollars = [model.to_dollars(model(b["x"]), b) for b in batches]
    sync()
    first_eval = time.perf_counter() - start
    model.compile_network = False  # the same weights, eager
    with torch.no_grad():
        eager_dollars = [model.to_dollars(model(b["x"]), b) for b in batches]
    # in dollars, where a relative difference means something (normalised forecasts cross 0)
    difference = max(
        ((c - e).abs() / e.abs()).max().item() for c, e in zip(compiled_dollars, eager_dollars, strict=True)
    )
    return {"first_step_s": first, "windows_per_s": rate, "first_eval_s": first_eval, "max_rel_diff": difference}


def run(kind: str, args: argparse.Namespace, cache: str) -> dict[str, float]:
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
    command = [sys.executable, __file__, "--worker", kind, "--config", args.config, "--steps", str(args.steps),
               "--device", args.device, *(["--quantiles"] if args.quantiles else [])]  # fmt: skip
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=False, cwd=ROOT)
    if out.returncode != 0:
        sys.exit(f"{kind} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs/djia.yaml"))
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quantiles", action="store_true", help="the quantile model (levels 0.1, 0.5, 0.9)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--worker", choices=("eager", "compiled"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.config, args.worker == "compiled", args.steps, args.quantiles, args.device)))
        return
    results: dict[str, list[dict[str, float]]] = {"eager": [], "compiled, cold": [], "compiled, warm": []}
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as cache:
            results["eager"].append(run("eager", args, cache))
            results["compiled, cold"].append(run("compiled", args, cache))
            results["compiled, warm"].append(run("compiled", args, cache))
    eager_rate = statistics.median(r["windows_per_s"] for r in results["eager"])
    print(f"{args.config}, {'quantile' if args.quantiles else 'point'} model, {args.device}, "
          f"torch {torch.__version__}, medians of {args.rounds} rounds")  # fmt: skip
    print(f"{'':16} {'first step s':>12} {'windows/s':>10} {'vs eager':>9} {'first eval s':>12} {'max rel diff':>12}")
    for kind, rows in results.items():
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        ratio = med["windows_per_s"] / eager_rate
        print(f"{kind:16} {med['first_step_s']:12.1f} {med['windows_per_s']:10.0f} {ratio:8.2f}x "
              f"{med['first_eval_s']:12.1f} {med['max_rel_diff']:12.1e}")  # fmt: skip


if __name__ == "__main__":
    main()
