"""Ablation variants of the generator (paper Table 2/3) and the discriminator's shapes."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mrr_jax.weights import export_format
from mrr_jax.models import Discriminator, MRRNet

TINY = dict(base_channels=8, max_channels=16, num_down=3, num_res=1)


def _run(model, x):
  params = model.init(jax.random.PRNGKey(0), x)['params']
  return model.apply({'params': params}, x, mutable=['intermediates']), params


@pytest.mark.parametrize('kernels', [(1, 3), (5, 7), (1, 7), (1, 3, 5, 7)])
def test_kernel_set_ablation(kernels):
  x = jax.random.uniform(jax.random.PRNGKey(1), (2, 128, 128, 3), minval=-1, maxval=1)
  (y, state), params = _run(MRRNet(att_kernels=kernels, **TINY), x)
  assert y.shape == (2, 128, 128, 3)
  maps = state['intermediates']
  # One map per block: 3 down, 1 middle, 3 up; resolution follows the block's output.
  want = {'encoder_1': 64, 'encoder_2': 32, 'encoder_3': 16, 'res_layers_0': 16,
          'decoder_0': 32, 'decoder_1': 64, 'decoder_2': 128}
  assert set(maps) == set(want)
  for block, size in want.items():
    (a,) = maps[block]['att_map']
    assert a.shape == (2, size, size, 1)
    assert float(a.min()) > 0 and float(a.max()) < 1
  branches = sorted(k for k in params['encoder_1']['att_func'] if k.startswith('feature'))
  assert branches == sorted(f'feature_extract_{k}' for k in kernels)
  # Branch widths split the block width evenly (16 channels / len(kernels)).
  assert params['encoder_1']['att_func'][branches[0]]['kernel'].shape[-1] == 16 // len(kernels)


def test_without_attention_has_no_maps_and_fewer_params():
  x = jnp.zeros((1, 128, 128, 3))
  (y, state), params = _run(MRRNet(attention='none', **TINY), x)
  assert y.shape == (1, 128, 128, 3)
  assert 'intermediates' not in state or not state['intermediates']
  full = sum(np.prod(s) for s in export_format.param_shapes(MRRNet(**TINY)).values())
  none = sum(np.prod(v.shape) for v in jax.tree_util.tree_leaves(params))
  assert none < full


def test_cbam_variant_gates_with_spatial_maps():
  x = jax.random.uniform(jax.random.PRNGKey(2), (2, 128, 128, 3), minval=-1, maxval=1)
  (y, state), params = _run(MRRNet(attention='cbam', **TINY), x)
  assert y.shape == (2, 128, 128, 3)
  (a,) = state['intermediates']['decoder_2']['att_map']
  assert a.shape == (2, 128, 128, 1)
  assert set(params['decoder_2']['att_func']) == {'mlp_in', 'mlp_out', 'spatial'}


def test_full_size_paper_default_counts_by_variant():
  counts = {att: sum(int(np.prod(s)) for s in export_format.param_shapes(MRRNet(attention=att)).values())
            for att in ('mrr', 'none')}
  assert counts['mrr'] == 9_130_771
  # The 1/3/5/7 attention branches and their 3x3 heads, summed over 16 blocks by hand:
  # per block of width c: c*c/4*(1+9+25+49) + c (biases) + 9*c + 1.
  widths = [64, 128, 128] + [128] * 10 + [128, 64, 32]
  att = sum(c * c // 4 * 84 + c + 9 * c + 1 for c in widths)
  assert counts['mrr'] - counts['none'] == att


def test_bad_attention_name():
  with pytest.raises(ValueError, match='attention must be one of'):
    MRRNet(attention='se', **TINY).init(jax.random.PRNGKey(0), jnp.zeros((1, 128, 128, 3)))


def test_discriminator_patch_map_and_spectral_state():
  d = Discriminator()
  x = jnp.zeros((3, 128, 128, 3))
  variables = d.init(jax.random.PRNGKey(0), x)
  y, new = d.apply(variables, x, train=True, mutable=['spectral'])
  assert y.shape == (3, 8, 8, 1)
  assert variables['spectral']['d1']['v'].shape == (27,)
  assert variables['spectral']['d4']['u'].shape == (256,)
  # One power iteration changes u; the vectors stay unit norm.
  assert not np.allclose(new['spectral']['d1']['u'], variables['spectral']['d1']['u'])
  np.testing.assert_allclose(np.linalg.norm(new['spectral']['d2']['u']), 1.0, rtol=1e-6)


def test_instance_norm_hand_written_gradient_matches_autodiff():
  """kernels.instance_norm_cpu's custom VJP against autodiff of the textbook formula."""
  from mrr_jax.models import kernels, layers  # pylint: disable=g-import-not-at-top

  def reference(x, scale, bias):
    mean = x.mean(axis=(1, 2), keepdims=True)
    var = ((x - mean) ** 2).mean(axis=(1, 2), keepdims=True)
    return (x - mean) / jnp.sqrt(var + 1e-5) * scale + bias

  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.normal(1.5, 2.0, (2, 5, 7, 3)).astype(np.float32))
  scale = jnp.asarray(rng.normal(1.0, 0.3, (3,)).astype(np.float32))
  bias = jnp.asarray(rng.normal(0.0, 0.3, (3,)).astype(np.float32))
  weights = jnp.asarray(rng.normal(size=(2, 5, 7, 3)).astype(np.float32))
  loss = lambda f: lambda *a: jnp.sum(jnp.tanh(f(*a)) * weights)  # a non-trivial upstream g
  ours = jax.grad(loss(lambda x, s, b: kernels.instance_norm_cpu(x, s, b, 1e-5)), (0, 1, 2))
  want = jax.grad(loss(reference), (0, 1, 2))
  np.testing.assert_allclose(kernels.instance_norm_cpu(x, scale, bias, 1e-5),
                             reference(x, scale, bias), rtol=1e-5, atol=1e-5)
  for got, expected in zip(ours(x, scale, bias), want(x, scale, bias)):
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
  assert float(jnp.abs(ours(x, scale, bias)[0]).max()) > 0.1  # the check is not vacuous


