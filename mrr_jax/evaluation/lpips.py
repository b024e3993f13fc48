"""LPIPS v0.1 (Zhang et al. 2018) in jnp, from user-supplied weights only.

Two files are needed and nothing is downloaded:
  backbone  the ImageNet classifier whose `features` LPIPS taps: torchvision's
            AlexNet (alexnet-owt-7be5be79.pth) or VGG16 (vgg16-397923af.pth);
  linear    the LPIPS linear heads, alex.pth or vgg.pth from the `lpips` pip
            package (lpips/weights/v0.1/), keys lin{k}.model.1.weight.
Either may also be an .npz with the same keys (see mrr_jax.torch_io).

As the `lpips` package computes it (LPIPS(net, version='0.1'), spatial off):
inputs RGB in [-1, 1] -> (x - shift) / scale -> backbone ReLU taps -> unit
normalisation over channels (eps 1e-10) -> squared difference -> 1x1 linear
head -> spatial mean -> sum over taps. The backbone is chosen by the shape of
features.0.weight (11x11 AlexNet, 3x3 VGG16).
"""
from typing import Any, Dict, List, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from mrr_jax.weights import torch_io

SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10

# Layer programs over torchvision `features`: ('conv', index, stride, pad) is a
# conv + ReLU, ('pool', k, s) a max-pool, 'tap' a feature LPIPS compares.
NETS = {
    'alex': (
        ('conv', 0, 4, 2), 'tap', ('pool', 3, 2), ('conv', 3, 1, 2), 'tap', ('pool', 3, 2),
        ('conv', 6, 1, 1), 'tap', ('conv', 8, 1, 1), 'tap', ('conv', 10, 1, 1), 'tap'),
    'vgg': (
        ('conv', 0, 1, 1), ('conv', 2, 1, 1), 'tap', ('pool', 2, 2),
        ('conv', 5, 1, 1), ('conv', 7, 1, 1), 'tap', ('pool', 2, 2),
        ('conv', 10, 1, 1), ('conv', 12, 1, 1), ('conv', 14, 1, 1), 'tap', ('pool', 2, 2),
        ('conv', 17, 1, 1), ('conv', 19, 1, 1), ('conv', 21, 1, 1), 'tap', ('pool', 2, 2),
        ('conv', 24, 1, 1), ('conv', 26, 1, 1), ('conv', 28, 1, 1), 'tap'),
}
TAP_CHANNELS = {'alex': (64, 192, 384, 256, 256), 'vgg': (64, 128, 256, 512, 512)}
FIRST_KERNEL = {11: 'alex', 3: 'vgg'}

Params = Dict[str, Any]


class LpipsWeightsError(ValueError):
  """LPIPS weight files that are missing, unreadable or do not fit together."""


def _conv_indices(net: str) -> List[int]:
  return [op[1] for op in NETS[net] if op != 'tap' and op[0] == 'conv']


def _backbone_params(state: Dict[str, np.ndarray], path: str) -> Tuple[str, Params]:
  first = state.get('features.0.weight')
  if first is None or first.ndim != 4 or first.shape[-1] not in FIRST_KERNEL:
    raise LpipsWeightsError(
        f'{path} is not a torchvision AlexNet or VGG16 state_dict '
        '(features.0.weight must be 64x3x11x11 or 64x3x3x3)')
  net = FIRST_KERNEL[first.shape[-1]]
  convs = {}
  for i in _conv_indices(net):
    for part in ('weight', 'bias'):
      key = f'features.{i}.{part}'
      if key not in state:
        raise LpipsWeightsError(f'{path} lacks {key}: not a torchvision {net} state_dict')
    convs[str(i)] = {
        'kernel': np.asarray(state[f'features.{i}.weight'], np.float32).transpose(2, 3, 1, 0),
        'bias': np.asarray(state[f'features.{i}.bias'], np.float32)}
  return net, convs


def _linear_params(state: Dict[str, np.ndarray], path: str, net: str) -> List[np.ndarray]:
  lins = []
  for k, channels in enumerate(TAP_CHANNELS[net]):
    # lpips stores the head after a Dropout (model.1); without dropout it is model.0.
    keys = [f'lin{k}.model.1.weight', f'lin{k}.model.0.weight']
    found = [state[key] for key in keys if key in state]
    if not found:
      raise LpipsWeightsError(f'{path} lacks {keys[0]}: not an LPIPS linear-layer file')
    w = np.asarray(found[0], np.float32).reshape(-1)
    if w.shape != (channels,):
      raise LpipsWeightsError(
          f'{path}: lin{k} has {w.size} channels but the {net} backbone gives {channels}; '
          f'use the LPIPS {net}.pth that matches the backbone')
    lins.append(w)
  return lins


def load(backbone_path: str, linear_path: str) -> Tuple[str, Params]:
  """(net name, params pytree) from the two weight files; errors name the file at fault."""
  try:
    backbone = torch_io.load_state_dict(backbone_path)
    linear = torch_io.load_state_dict(linear_path)
  except torch_io.StateDictError as e:
    raise LpipsWeightsError(f'LPIPS weights: {e}') from e
  net, convs = _backbone_params(backbone, backbone_path)
  lins = _linear_params(linear, linear_path, net)
  return net, {'convs': convs, 'lins': lins}


def _features(net: str, convs: Params, x: jax.Array) -> List[jax.Array]:
  taps = []
  for op in NETS[net]:
    if op == 'tap':
      taps.append(x)
    elif op[0] == 'conv':
      _, i, stride, pad = op
      p = convs[str(i)]
      x = jax.lax.conv_general_dilated(
          x, p['kernel'], (stride, stride), ((pad, pad), (pad, pad)),
          dimension_numbers=('NHWC', 'HWIO', 'NHWC'), precision=jax.lax.Precision.HIGHEST)
      x = jax.nn.relu(x + p['bias'])
    else:
      _, k, s = op
      x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, k, k, 1), (1, s, s, 1), 'VALID')
  return taps


def distance(net: str, params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
  """Per-image LPIPS of NHWC RGB batches in [-1, 1]: shape [N]."""
  shift = jnp.asarray(SHIFT, jnp.float32)
  scale = jnp.asarray(SCALE, jnp.float32)
  fx = _features(net, params['convs'], (jnp.asarray(x, jnp.float32) - shift) / scale)
  fy = _features(net, params['convs'], (jnp.asarray(y, jnp.float32) - shift) / scale)
  total = 0.0
  for a, b, w in zip(fx, fy, params['lins']):
    a = a / (jnp.sqrt(jnp.sum(a * a, axis=-1, keepdims=True)) + EPS)
    b = b / (jnp.sqrt(jnp.sum(b * b, axis=-1, keepdims=True)) + EPS)
    total = total + jnp.mean(jnp.square(a - b) @ w, axis=(1, 2))
  return total
