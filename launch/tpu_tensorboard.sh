#!/usr/bin/env bash
# Copy a run's TensorBoard logs to this machine and serve them with TensorBoard.
#
# Usage:
#   launch/tpu_tensorboard.sh [--dry-run] [--workdir W] [--local-dir D] [--serve 1|0]
#       [--port N] [--project P] [--zone Z] [--tpu-name N] [--remote-dir DIR]
#       [-- COPY_FLAGS...]
#
# Settings (environment variable or flag; the flag wins):
#   WORKDIR     --workdir     the run's WORKDIR as given to launch/tpu_run.sh (required):
#                             gs://BUCKET/PATH, or a path on TPU worker 0.
#   LOCAL_DIR   --local-dir   where the logs land here (required), e.g. tb/mrrgan.
#   SERVE       --serve       1 (default): then run tensorboard --logdir LOCAL_DIR;
#                             0: only copy (run again to refresh).
#   PORT        --port        TensorBoard port (default 6006).
#   PROJECT     --project     } only for a WORKDIR on the VM (required then):
#   ZONE        --zone        } the TPU VM to copy from (its worker 0, the host
#   TPU_NAME    --tpu-name    } that writes the logs).
#   REMOTE_DIR  --remote-dir  checkout on the VM that a relative WORKDIR is in
#                             (default mrr_jax).
#   DRY_RUN=1   --dry-run     print the commands, run nothing.
# Arguments after -- go to the copy command unchanged (gcloud storage rsync, or
# gcloud compute tpus tpu-vm scp), e.g. -- --exclude='.*checkpoint.*'.
#
# Runs, for gs://:  gcloud storage rsync --recursive WORKDIR LOCAL_DIR
#       for a VM:   gcloud compute tpus tpu-vm scp --recurse TPU_NAME:WORKDIR LOCAL_DIR --worker=0 ...
# then              tensorboard --logdir LOCAL_DIR --port PORT
#
# Example:
#   launch/tpu_tensorboard.sh --workdir gs://my-bucket/mrrgan --local-dir tb/mrrgan --dry-run
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

SERVE="${SERVE:-1}"
PORT="${PORT:-6006}"
REMOTE_DIR="${REMOTE_DIR:-mrr_jax}"
parse_flags "WORKDIR LOCAL_DIR SERVE PORT PROJECT ZONE TPU_NAME REMOTE_DIR" "$@"
require_var WORKDIR gs://my-bucket/mrrgan
require_var LOCAL_DIR tb/mrrgan
[[ "$SERVE" == 0 || "$SERVE" == 1 ]] || die "SERVE must be 0 or 1, not '$SERVE' (example: SERVE=0)"

if [[ "$WORKDIR" == gs://* ]]; then
  run_or_print gcloud storage rsync --recursive "${EXTRA_ARGS[@]}" "$WORKDIR" "$LOCAL_DIR"
else
  require_var PROJECT my-project
  require_var ZONE us-central2-b
  require_var TPU_NAME mrr-v4-8
  remote_path="$WORKDIR"
  [[ "$remote_path" == /* ]] || remote_path="$REMOTE_DIR/$remote_path"
  run_or_print mkdir -p "$LOCAL_DIR"
  run_or_print gcloud compute tpus tpu-vm scp --recurse "${EXTRA_ARGS[@]}" \
    "$TPU_NAME:$remote_path" "$LOCAL_DIR" --worker=0 --project="$PROJECT" --zone="$ZONE"
fi
if [[ "$SERVE" == 1 ]]; then
  run_or_print tensorboard --logdir "$LOCAL_DIR" --port "$PORT"
fi
