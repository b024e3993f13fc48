"""Pure conversions between the authors' PyTorch state_dicts and flax params.

All functions take and return dicts of numpy arrays; reading files lives in
mrr_jax/torch_io.py and mrr_jax/convert.py. Conv weights go OIHW -> HWIO.
Every conversion checks the whole key set: a missing, unexpected or
mis-shaped key raises WeightsError naming it.
"""
import re
from typing import Any, Dict, List, Mapping, Tuple

import flax
import numpy as np

from mrr_jax.models import vgg as vgg_lib

Path = Tuple[str, ...]


class WeightsError(ValueError):
  """State dict keys or shapes do not fit the model."""


def oihw_to_hwio(w: np.ndarray) -> np.ndarray:
  return np.ascontiguousarray(np.transpose(w, (2, 3, 1, 0)))


def hwio_to_oihw(w: np.ndarray) -> np.ndarray:
  return np.ascontiguousarray(np.transpose(w, (3, 2, 0, 1)))


def strip_data_parallel_prefix(state: Mapping[str, Any]) -> Dict[str, Any]:
  """Drops the 'module.' prefix nn.DataParallel adds, when every key has it."""
  if state and all(k.startswith('module.') for k in state):
    return {k[len('module.'):]: v for k, v in state.items()}
  return dict(state)


# ----------------------------------------------------------------------------
# Generator
# ----------------------------------------------------------------------------
_LEAF_TO_TORCH = {'kernel': 'weight', 'scale': 'weight', 'bias': 'bias'}


def generator_torch_key(path: Path) -> str:
  """Flax param path of MRRNet -> the authors' state_dict key.

  ('encoder_1', 'conv1', 'norm', 'scale') -> 'encoder.1.conv1.norm.norm.weight'
  ('res_layers_0', 'att_func', 'feature_extract_3', 'kernel')
      -> 'res_layers.0.att_func.inception.feature_extract_3.1.weight'
  """
  block = re.sub(r'_(\d+)$', r'.\1', path[0])
  parts = []
  for name in path[1:-1]:
    if name == 'preact_norm':
      parts.append('preact_func.0.norm')
    elif name == 'norm' and parts and parts[-1] in ('conv1', 'conv2'):
      parts.append('norm.norm')
    elif name.startswith('feature_extract_'):
      k = int(name.rsplit('_', 1)[1])
      # torch wraps k > 1 branches as Sequential(ReflectionPad2d, Conv2d).
      parts.append(f'inception.{name}.{0 if k == 1 else 1}')
    elif name == 'out_block':
      parts.append('out_block.0')
    else:
      parts.append(name)
  return '.'.join([block] + parts + [_LEAF_TO_TORCH[path[-1]]])


def _convert(state: Mapping[str, np.ndarray], targets: Mapping[Path, Tuple[int, ...]],
             torch_key, what: str) -> Dict[Path, np.ndarray]:
  """Maps torch keys onto flax paths with full key and shape checking."""
  state = strip_data_parallel_prefix(state)
  key_of = {path: torch_key(path) for path in targets}
  missing = [k for k in key_of.values() if k not in state]
  expected_keys = set(key_of.values())
  extra = sorted(k for k in state if k not in expected_keys)
  problems = []
  if missing:
    problems.append(f'missing keys {missing}')
  if extra:
    problems.append(f'unexpected keys {extra}')
  out = {}
  for path, shape in targets.items():
    key = key_of[path]
    if key not in state:
      continue
    value = np.asarray(state[key], np.float32)
    if value.ndim == 4 and len(shape) == 4:
      value = oihw_to_hwio(value)
    if tuple(value.shape) != tuple(shape):
      want = hwio_to_oihw(np.zeros(shape)).shape if len(shape) == 4 else shape
      problems.append(f'key {key}: shape {tuple(np.shape(state[key]))}, expected {tuple(want)}')
      continue
    out[path] = value
  if problems:
    raise WeightsError(f'{what} state_dict does not fit: ' + '; '.join(problems))
  return out


def generator_from_torch(state: Mapping[str, np.ndarray],
                         param_shapes: Mapping[Path, Tuple[int, ...]]) -> Dict[str, Any]:
  """Authors' generator state_dict -> MRRNet params (nested dict).

  param_shapes: flat {flax path: shape}, from mrr_jax.weights.export_format.param_shapes(model).
  """
  flat = _convert(state, param_shapes, generator_torch_key, 'generator')
  return flax.traverse_util.unflatten_dict(flat)


