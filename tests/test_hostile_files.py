"""Weight files that try to run code are refused, by every reader and entry point.

Each hostile file carries a payload that, if unpickled by plain pickle, would
create a sentinel file (test_payloads_run_under_plain_pickle shows they do);
every test asserts the sentinel does not appear and that the error names what
was refused. Also: files torch.save writes at test time (where torch is
installed) load alike with and without torch, and .safetensors round trips
through mrr_jax.convert.
"""
import builtins
import collections
import io
import json
import os
import pickle
import shlex
import subprocess
import sys
import zipfile

import jax
import numpy as np
import pytest
import safetensors
import safetensors.numpy

from mrr_jax.weights import export_format
from mrr_jax.weights import torch_io
from mrr_jax.weights import vgg19
from mrr_jax.weights import torch_keys
from mrr_jax.models import MRRNet

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
SYS_INFO = {'protocol_version': 1001, 'little_endian': True,
            'type_sizes': {'short': 2, 'int': 4, 'long': 4}}


def _torch_or_skip():
  return pytest.importorskip(
      'torch', reason='torch is not installed: the torch.load(weights_only=True) path is '
      'tested only where it is (CI tests the torch-free reader)')


# ----------------------------------------------------------------------------
# Forging pickles: references to torch's globals without importing torch, and
# persistent ids, so the files need no torch to write.
# ----------------------------------------------------------------------------
class _Global:
  """Pickles as a reference to module.name (GLOBAL opcode); never called here."""

  def __init__(self, module, name):
    self.module, self.name = module, name

  def __call__(self, *args):
    raise AssertionError('a forged global is only pickled')


class _Call:
  """Pickles as a call of `func` on `args` (REDUCE), as a __reduce__ payload does."""

  def __init__(self, func, *args):
    self.func, self.args = func, args

  def __reduce__(self):
    return self.func, self.args


class _Pid:
  """Pickles as the persistent id `pid` (BINPERSID), as torch.save writes a storage."""

  def __init__(self, pid):
    self.pid = pid


class _Forger(pickle._Pickler):  # pylint: disable=protected-access
  """The pure-Python pickler, writing _Global as GLOBAL and _Pid as persistent ids."""

  def persistent_id(self, obj):
    return obj.pid if isinstance(obj, _Pid) else None

  def save(self, obj, save_persistent_id=True):
    if isinstance(obj, _Global):
      self.write(pickle.GLOBAL + f'{obj.module}\n{obj.name}\n'.encode())
      return
    super().save(obj, save_persistent_id)


def _dumps(obj) -> bytes:
  buf = io.BytesIO()
  _Forger(buf, protocol=2).dump(obj)  # torch.save's protocol
  return buf.getvalue()


class _System:
  """A payload as attackers write it: unpickling it runs `touch SENTINEL` in a shell."""

  def __init__(self, sentinel):
    self.sentinel = str(sentinel)

  def __reduce__(self):
    return os.system, (f'touch {shlex.quote(self.sentinel)}',)


class _Exec(_System):
  """A payload that runs Python source: unpickling it creates SENTINEL."""

  def __reduce__(self):
    return builtins.exec, (f'open({self.sentinel!r}, "w").close()',)


def _payload(kind, sentinel):
  """(object whose unpickling creates `sentinel`, the module.name a reader must refuse)."""
  if kind == 'system':
    return _System(sentinel), f'{os.system.__module__}.system'  # posix.system on Linux
  return _Exec(sentinel), 'builtins.exec'


def _storage_pid(storage_type, key='0', numel=4, legacy=False):
  pid = ('storage', storage_type, key, 'cpu', numel)
  return _Pid(pid + (None,) if legacy else pid)


def _tensor(pid, size=(4,), stride=(1,)):
  return _Call(_Global('torch._utils', '_rebuild_tensor_v2'), pid, 0, size, stride, False,
               collections.OrderedDict())


