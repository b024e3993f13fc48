"""XLA:CPU settings that make this model's convolutions fast on CPU hosts.

jaxlib 0.10 sends CPU convolutions through YNNPACK by default. For this
network's many small-width convolutions (and their gradients) that path kept
only ~1.3 of 2 cores busy and ran the L1 train step at ~0.4x the authors'
PyTorch code; an empty `--xla_cpu_experimental_ynn_fusion_type=` falls back to
XLA's Eigen convolutions, which use every core (BENCHMARKS.md). The flag only
touches the CPU backend, so it is harmless on GPU/TPU hosts, and the numbers
are the same math (fp32 convolutions either way; golden tests pass on both).
"""
import os

YNN_FLAG = '--xla_cpu_experimental_ynn_fusion_type'


def configure_xla_cpu_flags() -> None:
  """Appends `YNN_FLAG=` (Eigen convolutions) to XLA_FLAGS unless the user set it.

  XLA reads XLA_FLAGS once, when the first backend starts, so this must run
  before any computation; importing mrr_jax does that. Setting
  MRR_JAX_KEEP_XLA_FLAGS=1 leaves XLA_FLAGS untouched (to time the default).
  """
  if os.environ.get('MRR_JAX_KEEP_XLA_FLAGS') == '1':
    return
  flags = os.environ.get('XLA_FLAGS', '')
  if YNN_FLAG in flags:
    return
  os.environ['XLA_FLAGS'] = f'{flags} {YNN_FLAG}='.strip()
