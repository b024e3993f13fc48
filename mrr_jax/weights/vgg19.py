"""Loads ImageNet VGG19 weights for the perceptual loss from the files users have.

- torchvision's `vgg19-dcbb9e9d.pth` (what the authors' code loads):
  https://download.pytorch.org/models/vgg19-dcbb9e9d.pth
- Keras applications' `vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`:
  https://storage.googleapis.com/tensorflow/keras-applications/vgg19/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5
- torchvision's state_dict saved as `.safetensors` or `.npz` (the same keys).
Nothing is downloaded here: the user names the file in `config.vgg_weights`.
No code in the file runs: a `.pth` is read by torch.load(weights_only=True) or
by mrr_jax.torch_io's restricted reader, which refuse anything but tensors
(see mrr_jax/torch_io.py); `.safetensors`, `.npz` and `.h5` hold no code.
"""
import os
from typing import Any, Dict, List, Tuple

import numpy as np

from mrr_jax.weights import torch_io
from mrr_jax.weights import torch_keys

WHERE_TO_GET = (
    'download torchvision\'s ImageNet VGG19, https://download.pytorch.org/models/vgg19-dcbb9e9d.pth '
    '(what the authors use), or Keras\' vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5, and set '
    '--config.vgg_weights=/path/to/file')


class VGGWeightsError(ValueError):
  """VGG19 weights missing or unreadable."""


def _read_keras_h5(path: str) -> Dict[str, List[np.ndarray]]:
  try:
    import h5py  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise VGGWeightsError(f'reading {path} needs h5py: pip install h5py') from e
  layers = {}
  with h5py.File(path, 'r') as f:
    root = f['model_weights'] if 'model_weights' in f else f
    for name, group in root.items():
      names = [n.decode() if isinstance(n, bytes) else n
               for n in group.attrs.get('weight_names', [])]
      if names:
        layers[name] = [np.asarray(group[n]) for n in names]
  return layers


def load_vgg19(path: str) -> Tuple[Dict[str, Any], str]:
  """(VGG19Features params, preprocess mode) from a .pth/.safetensors/.npz or Keras .h5 file."""
  if not path:
    raise VGGWeightsError(f'no VGG19 weights configured (config.vgg_weights is empty): {WHERE_TO_GET}')
  if not os.path.isfile(path):
    raise VGGWeightsError(f'VGG19 weights {path} not found: {WHERE_TO_GET}')
  try:
    if path.endswith(('.h5', '.hdf5')):
      return torch_keys.vgg19_from_keras(_read_keras_h5(path)), 'caffe'
    return torch_keys.vgg19_from_torchvision(torch_io.load_state_dict(path)), 'torch'
  except (torch_io.StateDictError, torch_keys.WeightsError, OSError, KeyError) as e:
    raise VGGWeightsError(f'{path} is not usable VGG19 weights: {e}') from e
