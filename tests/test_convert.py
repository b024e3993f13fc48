"""Weight import: golden state_dict -> convert CLI -> load -> the golden output; bad input."""
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from mrr_jax.weights import export_format
from mrr_jax.weights import torch_io
from mrr_jax.weights import torch_keys
from mrr_jax.models import MRRNet
from mrr_jax.models import vgg as vgg_lib
from tests.conftest import golden, nhwc

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _convert(*args):
  return subprocess.run([sys.executable, '-m', 'mrr_jax.convert', *args], cwd=REPO,
                        capture_output=True, text=True, timeout=300)


def test_convert_round_trip_gives_golden_output(g_state, tmp_path):
  npz = tmp_path / 'latest_net_G.npz'
  np.savez(npz, **g_state)
  out = tmp_path / 'export'
  result = _convert('--generator', str(npz), '--output', str(out))
  assert result.returncode == 0, result.stderr
  model, params, meta = export_format.load_generator(str(out))
  assert meta['source'] == 'mrr_jax.convert'
  y = jax.jit(lambda p, x: model.apply({'params': p}, x))(params, nhwc(golden('G')['input']))
  np.testing.assert_allclose(np.asarray(y), nhwc(golden('G')['output']), atol=1e-4, rtol=0)
  # And back: the flax params map onto exactly the authors' keys and values.
  back = torch_keys.generator_to_torch(params)
  assert set(back) == set(g_state)
  for k, v in g_state.items():
    np.testing.assert_array_equal(back[k], v)


@pytest.mark.parametrize('damage,needle', [
    ('missing', 'encoder.2.conv1.conv2d.weight'),
    ('extra', 'encoder.2.bogus.weight'),
    ('shape', 'decoder.1.att_func.out_block.0.conv2d.bias'),
])
def test_convert_bad_keys_name_the_key(g_state, tmp_path, damage, needle):
  state = dict(g_state)
  if damage == 'missing':
    del state[needle]
  elif damage == 'extra':
    state[needle] = np.zeros(3, np.float32)
  else:
    state[needle] = np.zeros(2, np.float32)
  npz = tmp_path / 'g.npz'
  np.savez(npz, **state)
  out = tmp_path / 'export'
  result = _convert('--generator', str(npz), '--output', str(out))
  assert result.returncode != 0
  assert needle in result.stderr
  assert not out.exists()
  assert not [p for p in os.listdir(tmp_path) if p.startswith('.export')]


@pytest.mark.parametrize('args', [
    [],
    ['--output', 'o'],
    ['--generator', 'g.npz', '--from_export', 'e', '--output', 'o'],
    ['--from_export', 'e', '--output', 'o.safetensors', '--model_config', '{}'],
    ['--generator', 'g.npz', '--output', 'o', '--model_config', '{num_res: 6}'],
    ['--generator', 'g.npz', '--output', 'o', 'stray'],
], ids=['no-flags', 'no-input', 'both-inputs', 'config-with-export', 'bad-json', 'positional'])
def test_convert_flag_mistakes_are_one_line(tmp_path, args):
  result = subprocess.run([sys.executable, '-m', 'mrr_jax.convert', *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, 'PYTHONPATH': os.pathsep.join(
                              filter(None, [REPO, os.environ.get('PYTHONPATH')]))})
  assert result.returncode == 1
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith('error: '), result.stderr
  assert os.listdir(tmp_path) == []


def test_convert_missing_file(tmp_path):
  result = _convert('--generator', str(tmp_path / 'nope.pth'), '--output', str(tmp_path / 'o'))
  assert result.returncode != 0
  assert 'nope.pth does not exist' in result.stderr
  assert not (tmp_path / 'o').exists()


def test_load_generator_errors(tmp_path):
  with pytest.raises(export_format.ExportError, match='does not exist'):
    export_format.load_generator(str(tmp_path / 'missing'))
  (tmp_path / 'empty').mkdir()
  with pytest.raises(export_format.ExportError, match='model.json is missing'):
    export_format.load_generator(str(tmp_path / 'empty'))


