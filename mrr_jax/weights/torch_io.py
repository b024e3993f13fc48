"""Reads weight files (.pth, .safetensors, .npz) into {key: numpy array}.

No code in a weight file runs here. A .pth is pickled, and unpickling calls
whatever functions the file names, so:
- with torch installed, a .pth goes through torch.load(weights_only=True) only;
- without torch, ONE restricted unpickler reads every pickle record of both of
  torch.save's formats: the zip format's data.pkl (torch >= 1.6) and all five
  records of the legacy format of older files such as torchvision's
  vgg19-dcbb9e9d.pth (magic number, protocol, sys info, the state_dict, the
  storage keys). It admits collections.OrderedDict, torch's tensor-rebuild
  functions (mapped to inert stand-ins here that only record where a tensor's
  elements lie) and torch's *Storage types from a fixed list; any other class
  or function is refused, by name, before it is called.
A .safetensors file (a JSON header and raw bytes) and an .npz read with
allow_pickle=False hold no code at all; mrr_jax.convert also writes
.safetensors, atomically (write_safetensors).
"""
import _compat_pickle
import collections
import os
import pickle
import re
import struct
import zipfile
from typing import Any, Callable, Dict, Mapping, Tuple

import numpy as np

from mrr_jax import outputs

# torch.<name> storage types a state_dict's tensors are made of (None: no numpy dtype).
_STORAGE_DTYPES = {
    'FloatStorage': np.float32, 'DoubleStorage': np.float64, 'HalfStorage': np.float16,
    'BFloat16Storage': None, 'LongStorage': np.int64, 'IntStorage': np.int32,
    'ShortStorage': np.int16, 'CharStorage': np.int8, 'ByteStorage': np.uint8,
    'BoolStorage': np.bool_,
}
_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
# Values a legacy file's sys-info record may hold (it is a dict of these).
_PLAIN_TYPES = (type(None), bool, int, float, str, bytes)
# safetensors dtypes numpy has a type for (BF16 and the F8 kinds it has not).
_SAFETENSORS_NUMPY_DTYPES = frozenset(
    ('BOOL', 'U8', 'I8', 'U16', 'I16', 'U32', 'I32', 'U64', 'I64', 'F16', 'F32', 'F64'))
# Lines of torch's weights_only refusal that explain torch, not the file.
_TORCH_BOILERPLATE = ('Weights only load failed', '(1)', '(2)', 'Check the documentation')


class StateDictError(ValueError):
  """A weights file that is missing, unreadable, refused, or not a state_dict."""


def _one_line(error: BaseException) -> str:
  """An exception as one line: the CLIs print `error: ...` on a single line."""
  return ' '.join(str(error).split()) or type(error).__name__


class _Inert:
  """Base of the stand-ins: pickle's BUILD opcode may not set their state."""
  __slots__ = ()

  def __setstate__(self, state):
    raise StateDictError(f'refusing to set the state of a {type(self).__name__}')


class _StorageType(_Inert):
  """Stands in for torch.<name>Storage: only its element type is kept."""
  __slots__ = ('name', 'dtype')

  def __init__(self, name: str):
    if _STORAGE_DTYPES[name] is None:
      raise StateDictError(f'{name} (bfloat16) tensors need torch to read: pip install torch')
    self.name, self.dtype = name, np.dtype(_STORAGE_DTYPES[name])

  def __repr__(self):
    return f'torch.{self.name}'


class _LazyStorage(_Inert):
  """A storage's elements, filled in when the file holds them (after the legacy pickle)."""
  __slots__ = ('dtype', 'array')

  def __init__(self, dtype: np.dtype):
    self.dtype, self.array = dtype, None


def _exactly(value: Any, kind: type) -> bool:
  """Whether value is a kind itself: a subclass (bool for int, OrderedDict) is not plain."""
  return type(value) is kind  # pylint: disable=unidiomatic-typecheck


def _is_index(value: Any) -> bool:
  return _exactly(value, int) and value >= 0


