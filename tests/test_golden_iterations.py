"""Two full training iterations of each phase against the authors' code, in float64.

tests/data/golden_iterations.npz was made by the authors' PyTorch code in
float64 from the seeded weight recipe (docs/golden.md): their L1 loop with
Adam(1e-4, (0.9, 0.99)) for phase 1, and their MRRNetModel's
optimize_parameters() for phase 2 (G step, then D step on SR from the updated
G), twice on the same batch. Here the same weights go through mrr_jax's own
pmapped train steps, full-size models, and every stored item is compared:
losses, SR and D(HR) after, the spectral-norm vectors, and for every
parameter the update's norm, sum and projection on a seeded probe. float32
cannot be compared this way: Adam turns rounding-level gradients into updates
of +-lr.

The tree keeps the file small (0.65 MB): the batch is rebuilt from the recipe
(uniform_images, as the authors' run made it), SR after is stored at every 4th
pixel plus its full sum and norm, and the whole-update arrays are left out.
With ../shared/reference/golden/golden_iterations.npz present (the authors'
complete file, 4 MB), the whole SR images and the whole updates of the small
parameters are compared as well.
"""
import os

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import mrrgan, mrrnet
from mrr_jax.models import init as model_init
from mrr_jax.train import parallel, setup
from mrr_jax.train import state as state_lib
from mrr_jax.weights import export_format, torch_keys
from tests import golden_recipe
from tests.conftest import DATA_DIR, SEED, golden, nhwc, recipe_state

RTOL = 1e-9  # both phases agree to 2e-11 or better (docs/golden.md#two-training-iterations)


FULL_FILE = os.path.join(os.path.dirname(DATA_DIR), '..', '..', 'shared', 'reference', 'golden',
                         'golden_iterations.npz')


@pytest.fixture(scope='module')
def ref():
  out = golden('iterations')
  out['input'] = golden_recipe.uniform_images(SEED + 1)
  out['hr'] = golden_recipe.uniform_images(SEED + 4)
  if os.path.isfile(FULL_FILE):  # the whole arrays too (optional development data)
    full = np.load(FULL_FILE)
    out.update({k: full[k] for k in full.files if k.endswith(('/full', '/sr_after'))})
  return out


def _check_sr(sr_nhwc, ref, prefix):
  """SR after against the stored every-4th-pixel image, full sum and norm (and the whole image)."""
  sr = np.transpose(sr_nhwc, (0, 3, 1, 2))
  assert _relative_l2(sr[:, :, ::4, ::4], ref[f'{prefix}/sr_after/every4']) < RTOL
  assert abs(sr.sum() - float(ref[f'{prefix}/sr_after/sum'])) <= RTOL * np.linalg.norm(sr)
  assert abs(np.linalg.norm(sr) / float(ref[f'{prefix}/sr_after/norm']) - 1) < RTOL
  if f'{prefix}/sr_after' in ref:
    assert _relative_l2(sr, ref[f'{prefix}/sr_after']) < RTOL


def _torch_state(which, seed, gain):
  return recipe_state(which, seed, gain)


def _keys(which):
  return [k for k, _ in golden_recipe.read_keys(f'{DATA_DIR}/{which}_keys.txt')]


def _to_torch(tree, torch_key):
  """Flax params -> {the authors' state_dict key: float64 array}, convs OIHW.

  (torch_keys.generator_to_torch casts to float32, which would round the
  1e-4-sized updates of weights near 1 to 3e-4 relative.)
  """
  out = {}
  for path, v in flax.traverse_util.flatten_dict(dict(tree)).items():
    v = np.asarray(v, np.float64)
    out[torch_key(path)] = torch_keys.hwio_to_oihw(v) if v.ndim == 4 else v
  return out


def _d_torch(params, spectral=None):
  out = _to_torch(params, torch_keys.discriminator_torch_key)
  out.update(_to_torch(spectral or {}, torch_keys.discriminator_torch_key))
  return out


def _as64(tree):
  return jax.tree_util.tree_map(lambda x: np.asarray(x, np.float64), tree)


