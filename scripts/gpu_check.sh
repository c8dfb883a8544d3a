#!/usr/bin/env bash
# GPU checks in one go (run on a machine with a CUDA GPU, from the repository root):
#   scripts/gpu_check.sh DJIA_CSV [OUT_DIR]
# 1. ridge_solve / ridge_solve_normal on CUDA: gradcheck in float64 and agreement with the CPU;
# 2. bench_implicit.py and bench_train.py on the GPU;
# 3. the CLI on the GPU: a short fit on the real data, then predict on the GPU and on the CPU from the same
#    checkpoint; the two forecast files must agree row for row.
set -euo pipefail
data="$1"
out="${2:-gpu_check_out}"
mkdir -p "$out"
py="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1

if [ -z "${ONLY_CLI:-}" ]; then
echo "## 1. implicit layers on CUDA"
"$py" - <<'PY'
import torch
from forecast.nn import ridge_solve, ridge_solve_normal
assert torch.cuda.is_available(), "no CUDA device"
print(torch.cuda.get_device_name(), "torch", torch.__version__)
for n, p in ((12, 5), (6, 9)):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(3, n, p, generator=g, dtype=torch.float64), torch.randn(3, n, 2, generator=g, dtype=torch.float64)
    lam = torch.rand(3, generator=g, dtype=torch.float64) + 0.5
    cpu = ridge_solve(x, y, lam)
    gpu_inputs = [t.cuda().requires_grad_(True) for t in (x, y, lam)]
    torch.testing.assert_close(ridge_solve(*gpu_inputs).cpu(), cpu, rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(ridge_solve, tuple(gpu_inputs), eps=1e-6, atol=1e-7)
    gram = (x.mT @ x).cuda().requires_grad_(True)
    cross = (x.mT @ y).cuda().requires_grad_(True)
    assert torch.autograd.gradcheck(ridge_solve_normal, (gram, cross, gpu_inputs[2]), eps=1e-6, atol=1e-7)
    print(f"n={n} p={p}: CUDA forward == CPU, gradcheck passed (ridge_solve, ridge_solve_normal)")
PY

echo "## 2. benchmarks on the GPU"
"$py" scripts/bench_implicit.py --device cuda --repeats 10
"$py" scripts/bench_train.py --device cuda --data "$data" --steps 200

fi

echo "## 3. CLI on the GPU"
common=(--data.source csv --data.path "$data" --trainer.enable_progress_bar false)
"$py" -m forecast fit --config configs/djia.yaml "${common[@]}" --trainer.accelerator gpu --trainer.devices 1 \
  --trainer.max_epochs 3 --test_after_fit false --trainer.default_root_dir "$out" 2>&1 | tail -22
ckpt="$out/lightning_logs/version_0/checkpoints/last.ckpt"
"$py" -m forecast predict --ckpt_path "$ckpt" --output "$out/gpu.csv" --trainer.accelerator gpu --trainer.devices 1 --trainer.enable_progress_bar false 2>&1 | tail -1
"$py" -m forecast predict --ckpt_path "$ckpt" --output "$out/cpu.csv" --trainer.accelerator cpu --trainer.enable_progress_bar false 2>&1 | tail -1
"$py" - "$out" <<'PY'
import sys
import pandas as pd
a, b = pd.read_csv(f"{sys.argv[1]}/gpu.csv"), pd.read_csv(f"{sys.argv[1]}/cpu.csv")
assert len(a) == len(b) and (a.drop(columns="forecast") == b.drop(columns="forecast")).all().all()
print(f"GPU and CPU forecasts: {len(a)} rows, max |difference| ${(a.forecast - b.forecast).abs().max():.2e}")
PY