class _LazyTensor(_Inert):
  """Where a tensor's elements lie in its storage; checked against it before reading."""
  __slots__ = ('storage', 'offset', 'size', 'stride')

  def __init__(self, storage, offset, size, stride):
    self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

  def materialize(self) -> np.ndarray:
    flat = self.storage.array
    if flat is None:
      raise StateDictError('a tensor whose storage the file never holds')
    if 0 in self.size:
      return np.zeros(self.size, flat.dtype)
    # Hostile offsets or strides would make as_strided read past the buffer.
    last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
    if last >= flat.size:
      raise StateDictError(f'a tensor reaches element {last} of a storage of {flat.size} '
                           '(truncated or malformed file)')
    view = np.lib.stride_tricks.as_strided(
        flat[self.offset:], shape=self.size, strides=[s * flat.itemsize for s in self.stride])
    return np.array(view)


def _rebuild_tensor(storage, storage_offset, size, stride, *unused) -> _LazyTensor:
  """Stands in for torch._utils._rebuild_tensor(_v2); checks its arguments' types."""
  if not isinstance(storage, _LazyStorage):
    raise StateDictError(f'a tensor rebuilt from a {type(storage).__name__}, not a storage')
  if not (_is_index(storage_offset) and isinstance(size, tuple) and isinstance(stride, tuple)
          and len(size) == len(stride) and all(map(_is_index, size + stride))):
    raise StateDictError('a tensor with a malformed offset, size or stride')
  return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *unused) -> _LazyTensor:
  """Stands in for torch._utils._rebuild_parameter: an nn.Parameter is its tensor."""
  if not isinstance(data, _LazyTensor):
    raise StateDictError(f'a parameter made of a {type(data).__name__}, not a tensor')
  return data


class _StandIn(_Inert):
  """What the unpickler hands out for an allowed torch function: BUILD cannot alter it."""
  __slots__ = ('_fn',)

  def __init__(self, fn: Callable[..., Any]):
    self._fn = fn

  def __call__(self, *args):
    return self._fn(*args)


def _refuse_storage(saved_id: tuple) -> None:
  raise StateDictError(f'a tensor storage {saved_id[:3]!r} outside the state_dict record')


def _python3_name(module: str, name: str) -> Tuple[str, str]:
  """Python 3's name for a global: protocol-2 pickles say __builtin__.exec for builtins.exec.

  pickle's own find_class maps these (fix_imports); ours is called with the raw
  names, and refusals should name what the file asks for as Python 3 knows it.
  """
  if (module, name) in _compat_pickle.NAME_MAPPING:
    return _compat_pickle.NAME_MAPPING[(module, name)]
  return _compat_pickle.IMPORT_MAPPING.get(module, module), name


class _Unpickler(pickle.Unpickler):
  """Admits only what a state_dict is made of; `where` names the file and record in errors."""

  _ALLOWED = {
      ('collections', 'OrderedDict'): collections.OrderedDict,
      ('torch._utils', '_rebuild_tensor_v2'): _StandIn(_rebuild_tensor),
      ('torch._utils', '_rebuild_tensor'): _StandIn(_rebuild_tensor),
      ('torch._utils', '_rebuild_parameter'): _StandIn(_rebuild_parameter),
  }

  def __init__(self, file, where: str, load_storage: Callable[[tuple], Any] = _refuse_storage):
    super().__init__(file, encoding='latin1')
    self._where, self._load_storage = where, load_storage

  def find_class(self, module, name):
    module, name = _python3_name(module, name)
    if (module, name) in self._ALLOWED:
      return self._ALLOWED[(module, name)]
    if module == 'torch' and name in _STORAGE_DTYPES:
      return _StorageType(name)
    raise StateDictError(f'{self._where}: refusing to unpickle {module}.{name}: '
                         'a state_dict holds only tensors and plain values')

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and pid and pid[0] == 'storage'):
      raise StateDictError(f'{self._where}: refusing persistent id {_short_repr(pid)}: '
                           "a state_dict's persistent ids are ('storage', ...) tuples")
    try:
      return self._load_storage(pid)
    except StateDictError as e:
      raise StateDictError(f'{self._where}: {e}') from e


def _short_repr(value: Any) -> str:
  text = repr(value)
  return text if len(text) <= 80 else text[:77] + '...'


def _check_storage_id(pid: tuple, arity: int) -> Tuple[_StorageType, str, int]:
  """(type, key, numel) of a ('storage', type, key, location, numel, ...) persistent id."""
  if not (len(pid) == arity and isinstance(pid[1], _StorageType) and isinstance(pid[2], str)
          and isinstance(pid[3], str) and _is_index(pid[4])):
    raise StateDictError(f'malformed storage id {_short_repr(pid)}')
  return pid[1], pid[2], pid[4]


