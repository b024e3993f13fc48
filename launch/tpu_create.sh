#!/usr/bin/env bash
# Create a Cloud TPU VM: one host (e.g. v4-8) or a pod slice (e.g. v4-32 = 4 hosts).
#
# Usage:
#   launch/tpu_create.sh [--dry-run] [--project P] [--zone Z] [--tpu-name N]
#       [--accelerator-type T] [--runtime-version V] [-- EXTRA_GCLOUD_FLAGS...]
#
# Settings (environment variable or flag; the flag wins):
#   PROJECT           --project           Google Cloud project id (required).
#   ZONE              --zone              zone that has the accelerator (required), e.g. us-central2-b.
#   TPU_NAME          --tpu-name          name for the TPU VM (required).
#   ACCELERATOR_TYPE  --accelerator-type  e.g. v4-8 (single host) or v4-32 (pod slice) (required).
#   RUNTIME_VERSION   --runtime-version   TPU software image; default tpu-ubuntu2204-base
#                                         (v2-v4); v5e: v2-alpha-tpuv5-lite, v5p: v2-alpha-tpuv5,
#                                         v6e: v2-alpha-tpuv6e.
#   DRY_RUN=1         --dry-run           print the command, run nothing.
# Arguments after -- go to gcloud unchanged (e.g. -- --spot).
#
# Runs:
#   gcloud compute tpus tpu-vm create $TPU_NAME --project=$PROJECT --zone=$ZONE \
#       --accelerator-type=$ACCELERATOR_TYPE --version=$RUNTIME_VERSION [EXTRA...]
#
# Example:
#   PROJECT=my-project ZONE=us-central2-b TPU_NAME=mrr-v4-8 ACCELERATOR_TYPE=v4-8 \
#       launch/tpu_create.sh --dry-run
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

RUNTIME_VERSION="${RUNTIME_VERSION:-tpu-ubuntu2204-base}"
parse_flags "PROJECT ZONE TPU_NAME ACCELERATOR_TYPE RUNTIME_VERSION" "$@"
require_var PROJECT my-project
require_var ZONE us-central2-b
require_var TPU_NAME mrr-v4-8
require_var ACCELERATOR_TYPE v4-8
require_var RUNTIME_VERSION tpu-ubuntu2204-base

run_or_print gcloud compute tpus tpu-vm create "$TPU_NAME" \
  --project="$PROJECT" --zone="$ZONE" \
  --accelerator-type="$ACCELERATOR_TYPE" --version="$RUNTIME_VERSION" \
  "${EXTRA_ARGS[@]}"
