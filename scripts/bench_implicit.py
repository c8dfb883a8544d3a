"""Benchmark the implicit ridge layer against its alternatives (forward + backward, median ms per call).

Methods, one regression per batch element, n=16 rows, p=20 features, h=10 targets:
  ridge_solve    forecast.nn.ridge_solve_normal on xᵀx, xᵀy (Cholesky once, implicit backward): the model's layer
  linalg.solve   the closed form (xᵀx + λI)⁻¹xᵀy through torch.linalg.solve, differentiated by autograd
  tutorial       L-BFGS forward, dense Hessian (torch.autograd.functional.hessian) backward; B=8 only
  floor          w = λ xᵀy by plain autograd, no solve at all: what the simplest differentiable map from these
                 inputs to a w of this shape costs here, i.e. the least any ridge layer could take per call

The model's own layer has another shape: RidgePostdiction regresses every sliding row of the encoded window z
(B, E=32, L=30) with lookback 3 and horizon 10, i.e. 576 rows of 3 features and 10 targets. A second table times
what the model runs, ``sliding_window_gram`` + ``ridge_solve_normal`` (3 × 3 systems from the rows' Gram
matrix, never materialising the rows), beside the layer on the rows' xᵀx and autograd through ``torch.linalg.solve`` on
the materialised rows (B, 576, 3).

Usage:
    python scripts/bench_implicit.py [--device cpu|cuda] [--threads 1] [--repeats 20]

Runs with torch.set_num_threads(--threads), 1 by default, and prints the table, the speed ratios and the peak
memory of one forward+backward at B=4096 (CPU: growth of the peak RSS over the RSS just before it, in a
fresh subprocess per method; CUDA: torch.cuda.max_memory_allocated).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from forecast.model.blocks import sliding_window_gram
from forecast.nn import ridge_solve_normal

N, P, H = 16, 20, 10
BATCHES = (8, 64, 256, 1024)
MEMORY_BATCH = 4096


def ridge_objective(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """Per-sample ||x w - y||² + λ||w||²: w (B, p, h) → (B,)."""
    return (x @ w - y).pow(2).sum((-2, -1)) + lam * w.pow(2).sum((-2, -1))


def closed_form(x: torch.Tensor, y: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
    xt = x.transpose(-1, -2)
    return torch.linalg.solve(xt @ x + lam[:, None, None] * eye, xt @ y)


def ridge_solve(x: torch.Tensor, y: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """The layer from rows: the normal equations' statistics by two products, then the implicit solve."""
    return ridge_solve_normal(x.mT @ x, x.mT @ y, lam)


class _Tutorial(torch.autograd.Function):
    """The tutorial's layer: L-BFGS on the flattened weights, dense Hessian in the backward pass."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, y: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        w = torch.zeros(x.shape[0], P, H, dtype=x.dtype, device=x.device, requires_grad=True)
        optimizer = torch.optim.LBFGS([w], lr=1.0, max_iter=100, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            with torch.enable_grad():
                loss = ridge_objective(w, x, y, lam).sum()
                loss.backward()
            return loss

        optimizer.step(closure)
        ctx.save_for_backward(x, y, lam, w.detach())
        return w.detach()

    @staticmethod
    def backward(ctx, grad_w: torch.Tensor) -> tuple[torch.Tensor, ...]:  # noqa: ANN001
        x, y, lam, w = ctx.saved_tensors
        hessian = torch.autograd.functional.hessian(lambda v: ridge_objective(v, x, y, lam).sum(), w)
        k = w.numel()
        v = torch.linalg.solve(hessian.reshape(k, k), grad_w.reshape(k)).reshape_as(w)
        with torch.enable_grad():
            ws = w.requires_grad_(True)
            inputs = [t.detach().requires_grad_(True) for t in (x, y, lam)]
            (g,) = torch.autograd.grad(ridge_objective(ws, *inputs).sum(), ws, create_graph=True)
            grads = torch.autograd.grad(g, inputs, -v)
        return grads


def floor(x: torch.Tensor, y: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    return torch.bmm(x.mT, y) * lam[:, None, None]


METHODS: dict[str, Callable[..., torch.Tensor]] = {
    "ridge_solve": ridge_solve,
    "linalg.solve": closed_form,
    "tutorial": _Tutorial.apply,
    "floor": floor,
}


# the model's layer, configs/djia.yaml: encoder width E, base length L, lookback K, horizon H
MODEL_E, MODEL_L, MODEL_K = 32, 30, 3


def model_gram_normal(z: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """What RidgePostdiction runs: the sliding rows' Gram matrix, then K × K solves. z (B, E, L) → w (B, K, H)."""
    gram, _ = sliding_window_gram(z, MODEL_K + H)
    return ridge_solve_normal(gram[:, :MODEL_K, :MODEL_K], gram[:, :MODEL_K, MODEL_K:], lam)