def test_export_rejects_params_of_another_architecture(tmp_path):
  tiny = MRRNet(base_channels=8, max_channels=16, num_res=1)
  params = tiny.init(jax.random.PRNGKey(0), np.zeros((1, 128, 128, 3), np.float32))['params']
  with pytest.raises(export_format.ExportError, match='missing res_layers_1'):
    export_format.save_generator(str(tmp_path / 'x'), MRRNet(base_channels=8, max_channels=16, num_res=2),
                            params)
  assert not (tmp_path / 'x').exists()


def _fake_keras_layers(vgg_state):
  layers = {}
  for name, idx in vgg_lib.torchvision_feature_indices():
    layers[torch_keys.keras_vgg19_layer(name)] = [
        torch_keys.oihw_to_hwio(vgg_state[f'features.{idx}.weight']), vgg_state[f'features.{idx}.bias']]
  return layers


def test_vgg_from_torchvision_ignores_classifier_and_matches_keras(vgg_state):
  full = dict(vgg_state)
  full['classifier.0.weight'] = np.zeros((4, 4), np.float32)
  p_torch = torch_keys.vgg19_from_torchvision(full)
  p_keras = torch_keys.vgg19_from_keras(_fake_keras_layers(vgg_state))
  for a, b in zip(jax.tree_util.tree_leaves(p_torch), jax.tree_util.tree_leaves(p_keras)):
    np.testing.assert_array_equal(a, b)
  broken = dict(vgg_state)
  del broken['features.34.bias']
  with pytest.raises(torch_keys.WeightsError, match='features.34.bias'):
    torch_keys.vgg19_from_torchvision(broken)


def test_keras_h5_reader(vgg_state, tmp_path):
  h5py = pytest.importorskip('h5py')
  from mrr_jax.weights import vgg19
  path = tmp_path / 'vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5'
  # The Keras 2 layout of the notop file: a group per layer, weight_names attrs.
  with h5py.File(path, 'w') as f:
    layers = _fake_keras_layers(vgg_state)
    f.attrs['layer_names'] = [n.encode() for n in ['input_1'] + list(layers)]
    f.create_group('input_1').attrs['weight_names'] = []
    for name, (kernel, bias) in layers.items():
      g = f.create_group(name)
      g.attrs['weight_names'] = [f'{name}/kernel:0'.encode(), f'{name}/bias:0'.encode()]
      g.create_dataset(f'{name}/kernel:0', data=kernel)
      g.create_dataset(f'{name}/bias:0', data=bias)
  params, mode = vgg19.load_vgg19(str(path))
  assert mode == 'caffe'
  ref = torch_keys.vgg19_from_torchvision(vgg_state)
  np.testing.assert_array_equal(params['conv5_4']['kernel'], ref['conv5_4']['kernel'])


def test_vgg_missing_file_says_where_to_get_it(tmp_path):
  from mrr_jax.weights import vgg19
  with pytest.raises(vgg19.VGGWeightsError, match='vgg19-dcbb9e9d.pth'):
    vgg19.load_vgg19(str(tmp_path / 'vgg19-dcbb9e9d.pth'))
  with pytest.raises(vgg19.VGGWeightsError, match='vgg_weights'):
    vgg19.load_vgg19('')


@pytest.mark.parametrize('legacy', [False, True])
def test_pth_reader_without_torch_matches_torch(tmp_path, legacy):
  """Optional: needs torch to write the file; the reader itself never imports torch."""
  th = pytest.importorskip('torch', reason='torch not installed (optional conversion test)')
  state = {'a.weight': th.randn(4, 3, 3, 3), 'a.bias': th.arange(4, dtype=th.float32),
           'b.weight_u': th.randn(7).double(), 'steps': th.tensor(3)}
  state['t.weight'] = th.randn(5, 6).t()  # non-contiguous: strides matter
  path = tmp_path / 'w.pth'
  th.save(state, path, _use_new_zipfile_serialization=not legacy)
  got = torch_io.load_pth(str(path), use_torch=False)
  assert set(got) == set(state)
  for k, v in state.items():
    np.testing.assert_array_equal(got[k], v.numpy())
    assert got[k].dtype == v.numpy().dtype
