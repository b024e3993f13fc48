#!/usr/bin/env bash
# Install mrr_jax on every worker of a TPU VM (one host or a whole pod slice).
#
# Usage:
#   launch/tpu_setup.sh [--dry-run] [--project P] [--zone Z] [--tpu-name N]
#       [--repo-url URL] [--repo-ref REF] [--remote-dir DIR] [--python-version V]
#
# Settings (environment variable or flag; the flag wins):
#   PROJECT         --project         Google Cloud project id (required).
#   ZONE            --zone            zone of the TPU VM (required).
#   TPU_NAME        --tpu-name        the TPU VM made by launch/tpu_create.sh (required).
#   REPO_URL        --repo-url        git URL each worker clones; empty (default) = copy
#                                     this checkout's committed HEAD (git archive + scp).
#   REPO_REF        --repo-ref        commit, tag or origin/BRANCH to check out after
#                                     cloning (default origin/HEAD); only with REPO_URL.
#   REMOTE_DIR      --remote-dir      checkout directory on each worker, relative to the
#                                     login home (default mrr_jax).
#   PYTHON_VERSION  --python-version  Python of the worker virtualenv (default 3.11;
#                                     jax 0.10.2 needs >= 3.11, the TPU images ship 3.10).
#   DRY_RUN=1       --dry-run         print the commands, run nothing.
#
# On every worker (--worker=all) it makes REMOTE_DIR/.venv with uv (which fetches
# the Python the image lacks), then runs
#   .venv/bin/pip install -r requirements.txt
#   .venv/bin/pip install -U "jax[tpu]==0.10.2"
#
# Example:
#   PROJECT=my-project ZONE=us-central2-b TPU_NAME=mrr-v4-32 \
#       launch/tpu_setup.sh --repo-url https://github.com/me/mrr_jax.git --dry-run
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
JAX_TPU_SPEC='jax[tpu]==0.10.2'
REPO_URL="${REPO_URL:-}"
REPO_REF="${REPO_REF:-origin/HEAD}"
REMOTE_DIR="${REMOTE_DIR:-mrr_jax}"
PYTHON_VERSION="${PYTHON_VERSION:-3.11}"
parse_flags "PROJECT ZONE TPU_NAME REPO_URL REPO_REF REMOTE_DIR PYTHON_VERSION" "$@"
no_extra_args
require_var PROJECT my-project
require_var ZONE us-central2-b
require_var TPU_NAME mrr-v4-8
require_var REMOTE_DIR mrr_jax
require_var PYTHON_VERSION 3.11

gcloud_where=(--worker=all --project="$PROJECT" --zone="$ZONE")
dir="$(shell_quote "$REMOTE_DIR")"

if [[ -n "$REPO_URL" ]]; then
  fetch="{ test -d $dir/.git || git clone $(shell_quote "$REPO_URL") $dir; }"
  fetch+=" && git -C $dir fetch --tags origin"
  fetch+=" && git -C $dir checkout --detach $(shell_quote "$REPO_REF")"
else
  # Worker-side name of the archive; the local one sits in TMPDIR.
  archive_name="mrr_jax-src-$TPU_NAME.tar.gz"
  archive="${TMPDIR:-/tmp}/$archive_name"
  run_or_print git -C "$REPO_ROOT" archive --format=tar.gz --output="$archive" HEAD
  run_or_print gcloud compute tpus tpu-vm scp "$archive" "$TPU_NAME:$archive_name" \
    "${gcloud_where[@]}"
  fetch="mkdir -p $dir && tar -xzf $(shell_quote "$archive_name") -C $dir"
fi

venv="{ test -x .venv/bin/python"
venv+=" || { python3 -m pip install --user --upgrade uv"
venv+=" && python3 -m uv venv --seed --python $(shell_quote "$PYTHON_VERSION") .venv; }; }"
install=".venv/bin/pip install -r requirements.txt"
install+=" && .venv/bin/pip install -U \"$JAX_TPU_SPEC\""

run_or_print gcloud compute tpus tpu-vm ssh "$TPU_NAME" "${gcloud_where[@]}" \
  --command="$fetch && cd $dir && $venv && $install"