@pytest.mark.parametrize('dtype', ['float32', 'bfloat16'])
def test_instance_norm_keeping_input_matches_autodiff(dtype):
  """layers.instance_norm_keeping_input (the bfloat16 norm) against autodiff of the formula.

  float32 in: the same math, to float32 rounding. bfloat16 in: the reference
  runs in float32 on the same bfloat16 values, and the outputs and dx are
  bfloat16, so they agree to bfloat16's 8 bits; the param gradients stay float32.
  """
  from mrr_jax.models import layers  # pylint: disable=g-import-not-at-top

  def reference(x, scale, bias):
    x = x.astype(jnp.float32)
    mean = x.mean(axis=(1, 2), keepdims=True)
    var = ((x - mean) ** 2).mean(axis=(1, 2), keepdims=True)
    return (x - mean) / jnp.sqrt(var + 1e-5) * scale + bias

  rng = np.random.default_rng(4)
  x = jnp.asarray(rng.normal(1.5, 2.0, (2, 6, 5, 3)).astype(np.float32)).astype(dtype)
  scale = jnp.asarray(rng.normal(1.0, 0.3, (3,)).astype(np.float32))
  bias = jnp.asarray(rng.normal(0.0, 0.3, (3,)).astype(np.float32))
  weights = jnp.asarray(rng.normal(size=(2, 6, 5, 3)).astype(np.float32))
  loss = lambda f: lambda *a: jnp.sum(jnp.tanh(f(*a).astype(jnp.float32)) * weights)
  ours_fn = lambda x, s, b: layers.instance_norm_keeping_input(x, s, b, 1e-5)
  tol = {'float32': dict(rtol=1e-4, atol=1e-5), 'bfloat16': dict(rtol=2e-2, atol=2e-2)}[dtype]
  y = ours_fn(x, scale, bias)
  assert y.dtype == x.dtype
  np.testing.assert_allclose(np.asarray(y, np.float32), reference(x, scale, bias), **tol)
  got = jax.grad(loss(ours_fn), (0, 1, 2))(x, scale, bias)
  want = jax.grad(loss(reference), (0, 1, 2))(x.astype(jnp.float32), scale, bias)
  assert got[0].dtype == x.dtype and got[1].dtype == got[2].dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(got[0], np.float32), want[0], **tol)
  for g, w in zip(got[1:], want[1:]):  # summed in float32 from bfloat16 x: closer than dx
    np.testing.assert_allclose(g, w, rtol=1e-2 if dtype == 'bfloat16' else 1e-4, atol=1e-4)
  assert float(jnp.abs(want[0]).max()) > 0.1  # the check is not vacuous


