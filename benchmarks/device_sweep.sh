#!/usr/bin/env bash
# The accelerator benchmark, prepared for a machine lent for a few minutes.
#
# Runs on a bare jax image (jax, flax, optax, orbax; no TensorFlow): installs
# nothing from the network, only the wheels carried in benchmarks/wheels/ (ml_collections,
# which the image lacks: `pip download ml-collections==1.1.0 --no-deps -d benchmarks/wheels`
# beforehand). Sweeps both phases x per-device batch 16 and 64 x bfloat16 and float32 within
# a budget, then profiles the bf16 batch-16 steps, and writes everything to $OUT:
#   $OUT/sweep.jsonl, $OUT/sweep.md     python -m mrr_jax.bench --sweep
#   $OUT/profile/                       one traced window per profiled case (TensorBoard)
#   $OUT/env.txt                        device, driver, versions
# Usage: OUT=/tmp/out bash benchmarks/device_sweep.sh [budget seconds, default 420]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:?set OUT to a folder for the results}"
BUDGET="${1:-420}"
mkdir -p "$OUT"
if ls benchmarks/wheels/*.whl >/dev/null 2>&1; then
  python -m pip install -q --no-index --no-deps benchmarks/wheels/*.whl 2>&1 | tail -2
fi
{
  date -u
  python -c 'import jax, jaxlib, flax, optax; print("jax", jax.__version__, "jaxlib", jaxlib.__version__, "flax", flax.__version__, "optax", optax.__version__); print(jax.devices())'
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>/dev/null
  nproc
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
python -m mrr_jax.bench --config configs/mrrnet.py --sweep --steps 10 --windows 3 \
    --budget_s "$BUDGET" --json "$OUT/sweep.jsonl" --markdown "$OUT/sweep.md"
python -m mrr_jax.bench --config configs/mrrnet.py --phases l1,gan --batch_sizes 16 \
    --dtypes bfloat16 --steps 5 --windows 1 --profile_dir "$OUT/profile" \
    --json "$OUT/profile.jsonl" > /dev/null 2>&1 || echo "profiling failed (the sweep stands)"
cat "$OUT/sweep.md"
