"""Parity with the authors' PyTorch code on the golden vectors (docs/golden.md)."""
import hashlib
import json
import os

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mrr_jax.weights import export_format
from mrr_jax.train import losses
from mrr_jax.weights import torch_keys
from mrr_jax.models import Discriminator, MRRNet, VGG19Features
from mrr_jax.models import vgg as vgg_lib
from tests.conftest import DATA_DIR, golden, nhwc


def _sha(state):
  h = hashlib.sha256()
  for v in state.values():
    h.update(np.ascontiguousarray(v, '<f4').tobytes())
  return h.hexdigest()


def test_recipe_reproduces_authors_weights(g_state, d_state, vgg_state):
  info = json.load(open(os.path.join(DATA_DIR, 'golden_info.json')))
  assert _sha(g_state) == info['G_state_sha256']
  assert _sha(d_state) == info['D_state_sha256']
  assert _sha(vgg_state) == info['VGG_state_sha256']


@pytest.fixture(scope='module')
def g_run(g_state):
  model = MRRNet()
  params = torch_keys.generator_from_torch(g_state, export_format.param_shapes(model))
  x = nhwc(golden('G')['input'])
  out, state = jax.jit(lambda p, x: model.apply(
      {'params': p}, x, capture_intermediates=True, mutable=['intermediates']))(params, x)
  return out, state['intermediates']


def test_generator_output(g_run):
  ref = golden('G')
  np.testing.assert_allclose(np.asarray(g_run[0]), nhwc(ref['output']), atol=1e-4, rtol=0)


def test_generator_intermediates_and_attention(g_run):
  ref = golden('G')
  inter = g_run[1]
  checks = {
      'act_encoder_0': inter['encoder_0']['__call__'][0][..., :4],
      'act_res_layers': inter['res_layers_9']['__call__'][0],
      'act_decoder_0': inter['decoder_0']['__call__'][0][..., :32],
      'att_map_encoder_1': inter['encoder_1']['att_map'][0],
      'att_map_decoder_2': inter['decoder_2']['att_map'][0],
  }
  for key, got in checks.items():
    np.testing.assert_allclose(np.asarray(got), nhwc(ref[key]), atol=1e-4, rtol=0, err_msg=key)


def test_parameter_counts():
  g_count = sum(int(np.prod(s)) for s in export_format.param_shapes(MRRNet()).values())
  d_vars = jax.eval_shape(Discriminator().init, jax.random.PRNGKey(0), jnp.zeros((1, 128, 128, 3)))
  d_count = sum(int(np.prod(v.shape)) for v in jax.tree_util.tree_leaves(d_vars['params']))
  assert g_count == 9_130_771
  assert d_count == 390_720


def _discriminator(d_state):
  model = Discriminator()
  abstract = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 128, 128, 3)))
  params, spectral = torch_keys.discriminator_from_torch(
      d_state, torch_keys.flat_shapes(abstract['params']), torch_keys.flat_shapes(abstract['spectral']))
  return model, params, spectral


def test_discriminator_spectral_norm_protocol(d_state):
  ref = golden('D')
  model, params, spectral = _discriminator(d_state)
  x = nhwc(ref['input'])
  out_eval_initial = model.apply({'params': params, 'spectral': spectral}, x, train=False)
  # Random recipe u, v make sigma tiny or negative: the eval output saturates at +-1.
  np.testing.assert_array_equal(np.sign(out_eval_initial), np.sign(nhwc(ref['output_eval_initial'])))
  np.testing.assert_array_equal(np.abs(nhwc(ref['output_eval_initial'])), 1.0)

  out_train, updated = model.apply({'params': params, 'spectral': spectral}, x, train=True,
                                   mutable=['spectral'])
  np.testing.assert_allclose(out_train, nhwc(ref['output_train']), atol=1e-5, rtol=0)
  for layer in ('d1', 'd2', 'd3', 'd4'):
    torch_layer = f'{layer}.0.1'
    np.testing.assert_allclose(updated['spectral'][layer]['u'], ref[f'u_after/{torch_layer}'],
                               atol=1e-5, rtol=0)
    np.testing.assert_allclose(updated['spectral'][layer]['v'], ref[f'v_after/{torch_layer}'],
                               atol=1e-5, rtol=0)
    kernel = params[layer]['kernel']
    w_mat = np.transpose(kernel, (3, 2, 0, 1)).reshape(kernel.shape[-1], -1)
    sigma = updated['spectral'][layer]['u'] @ w_mat @ updated['spectral'][layer]['v']
    np.testing.assert_allclose(sigma, ref[f'sigma/{torch_layer}'], rtol=1e-5)

  out_eval = model.apply({'params': params, 'spectral': updated['spectral']}, x, train=False)
  np.testing.assert_allclose(out_eval, nhwc(ref['output_eval']), atol=1e-5, rtol=0)
  # Eval mode must not iterate: the stored vectors stay as they were.
  _, again = model.apply({'params': params, 'spectral': updated['spectral']}, x, train=False,
                         mutable=['spectral'])
  for layer in ('d1', 'd2', 'd3', 'd4'):
    np.testing.assert_array_equal(again['spectral'][layer]['u'], updated['spectral'][layer]['u'])