def _load_zip(path: str) -> Any:
  with zipfile.ZipFile(path) as zf:
    names = zf.namelist()
    pkl = next((n for n in names if n.endswith('/data.pkl') or n == 'data.pkl'), None)
    if pkl is None:
      raise StateDictError(f'{path}: zip archive without data.pkl (not a torch.save file)')
    prefix = pkl[:-len('data.pkl')]
    if f'{prefix}byteorder' in names and zf.read(f'{prefix}byteorder').strip() != b'little':
      raise StateDictError(f'{path} was saved big-endian; re-save it on a little-endian machine')
    storages = {}

    def load_storage(pid):
      storage_type, key, numel = _check_storage_id(pid, 5)
      if key not in storages:
        data = zf.read(f'{prefix}data/{key}')
        if len(data) < numel * storage_type.dtype.itemsize:
          raise StateDictError(f'storage {key} is truncated')
        storages[key] = _LazyStorage(storage_type.dtype)
        storages[key].array = np.frombuffer(data, storage_type.dtype, count=numel)
      return storages[key]

    with zf.open(pkl) as f:
      return _Unpickler(f, f'{path} ({pkl})', load_storage).load()


def _is_plain(value: Any, depth: int = 0) -> bool:
  """Whether value is plain data: numbers, strings and small containers of them."""
  if any(_exactly(value, kind) for kind in _PLAIN_TYPES):
    return True
  if depth >= 3:
    return False
  if _exactly(value, list) or _exactly(value, tuple):
    return all(_is_plain(v, depth + 1) for v in value)
  if _exactly(value, dict):
    return all(_exactly(k, str) and _is_plain(v, depth + 1) for k, v in value.items())
  return False


def _load_legacy(path: str) -> Any:
  """The legacy format: five pickles in a row, then each storage's raw bytes."""
  storages = {}

  def load_storage(pid):
    storage_type, key, _ = _check_storage_id(pid, 6)
    if pid[5] is not None:
      raise StateDictError('storage views in legacy .pth files need torch: pip install torch')
    storage = storages.setdefault(key, _LazyStorage(storage_type.dtype))
    if storage.dtype != storage_type.dtype:
      raise StateDictError(f'storage {key} is both {storage.dtype} and {storage_type.dtype}')
    return storage

  def record(f, name, load=_refuse_storage):
    return _Unpickler(f, f'{path} ({name} record)', load).load()

  with open(path, 'rb') as f:
    magic = record(f, 'magic-number')
    if not _exactly(magic, int) or magic != _LEGACY_MAGIC:
      raise StateDictError(f'{path} is not a torch.save file (neither a zip archive nor '
                           'the legacy format\'s magic number)')
    if not _exactly(record(f, 'protocol'), int):
      raise StateDictError(f'{path}: the protocol record is not an int')
    sys_info = record(f, 'sys-info')
    if not _exactly(sys_info, dict) or not _is_plain(sys_info):
      raise StateDictError(f'{path}: the sys-info record is not a dict of plain values')
    if sys_info.get('little_endian') is False:
      raise StateDictError(f'{path} was saved big-endian; re-save it on a little-endian machine')
    obj = record(f, 'state_dict', load_storage)
    keys = record(f, 'storage-key')
    if not _exactly(keys, list) or not all(_exactly(k, str) for k in keys):
      raise StateDictError(f'{path}: the storage-key record is not a list of str')
    for key in keys:
      if key not in storages:
        raise StateDictError(f'{path}: storage key {key!r} belongs to no tensor')
      storage = storages[key]
      (numel,) = struct.unpack('<q', f.read(8))
      nbytes = numel * storage.dtype.itemsize
      data = f.read(nbytes) if numel >= 0 else b''
      if numel < 0 or len(data) != nbytes:
        raise StateDictError(f'{path} is truncated')
      storage.array = np.frombuffer(data, dtype=storage.dtype)
  return obj


def _unwrap(obj: Any) -> Any:
  """A checkpoint that nests its weights as {'state_dict': {...}} -> the weights."""
  if isinstance(obj, dict) and 'state_dict' in obj and isinstance(obj['state_dict'], dict):
    return obj['state_dict']
  return obj