def _legacy_file(records, storages=b'') -> bytes:
  """The legacy torch.save layout: five pickles (magic, protocol, sys info, object, keys)."""
  return b''.join(r if isinstance(r, bytes) else _dumps(r) for r in records) + storages


def _legacy(state=None, magic=LEGACY_MAGIC, protocol=1001, sys_info=None, keys=()) -> bytes:
  state = collections.OrderedDict() if state is None else state
  return _legacy_file([magic, protocol, SYS_INFO if sys_info is None else sys_info, state,
                       list(keys)])


def _zip(data_pkl: bytes, entries=()) -> bytes:
  """A zip laid out as torch.save writes it (uncompressed, under one archive folder)."""
  buf = io.BytesIO()
  with zipfile.ZipFile(buf, 'w') as zf:
    zf.writestr('archive/data.pkl', data_pkl)
    zf.writestr('archive/byteorder', 'little')
    zf.writestr('archive/version', '3\n')
    for name, data in entries:
      zf.writestr(f'archive/data/{name}', data)
  return buf.getvalue()


FLOAT = _Global('torch', 'FloatStorage')

# Where the payload sits -> (the file's bytes as a function of it, where the error says it was).
HOSTILE = {
    'legacy magic-number record': (lambda p: _legacy(magic=p), '(magic-number record)'),
    'legacy protocol record': (lambda p: _legacy(protocol=p), '(protocol record)'),
    'legacy sys-info record': (lambda p: _legacy(sys_info=p), '(sys-info record)'),
    'legacy state_dict record': (lambda p: _legacy(state=p), '(state_dict record)'),
    'legacy OrderedDict value': (
        lambda p: _legacy(state=collections.OrderedDict([('conv.weight', p)])),
        '(state_dict record)'),
    'legacy storage-key record': (
        lambda p: _legacy_file([LEGACY_MAGIC, 1001, SYS_INFO, collections.OrderedDict(), p]),
        '(storage-key record)'),
    'legacy persistent id': (lambda p: _legacy(state={'w': _tensor(_Pid(p))}),
                             '(state_dict record)'),
    'legacy storage type in a persistent id': (
        lambda p: _legacy(state={'w': _tensor(_storage_pid(p, legacy=True))}),
        '(state_dict record)'),
    'zip data.pkl': (lambda p: _zip(_dumps(p)), '(archive/data.pkl)'),
    'zip OrderedDict value': (
        lambda p: _zip(_dumps(collections.OrderedDict(
            [('conv.bias', _tensor(_storage_pid(FLOAT))), ('conv.weight', p)])),
                       [('0', np.zeros(4, np.float32).tobytes())]),
        '(archive/data.pkl)'),
    'zip persistent id': (lambda p: _zip(_dumps({'w': _tensor(_Pid(p))})), '(archive/data.pkl)'),
}
# The payloads alternate so both kinds meet every reader.
CASES = [(where, 'system' if i % 2 else 'exec') for i, where in enumerate(HOSTILE)]


def _hostile_file(tmp_path, where, kind):
  """(path of the hostile .pth, sentinel its payload would create, module.name to refuse)."""
  sentinel = tmp_path / 'SENTINEL'
  payload, refused = _payload(kind, sentinel)
  path = tmp_path / 'evil.pth'
  path.write_bytes(HOSTILE[where][0](payload))
  return str(path), sentinel, refused


@pytest.mark.parametrize('kind', ['system', 'exec'])
def test_payloads_run_under_plain_pickle(tmp_path, kind):
  """The payloads are real: plain pickle runs them (so the tests below mean something)."""
  sentinel = tmp_path / 'SENTINEL'
  payload, _ = _payload(kind, sentinel)
  pickle.loads(_dumps(collections.OrderedDict([('w', payload)])))
  assert sentinel.exists()