def test_rahinge_and_l1():
  ref = golden('losses')
  real, fake = nhwc(ref['real_pred']), nhwc(ref['fake_pred'])
  np.testing.assert_allclose(losses.rahinge_d_loss(real, fake), ref['rahinge_D'], rtol=1e-6)
  np.testing.assert_allclose(losses.rahinge_g_loss(real, fake), ref['rahinge_G'], rtol=1e-6)
  np.testing.assert_allclose(losses.rahinge_d_loss(real, fake, halved=False),
                             2 * ref['rahinge_D'], rtol=1e-6)
  np.testing.assert_allclose(losses.l1_loss(nhwc(ref['sr']), nhwc(ref['hr'])), ref['l1_sr_hr'],
                             rtol=1e-6)


@pytest.fixture(scope='module')
def vgg_params(vgg_state):
  return torch_keys.vgg19_from_torchvision(vgg_state)


def _pcp(params, post_relu=True):
  model = VGG19Features(post_relu_taps=post_relu)
  apply = lambda x: model.apply({'params': params}, x)
  return jax.jit(lambda sr, hr: (losses.perceptual_loss(apply, sr, hr),
                                 losses.perceptual_taps(apply, sr, hr)))


def test_perceptual_loss_and_taps(vgg_params):
  ref = golden('losses')
  sr, hr = nhwc(ref['sr']), nhwc(ref['hr'])
  loss, taps = _pcp(vgg_params)(sr, hr)
  np.testing.assert_allclose(loss, ref['pcp'], rtol=1e-5)
  for i, tap in enumerate(taps):
    np.testing.assert_allclose(tap, ref[f'pcp_tap{i}_l1'], rtol=1e-5, err_msg=f'tap {i}')
  model = VGG19Features()
  feats = model.apply({'params': vgg_params}, vgg_lib.preprocess(jnp.asarray(sr)))
  for i, f in enumerate(feats):
    assert f.shape[1:] == tuple(ref[f'pcp_tap{i}_shape'][[2, 3, 1]])
    np.testing.assert_allclose(np.mean(np.asarray(f), axis=(0, 1, 2)),
                               ref[f'pcp_tap{i}_sr_channel_mean'], atol=1e-4)


def test_perceptual_negative_control_differs(vgg_params):
  ref = golden('losses')
  loss, _ = _pcp(vgg_params, post_relu=False)(nhwc(ref['sr']), nhwc(ref['hr']))
  np.testing.assert_allclose(loss, ref['pcp_if_pre_relu_taps_NOT_the_reference'], rtol=1e-5)
  assert abs(float(loss) - float(ref['pcp'])) > 0.1


def test_perceptual_gradient(vgg_params):
  ref = golden('losses')
  model = VGG19Features()
  apply = lambda x: model.apply({'params': vgg_params}, x)
  grad = jax.jit(jax.grad(lambda sr, hr: losses.perceptual_loss(apply, sr, hr)))(
      nhwc(ref['sr']), nhwc(ref['hr']))
  want = nhwc(ref['pcp_grad_wrt_sr'])
  got = np.asarray(grad, np.float64).ravel()
  want = want.astype(np.float64).ravel()
  rel_l2 = np.linalg.norm(got - want) / np.linalg.norm(want)
  cosine = got @ want / (np.linalg.norm(got) * np.linalg.norm(want))
  assert rel_l2 < 5e-2 and cosine > 0.999, (rel_l2, cosine)


def test_total_generator_objective(vgg_params):
  ref = golden('losses')
  sr, hr = nhwc(ref['sr']), nhwc(ref['hr'])
  loss, _ = _pcp(vgg_params)(sr, hr)
  total = (losses.l1_loss(sr, hr)
           + 0.01 * losses.rahinge_g_loss(nhwc(ref['real_pred']), nhwc(ref['fake_pred']))
           + 0.01 * loss)
  np.testing.assert_allclose(total, ref['total_G_objective'], rtol=1e-5)


def test_floor_quantisation_gives_the_authors_saved_pixels(g_state):
  """infer/evaluate --quantize floor on the golden generator = the authors' PNG pixels.

  Their saving: clip to [-1, 1], (x + 1) / 2 * 255, astype(uint8) (a floor), applied
  here to their own output. Ours matches theirs to 1e-4, i.e. 0.013 levels, so only a
  value within that of an integer may land on the other side of it.
  """
  from mrr_jax.evaluation import predict  # pylint: disable=g-import-not-at-top
  model = MRRNet()
  params = torch_keys.generator_from_torch(g_state, export_format.param_shapes(model))
  ref = golden('G')
  authors = (np.clip(nhwc(ref['output']).astype(np.float64), -1, 1) + 1) / 2 * 255
  saved = authors.astype(np.uint8)
  # The golden input is not an 8-bit image: run the generator on it exactly, then
  # the quantisation infer --quantize floor applies.
  ours = np.asarray(jax.jit(lambda p, x: predict.metrics.quantize(
      model.apply({'params': p}, x), 'floor'))(params, nhwc(ref['input']))).astype(np.uint8)
  near_integer = np.abs(authors - np.round(authors)) < 0.02
  # Fractions spread evenly: about 4% of values lie within 0.02 of an integer.
  assert near_integer[(authors > 0) & (authors < 255)].mean() < 0.05
  np.testing.assert_array_equal(ours[~near_integer], saved[~near_integer])
  assert (ours != saved).mean() < 0.01
