#!/usr/bin/env bash
# The whole DJIA job of this project beside NHITS's, in one run, twice each, alternating (this machine's speed
# moves ±30 %: compare the runs of one invocation). Wall seconds and peak RSS from /usr/bin/time.
#   scripts/compare_nhits.sh DATA_FILE [NHITS_VENV]
# NHITS_VENV (default /tmp/nfvenv) is a throwaway venv made here on first use: torch (TORCH_SPEC, default
# torch==2.13.0) and neuralforecast; it is not a dependency of the project.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data="$(realpath "$1")"
nf="${2:-/tmp/nfvenv}"
if [ ! -x "$nf/bin/python" ] || ! "$nf/bin/python" -c "import neuralforecast" 2>/dev/null; then
  python3 -m venv "$nf"
  "$nf/bin/pip" install -q "${TORCH_SPEC:-torch==2.13.0}"
  "$nf/bin/pip" install -q neuralforecast
fi
runs="$(mktemp -d)"
for round in 1 2; do
  /usr/bin/time -f "forecast round $round: %e s wall, %M KB peak" "$root/.venv/bin/python" -m forecast fit \
    --config "$root/configs/djia.yaml" --data.source csv --data.path "$data" --torch_threads 1 \
    --trainer.enable_progress_bar false --trainer.default_root_dir "$runs/r$round" > "$runs/forecast$round.log"
  /usr/bin/time -f "NHITS round $round: %e s wall, %M KB peak" "$nf/bin/python" "$root/scripts/nhits_djia.py" \
    "$data" > "$runs/nhits$round.log" 2> "$runs/nhits$round.err" || { tail -5 "$runs/nhits$round.err"; exit 1; }
  tail -1 "$runs/nhits$round.err"
done