@pytest.mark.parametrize('where,kind', CASES)
def test_torch_free_reader_refuses_code(tmp_path, where, kind):
  path, sentinel, refused = _hostile_file(tmp_path, where, kind)
  with pytest.raises(torch_io.StateDictError) as e:
    torch_io.load_pth(path, use_torch=False)
  assert not sentinel.exists()
  message = str(e.value)
  assert f'refusing to unpickle {refused}' in message
  assert message.startswith(f'{path} {HOSTILE[where][1]}: ')  # which file, which record
  assert '\n' not in message


@pytest.mark.parametrize('where,kind', CASES)
def test_load_state_dict_and_vgg19_refuse_code(tmp_path, where, kind):
  path, sentinel, refused = _hostile_file(tmp_path, where, kind)
  name = refused.split('.')[-1]  # torch.load, when installed, says 'exec' for builtins.exec
  with pytest.raises(torch_io.StateDictError, match=name):
    torch_io.load_state_dict(path)
  with pytest.raises(vgg19.VGGWeightsError, match=name):
    vgg19.load_vgg19(path)
  assert not sentinel.exists()


def _convert(*args):
  return subprocess.run([sys.executable, '-m', 'mrr_jax.convert', *args], cwd=REPO,
                        capture_output=True, text=True, timeout=300)


def _assert_one_line_error(result, *needles):
  assert result.returncode == 1, result.stderr
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith('error: '), result.stderr
  for needle in needles:
    assert needle in lines[0]


@pytest.mark.parametrize('where,kind', CASES)
def test_convert_cli_refuses_code(tmp_path, where, kind):
  path, sentinel, refused = _hostile_file(tmp_path, where, kind)
  out = tmp_path / 'out'
  result = _convert('--generator', path, '--output', str(out))
  _assert_one_line_error(result, refused.split('.')[-1], path)
  assert not sentinel.exists()
  assert not out.exists()
  assert sorted(os.listdir(tmp_path)) == ['evil.pth']  # no half-written export either


@pytest.mark.parametrize('where,kind', CASES)
def test_torch_load_refuses_code(tmp_path, where, kind):
  _torch_or_skip()
  path, sentinel, refused = _hostile_file(tmp_path, where, kind)
  with pytest.raises(torch_io.StateDictError) as e:
    torch_io.load_pth(path, use_torch=True)
  assert not sentinel.exists()
  message = str(e.value)
  assert path in message and 'weights_only' in message and '\n' not in message
  assert f'GLOBAL {refused}' in message or f'GLOBAL {refused.split(".")[-1]} ' in message


@pytest.mark.parametrize('data', [
    _legacy(state={'w': _tensor(_Pid(('module', 'os', 'system')))}),
    _zip(_dumps({'w': _tensor(_Pid(('module', 'os', 'system')))})),
    _zip(_dumps({'w': _tensor(_Pid('storage'))})),
], ids=['legacy', 'zip', 'zip-bare-string'])
def test_unexpected_persistent_ids_are_refused(tmp_path, data):
  path = tmp_path / 'w.pth'
  path.write_bytes(data)
  with pytest.raises(torch_io.StateDictError, match='refusing persistent id'):
    torch_io.load_pth(str(path), use_torch=False)


@pytest.mark.parametrize('data,needle', [
    (_legacy(magic=collections.OrderedDict()), 'not a torch.save file'),
    (_legacy(protocol='1001'), 'protocol record is not an int'),
    (_legacy(sys_info=[1, 2]), 'sys-info record is not a dict of plain values'),
    (_legacy(sys_info={'x': collections.OrderedDict()}), 'sys-info record is not a dict'),
    (_legacy(sys_info={'little_endian': False}), 'big-endian'),
    (_legacy(keys=[0]), 'storage-key record is not a list of str'),
    (_legacy_file([LEGACY_MAGIC, 1001, SYS_INFO, {}, ('0',)]), 'storage-key record'),
    (_legacy(keys=['7']), "storage key '7' belongs to no tensor"),
    (_legacy_file([LEGACY_MAGIC, _tensor(_storage_pid(FLOAT, legacy=True))]),
     'outside the state_dict record'),
], ids=['magic-odict', 'protocol-str', 'sys-info-list', 'sys-info-odict',
        'big-endian', 'keys-int', 'keys-tuple', 'keys-unknown', 'storage-in-protocol'])