def _rows(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    rows = z.unfold(-1, MODEL_K + H, 1).reshape(z.shape[0], -1, MODEL_K + H)  # (B, E · shifts, K + H)
    return rows[..., :MODEL_K], rows[..., MODEL_K:]


MODEL_METHODS: dict[str, Callable[..., torch.Tensor]] = {
    "sliding Gram + ridge_solve_normal (the model)": model_gram_normal,
    "rows + ridge_solve": lambda z, lam: ridge_solve(*_rows(z), lam),
    "rows + linalg.solve": lambda z, lam: closed_form(*_rows(z), lam),
}


def time_model_ms(
    method: Callable[..., torch.Tensor], batch: int, dtype: torch.dtype, device: str, repeats: int
) -> float:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(batch, MODEL_E, MODEL_L, generator=g, dtype=dtype).to(device).requires_grad_(True)
    lam = (torch.rand(batch, generator=g, dtype=dtype) + 0.5).to(device).requires_grad_(True)
    return time_ms(lambda *_: method(z, lam), batch, dtype, device, repeats, inputs=(z, lam))


def make_inputs(batch: int, dtype: torch.dtype, device: str) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, N, P, generator=g, dtype=dtype).to(device).requires_grad_(True)
    y = torch.randn(batch, N, H, generator=g, dtype=dtype).to(device).requires_grad_(True)
    lam = (torch.rand(batch, generator=g, dtype=dtype) + 0.5).to(device).requires_grad_(True)
    return x, y, lam


def step(method: Callable[..., torch.Tensor], inputs: tuple[torch.Tensor, ...]) -> None:
    for t in inputs:
        t.grad = None
    method(*inputs).sum().backward()


def time_ms(
    method: Callable[..., torch.Tensor],
    batch: int,
    dtype: torch.dtype,
    device: str,
    repeats: int,
    warmup: int = 5,
    inputs: tuple[torch.Tensor, ...] | None = None,
) -> float:
    inputs = inputs if inputs is not None else make_inputs(batch, dtype, device)
    for _ in range(warmup):  # warm-up: first calls pay for allocations and kernel selection
        step(method, inputs)
    samples = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step(method, inputs)
        if device == "cuda":
            torch.cuda.synchronize()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def peak_memory_mb(name: str, dtype: torch.dtype, device: str) -> float:
    if device == "cuda":
        inputs = make_inputs(MEMORY_BATCH, dtype, device)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step(METHODS[name], inputs)
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    # CPU: a fresh process per method, so one method's high-water mark cannot hide another's. A fixed mmap
    # threshold makes glibc map every large tensor afresh instead of reusing heap pages that the imports
    # already touched (which would hide the allocations from the peak RSS).
    out = subprocess.run(
        [sys.executable, __file__, "--_memory-child", name, "--dtype", str(dtype).removeprefix("torch.")],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"},
    )
    return float(out.stdout.strip())


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _memory_child(name: str, dtype: torch.dtype) -> None:
    torch.set_num_threads(1)
    inputs = make_inputs(MEMORY_BATCH, dtype, "cpu")
    step(METHODS["ridge_solve"], make_inputs(8, dtype, "cpu"))  # load kernels before the baseline
    # reset the peak (VmHWM) to the current RSS (Linux >= 4.0), so that imports' transient peaks do not count
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kib("VmRSS")
    step(METHODS[name], inputs)
    print((_status_kib("VmHWM") - before) / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--dtype", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--_memory-child", dest="memory_child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        _memory_child(args.memory_child, getattr(torch, args.dtype))
        return
    torch.set_num_threads(args.threads)
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    print(
        f"# bench_implicit: n={N} p={P} h={H}, device={device_name}, torch.set_num_threads({args.threads}), "
        f"median of {args.repeats} forward+backward calls, ms"
    )
    for dtype in (torch.float32, torch.float64):
        results: dict[tuple[str, int], float] = {}
        for name in METHODS:
            for batch in BATCHES:
                if name == "tutorial" and batch != 8:
                    continue
                slow = name == "tutorial"  # about a second a call: fewer repeats
                results[name, batch] = time_ms(
                    METHODS[name], batch, dtype, args.device, 3 if slow else args.repeats, 1 if slow else 5
                )
        print(f"\n## {str(dtype).removeprefix('torch.')}")
        print("| method | " + " | ".join(f"B={b}" for b in BATCHES) + " |")
        print("|---|" + "---:|" * len(BATCHES))
        for name in METHODS:
            cells = [f"{results[name, b]:.3f}" if (name, b) in results else "—" for b in BATCHES]
            print(f"| {name} | " + " | ".join(cells) + " |")
        print()
        for b in BATCHES:
            print(f"linalg.solve / ridge_solve at B={b}: {results['linalg.solve', b] / results['ridge_solve', b]:.2f}x")
        print(f"tutorial / ridge_solve at B=8: {results['tutorial', 8] / results['ridge_solve', 8]:,.0f}x")
        print(f"tutorial / floor at B=8: {results['tutorial', 8] / results['floor', 8]:,.0f}x (no layer can beat this)")
        model = {
            (name, b): time_model_ms(fn, b, dtype, args.device, args.repeats)
            for name, fn in MODEL_METHODS.items()
            for b in BATCHES
        }
        print(f"\n### the model's layer: z (B, {MODEL_E}, {MODEL_L}), lookback {MODEL_K}, horizon {H}")
        print("| method | " + " | ".join(f"B={b}" for b in BATCHES) + " |")
        print("|---|" + "---:|" * len(BATCHES))
        for name in MODEL_METHODS:
            print(f"| {name} | " + " | ".join(f"{model[name, b]:.3f}" for b in BATCHES) + " |")
        ours = "sliding Gram + ridge_solve_normal (the model)"
        for other in ("rows + ridge_solve", "rows + linalg.solve"):
            print(f"{other} / the model's layer at B=256: {model[other, 256] / model[ours, 256]:.2f}x")
        memory = {name: peak_memory_mb(name, dtype, args.device) for name in ("ridge_solve", "linalg.solve")}
        print(
            f"peak memory of one forward+backward at B={MEMORY_BATCH}: "
            + ", ".join(f"{k} {v:.1f} MB" for k, v in memory.items())
        )


if __name__ == "__main__":
    main()
