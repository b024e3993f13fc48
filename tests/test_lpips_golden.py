"""mrr_jax.lpips against the `lpips` package (0.1.4) on seeded backbones.

tests/data/golden_lpips.npz holds `lpips.LPIPS(net=NET, pretrained=True)`'s
distances for three image pairs. The package's own v0.1 linear heads are stored
in the file; the backbone convs were overwritten with the golden weight recipe
(make_state(NET/backbone_keys, seed + i, conv_gain=1.0), i = 0 alex, 1 vgg), so
the test rebuilds them here instead of storing ~60 MB of weights. The weights
go through lpips.load (files on disk -> torch_io -> the param builder), the
path evaluate's --lpips_backbone/--lpips_linear take.
"""
import numpy as np
import pytest

from mrr_jax.evaluation import lpips
from tests import golden_recipe
from tests.conftest import golden, nhwc

SEED_OFFSET = {'alex': 0, 'vgg': 1}


def _backbone_keys(data, net):
  """[(key, shape)] in state_dict order, as stored: shapes are 'd0,d1,...' strings."""
  return [(str(k), tuple(int(d) for d in str(s).split(',')))
          for k, s in zip(data[f'{net}/backbone_keys'], data[f'{net}/backbone_shapes'])]


def _write_weights(tmp_path, data, net):
  """Writes NET's rebuilt backbone and stored heads as .npz state dicts; returns both paths."""
  seed = int(data['seed']) + SEED_OFFSET[net]
  backbone = golden_recipe.make_state(_backbone_keys(data, net), seed, conv_gain=1.0)
  prefix = f'{net}/linear/'
  linear = {k[len(prefix):]: v for k, v in data.items() if k.startswith(prefix)}
  backbone_path, linear_path = tmp_path / f'{net}_backbone.npz', tmp_path / f'{net}_linear.npz'
  np.savez(backbone_path, **backbone)
  np.savez(linear_path, **linear)
  return str(backbone_path), str(linear_path)


@pytest.mark.parametrize('net', ['alex', 'vgg'])
def test_lpips_matches_the_lpips_package(tmp_path, net):
  data = golden('lpips')
  assert sorted(k for k in data if k.startswith(f'{net}/linear/')) == [
      f'{net}/linear/lin{k}.model.1.weight' for k in range(5)]
  found, params = lpips.load(*_write_weights(tmp_path, data, net))
  assert found == net  # chosen by the first conv's kernel size, not by the file name
  got = np.asarray(lpips.distance(found, params, nhwc(data['x']), nhwc(data['y'])))
  want = data[f'{net}/distance']
  assert got.shape == want.shape == (3,)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=0)


def test_golden_inputs_are_the_recipe():
  """x and y are the recipe's uniform images, so the stored pairs are the ones described."""
  data = golden('lpips')
  seed = int(data['seed'])
  np.testing.assert_array_equal(data['x'], golden_recipe.uniform_images(seed + 2, (3, 3, 64, 64)))
  np.testing.assert_array_equal(data['y'], golden_recipe.uniform_images(seed + 3, (3, 3, 64, 64)))