def test_legacy_records_must_be_plain_values(tmp_path, data, needle):
  path = tmp_path / 'w.pth'
  path.write_bytes(data)
  with pytest.raises(torch_io.StateDictError, match=needle):
    torch_io.load_pth(str(path), use_torch=False)


def test_tensor_outside_its_storage_is_refused(tmp_path):
  """Hostile sizes or strides must not make the reader read past a storage's bytes."""
  state = {'w': _tensor(_storage_pid(FLOAT, numel=4, legacy=True), size=(2, 2), stride=(1000, 1))}
  raw = np.int64(4).tobytes() + np.zeros(4, np.float32).tobytes()
  path = tmp_path / 'w.pth'
  path.write_bytes(_legacy_file([LEGACY_MAGIC, 1001, SYS_INFO, state, ['0']], raw))
  with pytest.raises(torch_io.StateDictError, match='reaches element 1001 of a storage of 4'):
    torch_io.load_pth(str(path), use_torch=False)
  state['w'] = _tensor(_storage_pid(FLOAT, numel=4, legacy=True), size=(2,), stride=(-1,))
  path.write_bytes(_legacy_file([LEGACY_MAGIC, 1001, SYS_INFO, state, ['0']], raw))
  with pytest.raises(torch_io.StateDictError, match='malformed offset, size or stride'):
    torch_io.load_pth(str(path), use_torch=False)


def test_forged_legacy_file_reads_like_torch_would(tmp_path):
  """The forger writes the real layout: a benign forged file reads (guards the tests above)."""
  values = np.arange(4, dtype=np.float32)
  state = collections.OrderedDict([('w', _tensor(_storage_pid(FLOAT, legacy=True)))])
  path = tmp_path / 'w.pth'
  path.write_bytes(_legacy_file([LEGACY_MAGIC, 1001, SYS_INFO, state, ['0']],
                                np.int64(4).tobytes() + values.tobytes()))
  np.testing.assert_array_equal(torch_io.load_pth(str(path), use_torch=False)['w'], values)


# ----------------------------------------------------------------------------
# Files torch itself writes, made at test time (no weight files in the tree):
# a tiny made-up state_dict in both of torch.save's formats, read back by the
# torch-free reader and by torch.load(weights_only=True).
# ----------------------------------------------------------------------------
@pytest.fixture(scope='module')
def torch_written(tmp_path_factory):
  """({format: path}, {key: expected array}) of files torch.save wrote just now."""
  torch = _torch_or_skip()
  root = tmp_path_factory.mktemp('torch_written')
  torch.manual_seed(0)
  state = collections.OrderedDict()
  state['conv.weight'] = torch.randn(4, 3, 3, 3)                # float32, 4-D (OIHW)
  state['conv.bias'] = torch.arange(4, dtype=torch.float32)
  state['proj.weight_t'] = torch.randn(5, 6).t()                # non-contiguous: strides matter
  state['norm.weight_u'] = torch.randn(7, dtype=torch.float64)  # float64
  state['steps'] = torch.tensor(3)                              # int64 scalar (0-d)
  paths = {'legacy': str(root / 'legacy.pth'), 'zip': str(root / 'zip.pth')}
  torch.save(state, paths['legacy'], _use_new_zipfile_serialization=False)
  torch.save(state, paths['zip'])
  return paths, {k: v.numpy() for k, v in state.items()}


def _assert_matches_expected(got, expected):
  assert sorted(got) == sorted(expected)
  for key, want in expected.items():
    np.testing.assert_array_equal(got[key], want)
    assert got[key].dtype == want.dtype and got[key].shape == want.shape


