#!/usr/bin/env bash
# Train mrr_jax on every worker of a TPU VM: one host, or all hosts of a pod slice.
#
# Usage:
#   launch/tpu_run.sh [--dry-run] [--project P] [--zone Z] [--tpu-name N]
#       [--config C] [--workdir W] [--accelerator-type T] [--remote-dir DIR]
#       [--worker all|K] [--config.KEY=VALUE ...] [-- MAIN_ARGS...]
#
# Settings (environment variable or flag; the flag wins):
#   PROJECT           --project           Google Cloud project id (required).
#   ZONE              --zone              zone of the TPU VM (required).
#   TPU_NAME          --tpu-name          the TPU VM set up by launch/tpu_setup.sh (required).
#   CONFIG            --config            config file, relative to the checkout (required),
#                                         e.g. configs/mrrgan.py or configs/mrrnet.py:tiny.
#   WORKDIR           --workdir           checkpoints and TensorBoard logs (required): a
#                                         gs://BUCKET/PATH for a pod slice (every host writes
#                                         there); on one host a VM path also works (relative
#                                         paths are relative to REMOTE_DIR).
#   ACCELERATOR_TYPE  --accelerator-type  optional; when given, a multi-host type (v4-16 and
#                                         up, v5litepod-16 and up) refuses a non-gs:// WORKDIR.
#   REMOTE_DIR        --remote-dir        checkout on the workers (default mrr_jax).
#   WORKER            --worker            all (default: every host, as multi-host needs) or
#                                         one worker index, for debugging one host.
#   DRY_RUN=1         --dry-run           print the command, run nothing.
# --config.KEY=VALUE overrides and arguments after -- reach mrr_jax.main unchanged.
#
# Every worker runs, at the same time (gcloud ... ssh --worker=all):
#   cd REMOTE_DIR && .venv/bin/python -m mrr_jax.main --config C --workdir W [OVERRIDES...]
# On a pod slice jax.distributed.initialize() finds the other hosts by itself.
#
# Example:
#   PROJECT=my-project ZONE=us-central2-b TPU_NAME=mrr-v4-32 ACCELERATOR_TYPE=v4-32 \
#       launch/tpu_run.sh --config configs/mrrgan.py --workdir gs://my-bucket/mrrgan \
#       --config.batch_size=64 --dry-run
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ACCELERATOR_TYPE="${ACCELERATOR_TYPE:-}"
REMOTE_DIR="${REMOTE_DIR:-mrr_jax}"
WORKER="${WORKER:-all}"
parse_flags "PROJECT ZONE TPU_NAME CONFIG WORKDIR ACCELERATOR_TYPE REMOTE_DIR WORKER" "$@"
require_var PROJECT my-project
require_var ZONE us-central2-b
require_var TPU_NAME mrr-v4-8
require_var CONFIG configs/mrrgan.py
require_var WORKDIR gs://my-bucket/mrrgan
require_var REMOTE_DIR mrr_jax
require_var WORKER all

# Accelerator names end in TensorCores (v2-v4, v5p) or chips (v5e, v6e); either
# way more than 8 means more than one host.
if [[ "$ACCELERATOR_TYPE" =~ -([0-9]+)$ ]] && ((BASH_REMATCH[1] > 8)) \
  && [[ "$WORKDIR" != gs://* ]]; then
  die "WORKDIR must be a gs:// path on the multi-host slice $ACCELERATOR_TYPE, so that every host writes to the same place (example: WORKDIR=gs://my-bucket/mrrgan)"
fi

main=(.venv/bin/python -m mrr_jax.main --config "$CONFIG" --workdir "$WORKDIR" "${EXTRA_ARGS[@]}")
run_or_print gcloud compute tpus tpu-vm ssh "$TPU_NAME" --worker="$WORKER" \
  --project="$PROJECT" --zone="$ZONE" \
  --command="cd $(shell_quote "$REMOTE_DIR") && $(quote_args "${main[@]}")"
