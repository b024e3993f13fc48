#!/usr/bin/env bash
# Train mrr_jax on one machine with one or more GPUs: one process, pmap over all
# local GPUs (the global batch is split over them).
#
# Usage:
#   launch/gpu_run.sh [--dry-run] [--config C] [--workdir W]
#       [--cuda-visible-devices LIST] [--python PY] [--config.KEY=VALUE ...] [-- MAIN_ARGS...]
#
# Settings (environment variable or flag; the flag wins):
#   CONFIG                --config                config file (required), e.g.
#                                                 configs/mrrgan.py or configs/mrrnet.py:tiny.
#   WORKDIR               --workdir               checkpoints and TensorBoard logs (required);
#                                                 a relative path is taken from where you run this.
#   CUDA_VISIBLE_DEVICES  --cuda-visible-devices  optional GPU subset, e.g. 0,1 (default: all).
#   PYTHON                --python                interpreter with jax[cuda12] installed
#                                                 (default python3).
#   DRY_RUN=1             --dry-run               print the commands, run nothing.
# --config.KEY=VALUE overrides and arguments after -- reach mrr_jax.main unchanged.
#
# Runs, from the repository root:
#   [env CUDA_VISIBLE_DEVICES=LIST] PY -m mrr_jax.main --config C --workdir W [OVERRIDES...]
#
# Example:
#   launch/gpu_run.sh --config configs/mrrnet.py --workdir /data/runs/mrrnet \
#       --cuda-visible-devices 0,1,2,3 --config.batch_size=16 --dry-run
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES:-}"
PYTHON="${PYTHON:-python3}"
parse_flags "CONFIG WORKDIR CUDA_VISIBLE_DEVICES PYTHON" "$@"
require_var CONFIG configs/mrrgan.py
require_var WORKDIR /data/runs/mrrgan
require_var PYTHON python3

cmd=("$PYTHON" -m mrr_jax.main --config "$CONFIG" --workdir "$(absolute_path "$WORKDIR")"
  "${EXTRA_ARGS[@]}")
if [[ -n "$CUDA_VISIBLE_DEVICES" ]]; then
  cmd=(env CUDA_VISIBLE_DEVICES="$CUDA_VISIBLE_DEVICES" "${cmd[@]}")
fi
run_or_print cd "$REPO_ROOT"
run_or_print "${cmd[@]}"