@pytest.mark.parametrize('fmt', ['legacy', 'zip'])
@pytest.mark.parametrize('use_torch', [False, True])
def test_torch_written_files_load_with_and_without_torch(torch_written, fmt, use_torch):
  paths, expected = torch_written
  _assert_matches_expected(torch_io.load_pth(paths[fmt], use_torch=use_torch), expected)


# ----------------------------------------------------------------------------
# .safetensors in and out.
# ----------------------------------------------------------------------------
@pytest.fixture(scope='module')
def authors_export(g_state, tmp_path_factory):
  """An export of the default MRRNet holding the golden authors' weights."""
  model = MRRNet()
  params = torch_keys.generator_from_torch(g_state, export_format.param_shapes(model))
  path = str(tmp_path_factory.mktemp('authors') / 'export')
  return export_format.save_generator(path, model, params, metadata={'source': 'test'})


def _assert_same_params(a, b):
  flat_a, flat_b = (jax.tree_util.tree_flatten_with_path(p)[0] for p in (a, b))
  assert [k for k, _ in flat_a] == [k for k, _ in flat_b]
  for (_, x), (_, y) in zip(flat_a, flat_b):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_safetensors_round_trip(authors_export, g_state, tmp_path):
  st = tmp_path / 'G.safetensors'
  result = _convert('--from_export', authors_export, '--output', str(st))
  assert result.returncode == 0, result.stderr
  # What a PyTorch user gets: the authors' keys and OIHW values, bit for bit.
  tensors = safetensors.numpy.load_file(str(st))
  assert set(tensors) == set(g_state)
  for key, value in g_state.items():
    np.testing.assert_array_equal(tensors[key], value)
  with safetensors.safe_open(str(st), 'np') as f:
    config = json.loads(f.metadata()['mrr_jax.model_config'])
  assert config == export_format.model_config(MRRNet())
  back = tmp_path / 'back'
  result = _convert('--generator', str(st), '--output', str(back))
  assert result.returncode == 0, result.stderr
  _, params, meta = export_format.load_generator(str(back))
  _assert_same_params(params, export_format.load_generator(authors_export)[1])
  assert meta['weights'] == str(st)


def test_safetensors_round_trip_keeps_a_non_default_config(tmp_path):
  model = MRRNet(base_channels=8, max_channels=16, num_res=1)
  params = model.init(jax.random.PRNGKey(3), np.zeros((1, 128, 128, 3), np.float32))['params']
  src = export_format.save_generator(str(tmp_path / 'tiny'), model, params)
  st = tmp_path / 'tiny.safetensors'
  assert _convert('--from_export', src, '--output', str(st)).returncode == 0
  result = _convert('--generator', str(st), '--output', str(tmp_path / 'back'))
  assert result.returncode == 0, result.stderr  # no --model_config: the file names it
  back_model, back_params, _ = export_format.load_generator(str(tmp_path / 'back'))
  assert export_format.model_config(back_model) == export_format.model_config(model)
  _assert_same_params(back_params, params)


def _bfloat16_file(path):
  header = json.dumps({'w': {'dtype': 'BF16', 'shape': [2], 'data_offsets': [0, 4]}}).encode()
  path.write_bytes(np.uint64(len(header)).tobytes() + header + bytes(4))


def test_bfloat16_and_truncated_safetensors_are_one_clear_error(tmp_path):
  bf16 = tmp_path / 'bf16.safetensors'
  _bfloat16_file(bf16)
  with pytest.raises(torch_io.StateDictError) as e:
    torch_io.load_state_dict(str(bf16))
  assert str(e.value) == (f'{bf16}: tensor w is BF16 (bfloat16), which numpy has no type for; '
                          'save the weights as float32')
  good = tmp_path / 'good.safetensors'
  safetensors.numpy.save_file({'w': np.arange(8, dtype=np.float32)}, str(good))
  cut = tmp_path / 'cut.safetensors'
  cut.write_bytes(good.read_bytes()[:-3])
  with pytest.raises(torch_io.StateDictError, match='cut.safetensors is not a readable '
                     '.safetensors file: .*incomplete'):
    torch_io.load_state_dict(str(cut))
  result = _convert('--generator', str(cut), '--output', str(tmp_path / 'out'))
  _assert_one_line_error(result, str(cut))
  assert not (tmp_path / 'out').exists()
  with pytest.raises(vgg19.VGGWeightsError, match='BF16'):
    vgg19.load_vgg19(str(bf16))


