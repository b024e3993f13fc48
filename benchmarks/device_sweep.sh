#!/usr/bin/env bash
# The accelerator benchmark, prepared for a machine lent for a few minutes.
#
# Runs on a bare jax image (jax, flax, optax, orbax; no TensorFlow): installs
# nothing from the network, only the wheels carried in benchmarks/wheels/ (ml_collections,
# which the image lacks: `pip download ml-collections==1.1.0 --no-deps -d benchmarks/wheels`
# beforehand; the folder is git-ignored, so the device call names it in `carry`), into
# /tmp/site on PYTHONPATH, leaving the image's own environment as it is.
# First the device's ceilings (bench --mode ceilings: a bf16 matrix product's TFLOP/s,
# a float32 pass's GB/s, the least time one kernel takes), the rates MFU, memory-bound
# steps and launch-bound ones are read against. Then one
# process sweeps both phases x per-device batch 16 and 64 x bfloat16 then float32
# within a budget (bf16 of both phases first), tracing one extra, untimed window per
# case, and writes to $OUT (at most 8 files, none in subfolders: what a lent machine
# sends back):
#   log.txt                  everything printed
#   env.txt                  device, driver, versions
#   sweep.jsonl, sweep.md    bench --mode ceilings (the first line), then bench --sweep
#   roofline.jsonl           python -m mrr_jax.roofline --target local: the bf16 batch-16
#                            steps as this device compiled them, kernel by kernel, each at
#                            least the measured kernel time (and the floor without it)
#   profile_summary.txt      python -m mrr_jax.profile_summary over every case's trace
#   l1.trace.json.gz, gan.trace.json.gz   the bf16 batch-16 traces (Perfetto, TensorBoard;
#                            on a CPU rehearsal, its float32 ones); a trace over 15 MiB is
#                            left out (a lent machine returns files up to 16 MiB)
# Usage: OUT=/tmp/out bash benchmarks/device_sweep.sh [budget seconds, default 420]
# A rehearsal on a CPU: CONFIG=configs/mrrnet.py:tiny OUT=/tmp/out bash benchmarks/device_sweep.sh 120
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:?set OUT to a folder for the results}"
BUDGET="${1:-420}"
CONFIG="${CONFIG:-configs/mrrnet.py}"
mkdir -p "$OUT"
PROFILE=$(mktemp -d /tmp/mrr_jax_profile.XXXXXX)  # the traces' scratch folder, fresh each run
exec > >(tee "$OUT/log.txt") 2>&1
if ls benchmarks/wheels/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site \
      benchmarks/wheels/*.whl 2>&1 | tail -2
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
{
  date -u
  python3 -c 'import jax, jaxlib, flax, optax; print("jax", jax.__version__, "jaxlib", jaxlib.__version__, "flax", flax.__version__, "optax", optax.__version__); print(jax.devices())'
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>/dev/null
  nproc
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
python3 -m mrr_jax.bench --config "$CONFIG" --mode ceilings --json "$OUT/sweep.jsonl" \
    || echo "ceilings failed (the sweep still runs)"
python3 -m mrr_jax.bench --config "$CONFIG" --sweep --steps 10 --windows 3 \
    --budget_s "$BUDGET" --profile_dir "$PROFILE" \
    --json "$OUT/sweep.jsonl" --markdown "$OUT/sweep.md"
# The device's own compile read kernel by kernel (autotuned here, unlike a compile-only
# one): each kernel's roofline floor against the peak table, the measured bandwidth and
# the measured least time per kernel.
ceiling() {  # a field of the ceilings line (the first of sweep.jsonl), empty if absent
  python3 -c 'import json, sys; print(json.loads(open(sys.argv[1]).readline())[sys.argv[2]])' \
      "$OUT/sweep.jsonl" "$1" 2>/dev/null
}
BANDWIDTH=$(ceiling copy_gb_per_s)
KERNEL_US=$(ceiling kernel_us)
python3 -m mrr_jax.roofline --config "$CONFIG" --target local --devices 1 --phases l1,gan \
    --batch_sizes 16 ${BANDWIDTH:+--bandwidth_gb_s "$BANDWIDTH"} \
    ${KERNEL_US:+--min_kernel_us "$KERNEL_US"} --json "$OUT/roofline.jsonl" \
    || echo "roofline failed (the sweep stands)"
# G's Adam update per leaf (as trained), with flat moments and all flat, timed: what
# its 304 kernels cost here (printed into log.txt; the 8 files a lent machine returns are taken).
python3 benchmarks/adam_layout.py --target local ${BANDWIDTH:+--bandwidth_gb_s "$BANDWIDTH"} \
    ${KERNEL_US:+--min_kernel_us "$KERNEL_US"} \
    || echo "adam layout failed (the sweep stands)"
python3 -m mrr_jax.profile_summary --trace_dir "$PROFILE" > "$OUT/profile_summary.txt" \
    || echo "profile summary failed (the sweep stands)"
for phase in l1 gan; do  # the bf16 batch-16 case's trace, else the phase's first one
  trace=$(ls "$PROFILE/${phase}_b16_bfloat16"/plugins/profile/*/*.trace.json.gz \
              "$PROFILE/${phase}"_*/plugins/profile/*/*.trace.json.gz 2>/dev/null | head -1)
  if [ -z "$trace" ]; then continue; fi
  if [ "$(stat -c %s "$trace")" -le $((15 * 2**20)) ]; then
    cp "$trace" "$OUT/$phase.trace.json.gz"
  else  # it would not come back; profile_summary.txt holds what it says
    echo "$phase trace not copied: $(stat -c %s "$trace") bytes, over 15 MiB"
  fi
done
cat "$OUT/profile_summary.txt" 2>/dev/null
ls -la "$OUT"