def test_instance_norm_keeping_input_one_pass_statistics_hold_a_large_mean():
  """mean/std = 50 in bfloat16: the one-pass variance stays within 0.1% of the two-pass one."""
  from mrr_jax.models import layers  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(6)
  x = jnp.asarray(rng.normal(50.0, 1.0, (2, 64, 64, 4)).astype(np.float32)).astype(jnp.bfloat16)
  x32 = x.astype(jnp.float32)
  mean, inv_std = layers._norm_statistics(x32, 1e-5)  # pylint: disable=protected-access
  two_pass = jnp.var(x32, axis=(1, 2), keepdims=True)
  np.testing.assert_allclose(mean, jnp.mean(x32, axis=(1, 2), keepdims=True), rtol=1e-6)
  np.testing.assert_allclose(1 / inv_std**2 - 1e-5, two_pass, rtol=1e-3)
  y = layers.instance_norm_keeping_input(x, jnp.ones(4), jnp.zeros(4), 1e-5)
  want = (x32 - jnp.mean(x32, axis=(1, 2), keepdims=True)) / jnp.sqrt(two_pass + 1e-5)
  np.testing.assert_allclose(np.asarray(y, np.float32), want, rtol=2e-2, atol=2e-2)


def test_vgg_max_pool_equals_flax_max_pool():
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  from mrr_jax.models import vgg  # pylint: disable=g-import-not-at-top
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 8, 6, 3)).astype(np.float32))
  np.testing.assert_array_equal(vgg.max_pool_2x2(x), nn.max_pool(x, (2, 2), strides=(2, 2)))
  g = jax.grad(lambda v: jnp.sum(vgg.max_pool_2x2(v) ** 2))(x)
  g_ref = jax.grad(lambda v: jnp.sum(nn.max_pool(v, (2, 2), strides=(2, 2)) ** 2))(x)
  np.testing.assert_allclose(g, g_ref, rtol=1e-6)  # no ties in a continuous sample


@pytest.mark.parametrize('form', ['upsample_conv3x3_cpu', 'transposed_upsample_conv3x3'])
def test_up_conv_forms_equal_the_direct_form_with_its_gradients(form):
  """Both up convs == conv3x3(reflect_pad(nearest_x2(x), 1)), the authors' up conv, and so do
  their input and kernel gradients (float64: only the order of additions differs)."""
  from mrr_jax.models import kernels  # pylint: disable=g-import-not-at-top
  up_conv = getattr(kernels, form)
  with jax.enable_x64(True):
    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.normal(size=(2, 5, 6, 3)))
    kernel = jnp.asarray(rng.normal(size=(3, 3, 3, 4)))
    cot = jnp.asarray(rng.normal(size=(2, 10, 12, 4)))

    def direct(v, k):
      big = jnp.repeat(jnp.repeat(v, 2, axis=1), 2, axis=2)  # nearest x2
      padded = jnp.pad(big, ((0, 0), (1, 1), (1, 1), (0, 0)), mode='reflect')
      return jax.lax.conv_general_dilated(padded, k, (1, 1), 'VALID',
                                          dimension_numbers=('NHWC', 'HWIO', 'NHWC'))

    got, got_vjp = jax.vjp(up_conv, x, kernel)
    want, want_vjp = jax.vjp(direct, x, kernel)
    assert got.shape == (2, 10, 12, 4)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    for g, w in zip(got_vjp(cot), want_vjp(cot)):
      np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)
    # One output pixel by hand: the top-left reads input (0, 0) through all nine taps
    # (reflection by 1 of the x2 image lands on copies of it) and (0, 1) through none.
    np.testing.assert_allclose(got[:, 0, 0], x[:, 0, 0] @ kernel.sum(axis=(0, 1)), rtol=1e-12)


@pytest.mark.parametrize('shape,pad,mode', [((2, 6, 7, 3), 1, 'reflect'), ((1, 9, 8, 2), 3, 'reflect'),
                                            ((2, 5, 4, 3), 1, 'symmetric'),
                                            ((1, 6, 7, 2), 2, 'symmetric')])