def test_safetensors_output_is_refused_unless_it_is_replaceable(authors_export, g_state, tmp_path):
  st = tmp_path / 'G.safetensors'
  st.write_bytes(b'my notes, not weights')
  result = _convert('--from_export', authors_export, '--output', str(st))
  _assert_one_line_error(result, 'already exists', '--overwrite')
  result = _convert('--from_export', authors_export, '--output', str(st), '--overwrite')
  _assert_one_line_error(result, f'{st} is a file that is not safetensors; --overwrite replaces '
                         'only a safetensors file')
  assert st.read_bytes() == b'my notes, not weights'
  folder = tmp_path / 'F.safetensors'
  folder.mkdir()
  result = _convert('--from_export', authors_export, '--output', str(folder), '--overwrite')
  _assert_one_line_error(result, f'{folder} is a directory')
  result = _convert('--from_export', authors_export, '--output', str(tmp_path / 'G.pth'))
  _assert_one_line_error(result, 'name it *.safetensors')
  # An existing safetensors file is replaced, atomically: no temporary file is left.
  old = tmp_path / 'old.safetensors'
  safetensors.numpy.save_file({'w': np.zeros(1, np.float32)}, str(old))
  result = _convert('--from_export', authors_export, '--output', str(old), '--overwrite')
  assert result.returncode == 0, result.stderr
  assert set(safetensors.numpy.load_file(str(old))) == set(g_state)
  assert sorted(os.listdir(tmp_path)) == ['F.safetensors', 'G.safetensors', 'old.safetensors']


def test_from_export_of_a_missing_export_writes_nothing(tmp_path):
  result = _convert('--from_export', str(tmp_path / 'nope'), '--output',
                    str(tmp_path / 'G.safetensors'))
  _assert_one_line_error(result, 'does not exist')
  assert os.listdir(tmp_path) == []


def test_safetensors_feeds_vgg19_and_lpips(vgg_state, tmp_path):
  """The perceptual-loss and LPIPS weights read from .safetensors like from .npz."""
  from mrr_jax.evaluation import lpips  # pylint: disable=g-import-not-at-top
  st = tmp_path / 'vgg19.safetensors'
  safetensors.numpy.save_file(vgg_state, str(st))
  params, mode = vgg19.load_vgg19(str(st))
  assert mode == 'torch'
  _assert_same_params(params, torch_keys.vgg19_from_torchvision(vgg_state))
  alex = {0: (64, 3, 11), 3: (192, 64, 5), 6: (384, 192, 3), 8: (256, 384, 3), 10: (256, 256, 3)}
  backbone = {}
  for i, (o, c, k) in alex.items():
    backbone[f'features.{i}.weight'] = np.full((o, c, k, k), 0.01, np.float32)
    backbone[f'features.{i}.bias'] = np.zeros(o, np.float32)
  linear = {f'lin{j}.model.1.weight': np.ones((1, o, 1, 1), np.float32)
            for j, (o, _, _) in enumerate(alex.values())}
  safetensors.numpy.save_file(backbone, str(tmp_path / 'alex_backbone.safetensors'))
  safetensors.numpy.save_file(linear, str(tmp_path / 'alex_lin.safetensors'))
  net, lp = lpips.load(str(tmp_path / 'alex_backbone.safetensors'),
                       str(tmp_path / 'alex_lin.safetensors'))
  assert net == 'alex'
  np.testing.assert_array_equal(lp['convs']['3']['kernel'],
                                backbone['features.3.weight'].transpose(2, 3, 1, 0))
