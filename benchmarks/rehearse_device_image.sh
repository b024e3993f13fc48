#!/usr/bin/env bash
# Rehearses the accelerator run on this CPU with the lent GPU image's package versions.
#
# The image has Python 3.12, jax 0.11.2 and no TensorFlow; requirements.txt pins jax 0.10.2 for
# Python 3.11. This builds a throwaway venv from a Python 3.12 interpreter with the image's jax
# and the newest flax/optax/orbax pip gives it, runs the tests that need no data stack (the
# lowered GPU/TPU steps, the golden models and iterations, kernels, bench, profile_summary,
# the HLO cost reader and the roofline command, both forms of the up conv and the pads, the
# VGG input resize),
# then benchmarks/device_sweep.sh on the tiny config, writing to $OUT.
# Usage: PYTHON=python3.12 OUT=/tmp/rehearsal bash benchmarks/rehearse_device_image.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.12}"
OUT="${OUT:?set OUT to a folder for the sweep files}"
VENV=$(mktemp -d /tmp/mrr_jax_image_venv.XXXXXX)
trap 'rm -rf "$VENV"' EXIT  # the venv is this script's own
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q 'jax==0.11.2' 'jaxlib==0.11.2' 'numpy==2.5.2' flax optax \
    orbax-checkpoint absl-py pyyaml 'ml-collections==1.1.0' pytest pytest-xdist
"$VENV/bin/python" -m pip list 2>/dev/null | grep -iE '^(jax|jaxlib|flax|optax|orbax-checkpoint|numpy) '
"$VENV/bin/python" -m pytest -q -n 2 --dist loadfile -p no:cacheprovider \
    tests/test_lowering.py tests/test_bench.py tests/test_profile_summary.py tests/test_kernels.py \
    tests/test_models_golden.py tests/test_golden_iterations.py tests/test_hlo_costs.py \
    tests/test_models_variants.py tests/test_vgg_resize.py
PATH="$VENV/bin:$PATH" CONFIG=configs/mrrnet.py:tiny bash benchmarks/device_sweep.sh 60