def test_one_pass_mirror_pad_equals_jnp_pad_with_its_gradient(shape, pad, mode):
  """kernels.mirror_pad (nine zero-padded pieces summed) == jnp.pad, values exactly."""
  from mrr_jax.models import kernels  # pylint: disable=g-import-not-at-top
  with jax.enable_x64(True):
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(size=shape))
    cot = jnp.asarray(rng.normal(size=(shape[0], shape[1] + 2 * pad, shape[2] + 2 * pad, shape[3])))
    reference = lambda v: jnp.pad(v, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode=mode)
    got, got_vjp = jax.vjp(lambda v: kernels.mirror_pad(v, pad, mode), x)
    np.testing.assert_array_equal(got, reference(x))
    np.testing.assert_allclose(got_vjp(cot)[0], jax.vjp(reference, x)[1](cot)[0], rtol=1e-12,
                               atol=1e-12)


def test_pad_conv_refuses_an_upsample_it_does_not_implement():
  from mrr_jax.models import kernels, layers  # pylint: disable=g-import-not-at-top
  with pytest.raises(ValueError, match='3x3 stride-1'):
    layers.PadConv(4, 5, upsample=True).init(jax.random.PRNGKey(0), jnp.zeros((1, 4, 4, 2)))


@pytest.mark.parametrize('shape,pad', [((2, 6, 7, 3), 1), ((1, 9, 8, 2), 2), ((2, 8, 8, 4), 3)])
def test_reflect_pad_gradient_folds_the_border_like_autodiff(shape, pad):
  """kernels.reflect_pad_cpu's hand-written gradient == autodiff of jnp.pad(mode='reflect')."""
  from mrr_jax.models import kernels, layers  # pylint: disable=g-import-not-at-top
  with jax.enable_x64(True):  # exact comparisons, no float32 rounding
    rng = np.random.default_rng(11)
    x = jnp.asarray(rng.normal(size=shape))
    cot = jnp.asarray(rng.normal(size=(shape[0], shape[1] + 2 * pad, shape[2] + 2 * pad, shape[3])))
    reference = lambda v: jnp.pad(v, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode='reflect')
    np.testing.assert_array_equal(kernels.reflect_pad_cpu(x, pad), reference(x))
    got = jax.vjp(lambda v: kernels.reflect_pad_cpu(v, pad), x)[1](cot)[0]
    want = jax.vjp(reference, x)[1](cot)[0]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # Independent check of one mirrored cell: x[:, 1, 1] appears at padded rows
    # pad-1 and pad+1 and columns pad-1 and pad+1 (four copies with the corner).
    if pad == 1:
      expected = cot[:, 0, 0] + cot[:, 0, 2] + cot[:, 2, 0] + cot[:, 2, 2]
      np.testing.assert_allclose(got[:, 1, 1], expected, rtol=1e-12)


@pytest.mark.parametrize('shape,cout', [
    ((2, 66, 66, 16), 8),   # 32x32 outputs, 16 channels: the parity-split gradient
    ((1, 67, 69, 16), 4),   # odd padded sizes on that path
    ((2, 10, 10, 3), 5),    # small: XLA's own gradient
])
def test_stride2_conv_gradient_equals_autodiff(shape, cout):
  """kernels.conv3x3_stride2_cpu (parity-split input gradient) == autodiff of lax's strided conv."""
  from mrr_jax.models import kernels, layers  # pylint: disable=g-import-not-at-top
  with jax.enable_x64(True):  # exact comparisons, no float32 rounding
    rng = np.random.default_rng(12)
    xp = jnp.asarray(rng.normal(size=shape))
    kernel = jnp.asarray(rng.normal(size=(3, 3, shape[3], cout)))
    reference = lambda v, k: jax.lax.conv_general_dilated(
        v, k, (2, 2), 'VALID', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    out = reference(xp, kernel)
    cot = jnp.asarray(rng.normal(size=out.shape))
    np.testing.assert_allclose(kernels.conv3x3_stride2_cpu(xp, kernel), out, rtol=1e-12)
    got = jax.vjp(kernels.conv3x3_stride2_cpu, xp, kernel)[1](cot)
    want = jax.vjp(reference, xp, kernel)[1](cot)
    for g, w in zip(got, want):
      np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-10)
