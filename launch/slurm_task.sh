#!/usr/bin/env bash
# One SLURM task of a multi-node mrr_jax run; launch/slurm_run.sbatch starts it
# with srun on every node (or for every GPU). Not meant to be run by hand except
# with --dry-run.
#
# Usage (inside an allocation):
#   srun launch/slurm_task.sh [--dry-run] [--config C] [--workdir W]
#       [--process-per node|gpu] [--coordinator-port N] [--python PY]
#       [--config.KEY=VALUE ...] [-- MAIN_ARGS...]
#
# Settings (environment variable or flag; the flag wins):
#   CONFIG            --config            config file, relative to the repository root
#                                         (required), e.g. configs/mrrgan.py.
#   WORKDIR           --workdir           checkpoints and logs on a filesystem every node
#                                         shares (required); relative = from where you run.
#   PROCESS_PER       --process-per       node (default): this process drives all the node's
#                                         GPUs; gpu: one process per GPU, this one takes GPU
#                                         number SLURM_LOCALID of those the node exposes.
#   COORDINATOR_PORT  --coordinator-port  port on the first node for JAX's coordinator
#                                         (default 20000 + SLURM_JOB_ID % 10000, so two jobs
#                                         sharing a node do not collide).
#   PYTHON            --python            interpreter with jax[cuda12] (default python3).
#   DRY_RUN=1         --dry-run           print the command, run nothing.
# Read from SLURM (srun sets them): SLURM_JOB_NODELIST, SLURM_NTASKS, SLURM_PROCID,
# SLURM_LOCALID (gpu mode only), SLURM_JOB_ID (default port only).
# --config.KEY=VALUE overrides and arguments after -- reach mrr_jax.main unchanged.
#
# Runs, from the repository root:
#   [env CUDA_VISIBLE_DEVICES=G] PY -m mrr_jax.main --config C --workdir W \
#       --coordinator_address FIRST_HOST:PORT --num_processes $SLURM_NTASKS \
#       --process_id $SLURM_PROCID [OVERRIDES...]
# where FIRST_HOST is the first line of `scontrol show hostnames $SLURM_JOB_NODELIST`
# (looked up even with --dry-run, to print the exact command).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROCESS_PER="${PROCESS_PER:-node}"
PYTHON="${PYTHON:-python3}"
parse_flags "CONFIG WORKDIR PROCESS_PER COORDINATOR_PORT PYTHON" "$@"
require_var CONFIG configs/mrrgan.py
require_var WORKDIR /shared/runs/mrrgan
require_var PYTHON python3
require_var SLURM_JOB_NODELIST 'gpu-[017-018] (run under srun)'
require_var SLURM_NTASKS '2 (run under srun)'
require_var SLURM_PROCID '0 (run under srun)'
if [[ -z "${COORDINATOR_PORT:-}" ]]; then
  require_var SLURM_JOB_ID '123456 (or set COORDINATOR_PORT=29500)'
  COORDINATOR_PORT=$((20000 + SLURM_JOB_ID % 10000))
fi

first_host="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"
[[ -n "$first_host" ]] || die "scontrol show hostnames '$SLURM_JOB_NODELIST' gave no host"

cmd=("$PYTHON" -m mrr_jax.main --config "$CONFIG" --workdir "$(absolute_path "$WORKDIR")"
  --coordinator_address "$first_host:$COORDINATOR_PORT"
  --num_processes "$SLURM_NTASKS" --process_id "$SLURM_PROCID"
  "${EXTRA_ARGS[@]}")

case "$PROCESS_PER" in
  node) ;;
  gpu)
    require_var SLURM_LOCALID '0 (run under srun)'
    # Take this task's entry of the GPUs the node exposes (all of them when
    # CUDA_VISIBLE_DEVICES is unset); one exposed GPU is already this task's own.
    IFS=, read -r -a gpus <<<"${CUDA_VISIBLE_DEVICES:-}"
    if ((${#gpus[@]} == 0)); then
      gpu="$SLURM_LOCALID"
    elif ((${#gpus[@]} == 1)); then
      gpu="${gpus[0]}"
    elif ((SLURM_LOCALID < ${#gpus[@]})); then
      gpu="${gpus[SLURM_LOCALID]}"
    else
      die "SLURM_LOCALID=$SLURM_LOCALID but CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES lists ${#gpus[@]} GPUs; start one task per GPU (example: --ntasks-per-node=${#gpus[@]})"
    fi
    cmd=(env CUDA_VISIBLE_DEVICES="$gpu" "${cmd[@]}")
    ;;
  *) die "PROCESS_PER must be node or gpu, not '$PROCESS_PER' (example: PROCESS_PER=gpu)" ;;
esac

run_or_print cd "$REPO_ROOT"
run_or_print "${cmd[@]}"