def _materialize(obj: Any) -> Dict[str, np.ndarray]:
  obj = _unwrap(obj)
  if not isinstance(obj, dict):
    raise StateDictError(f'expected a state_dict (a dict of tensors), got {type(obj).__name__}')
  return {str(k): v.materialize() for k, v in obj.items() if isinstance(v, _LazyTensor)}


def _torch_refusal(error: Exception) -> str:
  """The one line of torch's multi-paragraph weights_only refusal that names the culprit."""
  text = re.sub(r'\x1b\[[0-9;]*m', '', str(error)).split('WeightsUnpickler error:', 1)[-1]
  lines = [l.strip() for l in text.splitlines()]
  reason = ' '.join(l for l in lines if l and not l.startswith(_TORCH_BOILERPLATE))
  # torch goes on to say how to allowlist the global; a weight file never needs that.
  return reason.split(' Please use `torch.serialization', 1)[0] or type(error).__name__


def _load_with_torch(path: str) -> Dict[str, np.ndarray]:
  import torch  # pylint: disable=g-import-not-at-top
  try:
    obj = torch.load(path, map_location='cpu', weights_only=True)
  except pickle.UnpicklingError as e:
    raise StateDictError(
        f'{path}: refused by torch.load(weights_only=True): {_torch_refusal(e)}') from e
  obj = _unwrap(obj)
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
  except StateDictError as e:
    if path in str(e):
      raise
    raise StateDictError(f'{path}: {e}') from e
  except Exception as e:  # Corrupt files raise many unrelated types.
    raise StateDictError(f'{path} could not be read as a PyTorch state_dict: '
                         f'{type(e).__name__}: {_one_line(e)}') from e


def _safetensors():
  """The safetensors package, imported on first use: reading .pth or .npz (and the
  benchmark, on bare accelerator images) does not need it installed."""
  import safetensors  # pylint: disable=import-outside-toplevel
  return safetensors


def _safetensors_numpy():
  import safetensors.numpy  # pylint: disable=import-outside-toplevel
  return safetensors.numpy


def read_safetensors(path: str) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
  """({key: array}, the header's metadata) of a .safetensors file."""
  try:
    with _safetensors().safe_open(path, framework='np') as f:
      metadata = dict(f.metadata() or {})
      state = {}
      for key in f.keys():
        dtype = f.get_slice(key).get_dtype()
        if dtype not in _SAFETENSORS_NUMPY_DTYPES:
          kind = ' (bfloat16)' if dtype == 'BF16' else ''
          raise StateDictError(f'{path}: tensor {key} is {dtype}{kind}, which numpy has no '
                               'type for; save the weights as float32')
        state[key] = f.get_tensor(key)
  except StateDictError:
    raise
  except Exception as e:  # safetensors raises SafetensorError, OSError, TypeError...
    raise StateDictError(f'{path} is not a readable .safetensors file: {_one_line(e)}') from e
  return state, metadata


def safetensors_metadata(path: str) -> Dict[str, str]:
  """A .safetensors file's metadata (its header only); StateDictError if it is not one."""
  try:
    with _safetensors().safe_open(path, framework='np') as f:
      return dict(f.metadata() or {})
  except Exception as e:  # pylint: disable=broad-except
    raise StateDictError(f'{path} is not a .safetensors file: {_one_line(e)}') from e


def write_safetensors(path: str, tensors: Mapping[str, np.ndarray],
                      metadata: Mapping[str, str]) -> str:
  """Writes tensors to `path` atomically (mrr_jax.outputs.write_atomically)."""
  blob = _safetensors_numpy().save({k: np.ascontiguousarray(v) for k, v in tensors.items()},
                                metadata=dict(metadata))
  return outputs.write_atomically(os.path.abspath(path), lambda f: f.write(blob))


def load_state_dict(path: str) -> Dict[str, np.ndarray]:
  """{key: array} from a .pth/.pt (torch.save), .safetensors or .npz with the same keys."""
  if not os.path.isfile(path):
    raise StateDictError(f'weights file {path} does not exist')
  if path.endswith('.npz'):
    try:
      with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}
    except Exception as e:
      raise StateDictError(f'{path} is not a readable .npz: {_one_line(e)}') from e
  if path.endswith('.safetensors'):
    return read_safetensors(path)[0]
  return load_pth(path)
