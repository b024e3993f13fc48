"""The train steps as an accelerator would run them, checked without one.

jax lowers a program for any platform on a CPU machine: the pmapped L1 and
GAN steps of the full-size models (4 devices, per-device batch 16, the plain
kernels that 'auto' picks off the CPU) are lowered for 'tpu' and 'cuda', and
the StableHLO must hold: no float64; in bfloat16 mode, bfloat16 operands in
every convolution; HIGHEST precision only where docs/performance.md lists it
(the spectral-norm mat-vecs); no host callbacks; and one
all-reduce per gradient tree plus the scalar means the docs count.
"""
import re

import jax
import numpy as np
import pytest

from configs import mrrgan, mrrnet
from mrr_jax.models import MRRNet, kernels
from mrr_jax.models import init as model_init
from mrr_jax.train import parallel, setup

pytestmark = pytest.mark.skipif(jax.local_device_count() < 4,
                                reason='needs the 4 CPU devices tests/conftest.py sets up')
PER_DEVICE = 16
# Scalar all-reduces per step (docs/performance.md#collectives): each global
# batch mean of a loss is a pmean in the forward pass and another in the
# backward (pmean's transpose) where gradient flows through it.
# L1: the L1 loss, forward and backward.
# GAN, G step: L1 (2); RaHinge for G, 4 means forward and 3 backward (D(HR)'s
# mean does not depend on G); 5 perceptual taps forward and backward (10).
# D step: RaHinge for D, 4 + 4. Logged: the means of D(HR) and D(SR), 2.
SCALAR_ALL_REDUCES = {'l1': 2, 'gan': 2 + 4 + 3 + 10 + 8 + 2}
# HIGHEST-precision ops per step: none in L1. GAN: per spectral-norm layer (4
# in D), each of the 4 training-mode D calls runs W^T u, W v (power
# iteration), W v and u . (W v) (sigma): 16; the D step's backward through
# sigma of its 2 D calls, 2 each: 4. (The VGG input resize is slices and a
# lerp, vgg.bilinear_upsample: no contraction at all.)
HIGHEST_OPS = {'l1': 0, 'gan': 4 * (4 * 4 + 2 * 2)}


def _lowered(phase: str, dtype: str):
  """({platform: StableHLO text} of the phase's step, the setup it came from)."""
  config = (mrrnet if phase == 'l1' else mrrgan).get_config()
  config.compute_dtype = dtype
  config.kernels = 'plain'  # what 'auto' chooses on a GPU or TPU backend
  config.allow_random_vgg = True
  config.batch_size = PER_DEVICE * jax.local_device_count()
  run = setup.create(config, steps_per_epoch=1000)
  kernels.set_mode(None)
  state = parallel.replicate(run.state)
  zeros = np.zeros((config.batch_size, 128, 128, 3), np.float32)
  batch = jax.device_put(parallel.shard({'input': zeros, 'hr': zeros}),
                         parallel.device_axis_sharding(jax.local_devices()))
  with kernels.forced('plain'):
    traced = jax.jit(run.step_fn).trace(state, batch)
  return {p: traced.lower(lowering_platforms=(p,)).as_text() for p in ('tpu', 'cuda')}, run


@pytest.fixture(scope='module', params=[('l1', 'bfloat16'), ('gan', 'bfloat16'),
                                        ('l1', 'float32'), ('gan', 'float32')],
                ids=lambda p: '-'.join(p))
def lowered(request):
  phase, dtype = request.param
  texts, run = _lowered(phase, dtype)
  return phase, dtype, texts, run


def _all_reduce_types(text: str):
  """The operand type of every all-reduce (the region's signature follows it)."""
  out = []
  for match in re.finditer(r'"stablehlo\.all_reduce"', text):
    sig = re.search(r'\}\) : \((tensor<[^>]*>)', text[match.end():])
    out.append(sig.group(1))
  return out


def test_no_float64_and_no_host_callbacks(lowered):
  _, _, texts, _ = lowered
  for platform, text in texts.items():
    assert 'f64' not in text, platform
    assert 'callback' not in text and 'xla_python' not in text, platform


def test_bfloat16_convolutions(lowered):
  _, dtype, texts, _ = lowered
  for platform, text in texts.items():
    convs = [line for line in text.split('\n') if 'stablehlo.convolution' in line]
    assert len(convs) > 100, platform
    want = 'bf16' if dtype == 'bfloat16' else 'f32'
    for line in convs:
      operands = re.search(r': \((tensor<[^>]*>), (tensor<[^>]*>)\)', line)
      assert operands and all(t.endswith(f'x{want}>') for t in operands.groups()), line[-200:]


def test_highest_precision_only_where_listed(lowered):
  phase, _, texts, _ = lowered
  for platform, text in texts.items():
    ops = [line for line in text.split('\n') if 'HIGHEST' in line]
    assert len(ops) == HIGHEST_OPS[phase], (platform, len(ops))
    assert all('dot_general' in line or 'einsum' in line for line in ops), platform


def test_one_all_reduce_per_gradient_tree(lowered):
  """G's gradient is one all-reduce (and D's, and the spectral vectors', in the GAN step), each
  exactly as long as the tree it averages; then the scalar means the docs count."""
  phase, _, texts, run = lowered
  size = lambda tree: sum(int(np.size(x)) for x in jax.tree_util.tree_leaves(tree))
  trees = [run.state.g_params]
  if phase == 'gan':
    trees += [run.state.d_params, run.state.spectral]  # spectral: u, v kept identical
  assert len(jax.tree_util.tree_leaves(run.state.g_params)) == 304  # the full generator
  for platform, text in texts.items():
    types = _all_reduce_types(text)
    scalars = [t for t in types if re.fullmatch(r'tensor<(f32|bf16)>', t)]
    assert sorted(t for t in types if t not in scalars) == sorted(
        f'tensor<{size(tree)}xf32>' for tree in trees), platform
    assert len(scalars) == SCALAR_ALL_REDUCES[phase], (platform, len(scalars))


@pytest.mark.parametrize('mode', ['plain', 'cpu'])
def test_bfloat16_backward_saves_bfloat16_activations(mode):
  """What the generator's gradient keeps from its forward pass, in bfloat16, on either kernel path.

  Its InstanceNorms compute statistics in float32; the backward pass would keep
  their float32 x_hat (50 arrays, 10.3 MiB of this tiny G's 18.9 MiB of
  residuals per 128x128 image on the plain path). They keep their bfloat16
  input instead: the one float32 image left is G's output, where the loss starts.
  """
  model = MRRNet(base_channels=8, max_channels=16, num_res=1, dtype=jax.numpy.bfloat16)
  params = model_init.init_generator(model, 0)
  x = np.zeros((1, 128, 128, 3), np.float32)
  loss = lambda p: jax.numpy.mean(model.apply({'params': p}, x).astype(np.float32) ** 2)
  with kernels.forced(mode):
    residuals = jax.tree_util.tree_leaves(jax.jit(lambda p: jax.vjp(loss, p)[1])(params))
  activations = [r for r in residuals if r.ndim == 4 and r.shape[1] >= 16]
  assert len(activations) > 100  # the whole network's, not a vacuous list
  float32 = [r.shape for r in activations if r.dtype == np.float32]
  assert float32 == [(1, 128, 128, 3)], float32
  assert {str(r.dtype) for r in activations} == {'bfloat16', 'bool', 'float32'}