def generator_to_torch(params: Mapping[str, Any]) -> Dict[str, np.ndarray]:
  """MRRNet params -> a state_dict with the authors' keys (OIHW)."""
  flat = flax.traverse_util.flatten_dict(dict(params))
  out = {}
  for path, v in flat.items():
    v = np.asarray(v, np.float32)
    out[generator_torch_key(path)] = hwio_to_oihw(v) if v.ndim == 4 else v
  return out


# ----------------------------------------------------------------------------
# Discriminator
# ----------------------------------------------------------------------------
def discriminator_torch_key(path: Path) -> str:
  """('d1', 'kernel') -> 'd1.0.1.weight_orig'; ('d1', 'u') -> 'd1.0.1.weight_u'; head d4_pred."""
  layer, leaf = path
  if layer == 'd4_pred':
    return 'd4_pred.0.1.weight'
  return f'{layer}.0.1.' + {'kernel': 'weight_orig', 'bias': 'bias', 'u': 'weight_u',
                             'v': 'weight_v'}[leaf]


def discriminator_from_torch(state: Mapping[str, np.ndarray], param_shapes: Mapping[Path, Any],
                             spectral_shapes: Mapping[Path, Any]) -> Tuple[Dict, Dict]:
  """Authors' D state_dict (weights and SN buffers u, v) -> (params, spectral)."""
  targets = dict(param_shapes)
  targets.update({('__spectral__',) + k: v for k, v in spectral_shapes.items()})
  key = lambda p: discriminator_torch_key(p[1:] if p[0] == '__spectral__' else p)
  flat = _convert(state, targets, key, 'discriminator')
  params = {k: v for k, v in flat.items() if k[0] != '__spectral__'}
  spectral = {k[1:]: v for k, v in flat.items() if k[0] == '__spectral__'}
  return (flax.traverse_util.unflatten_dict(params), flax.traverse_util.unflatten_dict(spectral))


# ----------------------------------------------------------------------------
# VGG19
# ----------------------------------------------------------------------------
def vgg19_param_shapes() -> Dict[Path, Tuple[int, ...]]:
  shapes, cin = {}, 3
  for layer in vgg_lib.VGG19_LAYERS:
    if layer == 'M':
      continue
    name, width = layer
    shapes[(name, 'kernel')] = (3, 3, cin, width)
    shapes[(name, 'bias')] = (width,)
    cin = width
  return shapes


def vgg19_from_torchvision(state: Mapping[str, np.ndarray]) -> Dict[str, Any]:
  """torchvision vgg19 state_dict (e.g. vgg19-dcbb9e9d.pth) -> VGG19Features params.

  The classifier (fc) weights in a full checkpoint are ignored: the perceptual
  loss uses `features` only.
  """
  index = dict(vgg_lib.torchvision_feature_indices())
  state = {k: v for k, v in strip_data_parallel_prefix(state).items()
           if not k.startswith('classifier.')}
  key = lambda p: f'features.{index[p[0]]}.{"weight" if p[1] == "kernel" else "bias"}'
  flat = _convert(state, vgg19_param_shapes(), key, 'VGG19')
  return flax.traverse_util.unflatten_dict(flat)


def keras_vgg19_layer(name: str) -> str:
  """'conv3_4' -> Keras applications' 'block3_conv4'."""
  block, idx = name[len('conv'):].split('_')
  return f'block{block}_conv{idx}'


def vgg19_from_keras(layers: Mapping[str, List[np.ndarray]]) -> Dict[str, Any]:
  """Keras VGG19 weights {layer name: [kernel HWIO, bias]} -> VGG19Features params.

  Keras' ImageNet VGG19 expects 'caffe' preprocessing (BGR, 0..255, mean
  subtracted): use it with vgg.preprocess(..., mode='caffe').
  """
  state = {}
  for path in vgg19_param_shapes():
    layer = keras_vgg19_layer(path[0])
    if layer in layers:
      kernel, bias = layers[layer]
      # Stored as OIHW here so _convert's single transpose rule applies.
      state[f'{layer}.{path[1]}'] = hwio_to_oihw(kernel) if path[1] == 'kernel' else bias
  conv_layers = {l for l in layers if re.match(r'block\d_conv\d$', l)}
  for extra in sorted(conv_layers - {keras_vgg19_layer(p[0]) for p in vgg19_param_shapes()}):
    state[extra] = np.zeros(0)
  flat = _convert(state, vgg19_param_shapes(), lambda p: f'{keras_vgg19_layer(p[0])}.{p[1]}',
                  'Keras VGG19')
  return flax.traverse_util.unflatten_dict(flat)


def flat_shapes(tree: Mapping[str, Any]) -> Dict[Path, Tuple[int, ...]]:
  return {k: tuple(np.shape(v)) for k, v in flax.traverse_util.flatten_dict(dict(tree)).items()}

