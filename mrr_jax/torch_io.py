"""Reads PyTorch state_dict files (.pth) and .npz into {key: numpy array}.

Uses torch when it is installed. Without torch, a small restricted unpickler
reads both of torch.save's formats (the zip format of torch >= 1.6 and the
legacy format of older files such as torchvision's vgg19-dcbb9e9d.pth): only
tensors, OrderedDicts and plain Python values are accepted, so a .pth cannot
run code here.
"""
import collections
import os
import pickle
import struct
import zipfile
from typing import Any, Dict

import numpy as np

_STORAGE_DTYPES = {
    'FloatStorage': np.float32, 'DoubleStorage': np.float64, 'HalfStorage': np.float16,
    'BFloat16Storage': None, 'LongStorage': np.int64, 'IntStorage': np.int32,
    'ShortStorage': np.int16, 'CharStorage': np.int8, 'ByteStorage': np.uint8,
    'BoolStorage': np.bool_,
}
_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c


class StateDictError(ValueError):
  """A weights file that is missing, unreadable, or not a state_dict."""


class _StorageType:

  def __init__(self, name):
    if name not in _STORAGE_DTYPES:
      raise StateDictError(f'unsupported tensor storage {name}')
    if _STORAGE_DTYPES[name] is None:
      raise StateDictError('bfloat16 tensors need torch to read: pip install torch')
    self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _LazyStorage:
  """A storage whose bytes are filled in after unpickling (legacy format)."""

  def __init__(self, dtype):
    self.dtype = dtype
    self.array = None


class _LazyTensor:

  def __init__(self, storage, offset, size, stride):
    self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

  def materialize(self) -> np.ndarray:
    flat = self.storage.array
    item = flat.dtype.itemsize
    if not self.size:
      return flat[self.offset].copy()
    view = np.lib.stride_tricks.as_strided(
        flat[self.offset:], shape=self.size, strides=[s * item for s in self.stride])
    return np.array(view)


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
  return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *unused):
  return data


class _Unpickler(pickle.Unpickler):
  """Allows only what a plain state_dict contains."""

  _ALLOWED = {
      ('collections', 'OrderedDict'): collections.OrderedDict,
      ('torch._utils', '_rebuild_tensor_v2'): _rebuild_tensor,
      ('torch._utils', '_rebuild_tensor'): _rebuild_tensor,
      ('torch._utils', '_rebuild_parameter'): _rebuild_parameter,
  }

  def __init__(self, file, load_storage):
    super().__init__(file, encoding='latin1')
    self._load_storage = load_storage

  def find_class(self, module, name):
    if (module, name) in self._ALLOWED:
      return self._ALLOWED[(module, name)]
    if module == 'torch' and name.endswith('Storage'):
      return _StorageType(name)
    raise StateDictError(f'refusing to unpickle {module}.{name}: not part of a state_dict')

  def persistent_load(self, saved_id):
    if saved_id[0] != 'storage':
      raise StateDictError(f'unexpected persistent id {saved_id[0]!r}')
    return self._load_storage(*saved_id[1:])


def _load_zip(path: str) -> Any:
  with zipfile.ZipFile(path) as zf:
    names = zf.namelist()
    pkl = next((n for n in names if n.endswith('/data.pkl') or n == 'data.pkl'), None)
    if pkl is None:
      raise StateDictError(f'{path}: zip archive without data.pkl (not a torch.save file)')
    prefix = pkl[:-len('data.pkl')]

    def load_storage(storage_type, key, location, numel, *unused):
      storage = _LazyStorage(storage_type.dtype)
      storage.array = np.frombuffer(zf.read(f'{prefix}data/{key}'), dtype=storage_type.dtype)
      return storage

    with zf.open(pkl) as f:
      return _Unpickler(f, load_storage).load()


def _load_legacy(path: str) -> Any:
  storages = {}

  def load_storage(storage_type, key, location, numel, view_metadata=None):
    if key not in storages:
      storages[key] = _LazyStorage(storage_type.dtype)
    if view_metadata is not None:
      raise StateDictError('storage views in legacy .pth files need torch: pip install torch')
    return storages[key]

  with open(path, 'rb') as f:
    if pickle.load(f) != _LEGACY_MAGIC:
      raise StateDictError(f'{path} is not a torch.save file')
    pickle.load(f)  # protocol version
    pickle.load(f)  # sys info
    obj = _Unpickler(f, load_storage).load()
    for key in pickle.load(f):
      storage = storages[key]
      (numel,) = struct.unpack('<q', f.read(8))
      data = f.read(numel * storage.dtype.itemsize)
      if len(data) != numel * storage.dtype.itemsize:
        raise StateDictError(f'{path} is truncated')
      storage.array = np.frombuffer(data, dtype=storage.dtype)
  return obj


def _materialize(obj: Any) -> Dict[str, np.ndarray]:
  if isinstance(obj, dict) and 'state_dict' in obj and isinstance(obj['state_dict'], dict):
    obj = obj['state_dict']
  if not isinstance(obj, dict):
    raise StateDictError(f'expected a state_dict (a dict of tensors), got {type(obj).__name__}')
  out = {}
  for key, value in obj.items():
    if isinstance(value, _LazyTensor):
      out[key] = value.materialize()
  return out


def _load_with_torch(path: str) -> Dict[str, np.ndarray]:
  import torch  # pylint: disable=g-import-not-at-top
  obj = torch.load(path, map_location='cpu', weights_only=True)
  if isinstance(obj, dict) and 'state_dict' in obj and isinstance(obj['state_dict'], dict):
    obj = obj['state_dict']
  if not isinstance(obj, dict):
    raise StateDictError(f'{path}: expected a state_dict, got {type(obj).__name__}')
  return {k: v.detach().float().numpy() if v.dtype == torch.bfloat16 else v.detach().numpy()
          for k, v in obj.items() if isinstance(v, torch.Tensor)}


def load_pth(path: str, use_torch: bool = True) -> Dict[str, np.ndarray]:
  """A torch.save'd state_dict as numpy arrays (torch used when installed)."""
  if use_torch:
    try:
      import torch  # pylint: disable=g-import-not-at-top,unused-import
    except ImportError:
      use_torch = False
  try:
    if use_torch:
      return _load_with_torch(path)
    if zipfile.is_zipfile(path):
      return _materialize(_load_zip(path))
    return _materialize(_load_legacy(path))
  except StateDictError:
    raise
  except Exception as e:  # Corrupt files raise many unrelated types.
    raise StateDictError(f'{path} could not be read as a PyTorch state_dict: '
                         f'{type(e).__name__}: {e}') from e


def load_state_dict(path: str) -> Dict[str, np.ndarray]:
  """{key: array} from a .pth/.pt (torch.save) or .npz with the same keys."""
  if not os.path.isfile(path):
    raise StateDictError(f'weights file {path} does not exist')
  if path.endswith('.npz'):
    try:
      with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}
    except Exception as e:
      raise StateDictError(f'{path} is not a readable .npz: {e}') from e
  return load_pth(path)
