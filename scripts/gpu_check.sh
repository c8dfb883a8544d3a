#!/usr/bin/env bash
# GPU checks in one go (run on a machine with a CUDA GPU, from the repository root):
#   scripts/gpu_check.sh DJIA_CSV [OUT_DIR]
# 1. ridge_solve_normal on CUDA (LAPACK and unrolled): gradcheck in float64 and agreement with the CPU;
# 2a. eager vs compiled training windows/s (scripts/bench_compile.py), point and quantile model;
# 2. training windows/s on the GPU at batch 256 and at doubling batches up to the largest that fits
#    (bench_train.py: the model alone, and a real epoch through the DataLoader);
# 3. the CLI: one epoch on one GPU and with DDP on every GPU (windows/s of each, start-up included); a fit at
#    batch 256 and at a large batch, with their best validation relMAE (accuracy at that batch); predict on the
#    GPU and on the CPU from the same checkpoint: the forecasts must agree within a relative 1e-4 (a cent on a
#    $100 price; float32 kernels differ between the devices) and every other column exactly.
# Set ONLY_CLI=1 to run part 3 alone, LARGE_BATCH (default 4096) for the large-batch fit; ACCELERATOR=cpu
# ALL_DEVICES=2 tries part 3 on a machine without a GPU (DDP over two CPU processes).
set -euo pipefail
data="$1"
out="${2:-gpu_check_out}"
mkdir -p "$out"
py="${PYTHON:-python3}"
large="${LARGE_BATCH:-4096}"
accel="${ACCELERATOR:-gpu}"
export PYTHONUNBUFFERED=1

if [ -z "${ONLY_CLI:-}" ]; then
echo "## 1. implicit layers on CUDA"
"$py" - <<'PY'
import torch
from forecast.nn import ridge_solve_normal
assert torch.cuda.is_available(), "no CUDA device"
print(torch.cuda.get_device_name(), "torch", torch.__version__)
for n, p in ((12, 5), (6, 9)):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(3, n, p, generator=g, dtype=torch.float64), torch.randn(3, n, 2, generator=g, dtype=torch.float64)
    lam = torch.rand(3, generator=g, dtype=torch.float64) + 0.5
    gram, cross = x.mT @ x, x.mT @ y
    cpu = ridge_solve_normal(gram, cross, lam)
    inputs = [t.cuda().requires_grad_(True) for t in (gram, cross, lam)]
    torch.testing.assert_close(ridge_solve_normal(*inputs).cpu(), cpu, rtol=1e-10, atol=1e-12)
    unrolled = ridge_solve_normal(*inputs, factorisation="unrolled")
    torch.testing.assert_close(unrolled.cpu(), cpu, rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(ridge_solve_normal, tuple(inputs), eps=1e-6, atol=1e-7)
    print(f"n={n} p={p}: CUDA forward == CPU (LAPACK and unrolled), gradcheck passed (ridge_solve_normal)")
PY

echo "## 2a. eager vs compiled training (--model.compile true) on the GPU: windows/s, cold and warm cache"
"$py" scripts/bench_compile.py --device cuda --steps 100 --rounds 1
"$py" scripts/bench_compile.py --device cuda --steps 100 --rounds 1 --quantiles

echo "## 2. training windows/s on the GPU, batch 256 and up to the largest that fits"
"$py" scripts/bench_implicit.py --device cuda --repeats 10
"$py" scripts/bench_train.py --device cuda --data "$data" --steps 100 --epoch-batches 100 \
  --batch-sizes 256 1024 4096 16384 65536 262144 1048576
fi

echo "## 3. the CLI on the GPU"
common=(--config configs/djia.yaml --data.source csv --data.path "$data" --trainer.enable_progress_bar false
        --test_after_fit false)
windows_per_s() {  # NAME, then fit options: one epoch, one validation batch (the config's early stopping needs a
                   # validation metric); prints windows/s including start-up
  local name="$1"; shift
  local start end
  start=$(date +%s.%N)
  "$py" -m forecast fit "${common[@]}" --trainer.max_epochs 1 --trainer.limit_val_batches 1 \
    --trainer.default_root_dir "$out/$name" "$@" > "$out/$name.log" 2>&1
  end=$(date +%s.%N)
  "$py" -c "import sys; print(f'{sys.argv[1]}: {76810 / (float(sys.argv[3]) - float(sys.argv[2])):,.0f} windows/s (one epoch of 76,810, start-up included)')" "$name" "$start" "$end"
}
all="${ALL_DEVICES:-$("$py" -c "import torch; print(torch.cuda.device_count())")}"
windows_per_s "one_${accel}_b256" --trainer.accelerator "$accel" --trainer.devices 1
windows_per_s "ddp_${all}${accel}_b256" --trainer.accelerator "$accel" --trainer.devices "$all" --trainer.strategy ddp
windows_per_s "one_${accel}_b${large}" --trainer.accelerator "$accel" --trainer.devices 1 --data.batch_size "$large"

for batch in 256 "$large"; do
  "$py" -m forecast fit "${common[@]}" --trainer.accelerator "$accel" --trainer.devices 1 --data.batch_size "$batch" \
    --trainer.default_root_dir "$out/fit_b$batch" 2>&1 | grep "best validation epoch" | sed "s/^/batch $batch: /"
done

ckpt="$out/fit_b256/lightning_logs/version_0/checkpoints/last.ckpt"
"$py" -m forecast predict --ckpt_path "$ckpt" --output "$out/gpu.csv" --trainer.accelerator "$accel" --trainer.devices 1 --trainer.enable_progress_bar false 2>&1 | tail -1
"$py" -m forecast predict --ckpt_path "$ckpt" --output "$out/cpu.csv" --trainer.accelerator cpu --trainer.enable_progress_bar false 2>&1 | tail -1
"$py" - "$out" <<'PY'
import sys
import numpy as np
import pandas as pd
TOLERANCE = 1e-4  # relative: a cent on a $100 price
a, b = pd.read_csv(f"{sys.argv[1]}/gpu.csv"), pd.read_csv(f"{sys.argv[1]}/cpu.csv")
assert list(a.columns) == list(b.columns) and len(a) == len(b), "GPU and CPU forecast files differ in shape"
prices = [c for c in a.columns if c == "forecast" or c.startswith("q")]
others = [c for c in a.columns if c not in prices]
assert a[others].equals(b[others]), "GPU and CPU forecast files differ outside the forecasts"
relative = ((a[prices] - b[prices]).abs() / b[prices].abs()).to_numpy().max()
print(f"GPU vs CPU forecasts: {len(a)} rows, max relative difference {relative:.2e} (tolerance {TOLERANCE:.0e})")
assert np.isfinite(relative) and relative <= TOLERANCE, "GPU and CPU forecasts disagree beyond the tolerance"
PY