def _run(config, ref):
  """Two steps of config's phase from the recipe weights: (models, state before, after, metrics, batch)."""
  config.compute_dtype = 'float64'
  generator, discriminator = state_lib.build_models(config)
  g_params = torch_keys.generator_from_torch(
      _torch_state('G_state_dict', SEED, golden_recipe.G_CONV_GAIN),
      export_format.param_shapes(generator))
  vgg = None
  if config.phase == 'gan':
    vgg = (_as64(torch_keys.vgg19_from_torchvision(
        _torch_state('VGG19_features', SEED + 5, golden_recipe.VGG_CONV_GAIN))), 'torch')
  devices = jax.local_devices()[:1]
  run = setup.create(config, steps_per_epoch=1000, devices=devices, g_params=_as64(g_params),
                     vgg=vgg)
  state = run.state
  if config.phase == 'gan':
    abstract = model_init.abstract_variables(discriminator, train=False)
    d_params, spectral = torch_keys.discriminator_from_torch(
        _torch_state('D_state_dict', SEED + 6, golden_recipe.D_CONV_GAIN),
        torch_keys.flat_shapes(abstract['params']), torch_keys.flat_shapes(abstract['spectral']))
    state = state.replace(d_params=d_params, d_opt_state=run.d_tx.init(d_params),
                          spectral=spectral)
  state = _as64(state)
  batch = _as64({'input': nhwc(ref['input']), 'hr': nhwc(ref['hr'])})
  before = state
  state = parallel.replicate(state, devices)
  history = []
  for _ in range(int(ref['iters'])):
    state, m = run.step_fn(state, jax.tree_util.tree_map(jnp.asarray, parallel.shard(batch, 1)))
    history.append({k: float(v[0]) for k, v in m.items()})
  after = parallel.unreplicate(state)
  return run.generator, run.discriminator, before, after, history, batch


def _check_updates(ref, prefix, keys, before, after, probe_seed):
  """Every key's update (after - before): norm, sum, probe projection, whole when loaded."""
  rng = np.random.default_rng(probe_seed)
  for key in keys:
    update = after[key] - before[key]
    probe = rng.standard_normal(update.shape)
    for what, got in (('norm', np.linalg.norm(update)), ('sum', np.sum(update)),
                      ('probe', np.sum(update * probe))):
      want = float(ref[f'{prefix}/{key}/{what}'])
      # A sum or a projection on a random probe is of the order of the update's
      # norm, but can cancel to far less: compare it relative to that norm.
      scale = max(abs(want), float(ref[f'{prefix}/{key}/norm']))
      assert abs(got - want) <= RTOL * scale, f'{prefix}/{key}/{what}: {got} vs {want}'
    if f'{prefix}/{key}/full' in ref:
      # Relative L2 over the whole update: one of thousands of elements can sit
      # at a ReLU or |a - b| near-tie (docs/golden.md#near-ties).
      full = ref[f'{prefix}/{key}/full']
      err = _relative_l2(update, full) if np.any(full) else float(np.abs(update).max())
      assert err < RTOL, f'{prefix}/{key}/full: relative L2 {err}'


def _generator_updates(ref, prefix, before, after):
  g_before = _to_torch(before, torch_keys.generator_torch_key)
  g_after = _to_torch(after, torch_keys.generator_torch_key)
  keys = _keys('G_state_dict')
  assert sorted(keys) == sorted(g_after)
  _check_updates(ref, prefix, keys, g_before, g_after, SEED + 99)


def _relative_l2(got, want):
  return float(np.linalg.norm(np.asarray(got) - want) / np.linalg.norm(want))


def test_l1_phase_two_iterations(ref):
  with jax.enable_x64(True):
    generator, _, before, after, history, batch = _run(mrrnet.get_config(), ref)
    sr = np.asarray(generator.apply({'params': _as64(after.g_params)}, batch['input']))
  np.testing.assert_allclose([h['l1'] for h in history], ref['l1/losses'], rtol=RTOL)
  _check_sr(sr, ref, 'l1')
  _generator_updates(ref, 'l1/G', before.g_params, after.g_params)


def test_gan_phase_two_iterations(ref):
  with jax.enable_x64(True):
    generator, discriminator, before, after, history, batch = _run(mrrgan.get_config(), ref)
    sr = np.asarray(generator.apply({'params': _as64(after.g_params)}, batch['input']))
    d_hr = np.asarray(discriminator.apply(
        {'params': _as64(after.d_params), 'spectral': _as64(after.spectral)}, batch['hr'],
        train=False))
  got = [[h['l1'], h['g_gan'], h['g_pcp'], h['d_loss']] for h in history]
  np.testing.assert_allclose(got, ref['gan/losses'], rtol=RTOL)
  _check_sr(sr, ref, 'gan')
  assert _relative_l2(d_hr, nhwc(ref['gan/d_hr_after'])) < RTOL
  d_after = _d_torch(after.d_params, after.spectral)
  for layer in ('d1', 'd2', 'd3', 'd4'):
    for vec in ('u', 'v'):
      key = f'{layer}.0.1.weight_{vec}'
      assert _relative_l2(d_after[key], ref[f'gan/D_sn_after/{key}']) < RTOL, key
  _generator_updates(ref, 'gan/G', before.g_params, after.g_params)
  d_keys = [k for k in _keys('D_state_dict') if not k.endswith(('weight_u', 'weight_v'))]
  _check_updates(ref, 'gan/D', d_keys, _d_torch(before.d_params), _d_torch(after.d_params),
                 SEED + 98)
