"""Reading PyTorch state_dicts into numpy, in one place.

`.pth`/`.pt` files are read with torch (CPU, weights only) when it is
installed; without torch the error says how to get it. `.npz` files holding
the same {key: array} mapping are read with numpy alone, which lets tests and
torch-free machines use weights converted once elsewhere.
"""
import os
from typing import Dict

import numpy as np


class StateDictError(ValueError):
  """A missing or unreadable state_dict file."""


def load_state_dict(path: str) -> Dict[str, np.ndarray]:
  """{key: float array} from a torch state_dict file (.pth/.pt) or an .npz of the same."""
  if not os.path.isfile(path):
    raise StateDictError(f'weights file {path} does not exist')
  if path.endswith('.npz'):
    try:
      with np.load(path, allow_pickle=False) as f:
        return {k: np.asarray(f[k]) for k in f.files}
    except Exception as e:  # zipfile and numpy raise several unrelated types.
      raise StateDictError(f'{path} is not a readable .npz file: {e}') from e
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise StateDictError(
        f'reading {path} needs PyTorch, which is not installed: run `pip install torch` '
        '(the CPU build is enough), or pass an .npz with the same keys') from e
  try:
    state = torch.load(path, map_location='cpu', weights_only=True)
  except Exception as e:  # torch raises several unrelated types on corrupt files.
    raise StateDictError(f'{path} is not a readable PyTorch file: {e}') from e
  if isinstance(state, dict) and 'state_dict' in state and isinstance(state['state_dict'], dict):
    state = state['state_dict']
  if not isinstance(state, dict):
    raise StateDictError(f'{path} holds a {type(state).__name__}, not a state_dict')
  out = {}
  for key, value in state.items():
    if not hasattr(value, 'numpy'):
      raise StateDictError(f'{path}: entry {key!r} is a {type(value).__name__}, not a tensor')
    out[key] = value.detach().cpu().float().numpy()
  return out
