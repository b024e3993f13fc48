"""Building blocks shared by the generator and discriminator (NHWC), in plain flax/lax.

Every conv in the authors' G and D pads by reflection and then convolves with
no padding (docs/architecture.md#padconv); InstanceNorm uses eps 1e-5 and no
running statistics, so train and eval outputs are identical. Reflect padding,
stride-2 convs and InstanceNorm go through mrr_jax.models.kernels, which
swaps in CPU-tuned gradients on the CPU backend.

Params are initialised by mrr_jax.models.init (the authors' rules, in numpy);
the initialisers named here only give `module.init` something to run.
"""
import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from mrr_jax.models import kernels

Dtype = Any
_NHWC = ('NHWC', 'HWIO', 'NHWC')


def reflect_pad(x: jax.Array, pad: int) -> jax.Array:
  """Pads H and W by reflection (torch ReflectionPad2d)."""
  return kernels.reflect_pad(x, pad)


class KernelConv(nn.Module):
  """nn.Conv's 3x3 params ('kernel' HWIO with the G init, 'bias') around conv_fn(x, kernel).

  For the convs mrr_jax.models.kernels computes itself (upsample_conv3x3,
  conv3x3_stride2), so checkpoints and converted weights keep nn.Conv's tree.
  """

  features: int
  conv_fn: Callable[[jax.Array, jax.Array], jax.Array]
  use_bias: bool = True
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param('kernel', nn.initializers.lecun_normal(), (3, 3, x.shape[-1], self.features),
                        jnp.float32)
    y = self.conv_fn(x.astype(self.dtype), kernel.astype(self.dtype))
    if self.use_bias:
      y = y + self.param('bias', nn.initializers.zeros, (self.features,), jnp.float32).astype(self.dtype)
    return y


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def instance_norm_keeping_input(x: jax.Array, scale: jax.Array, bias: jax.Array,
                                eps: float) -> jax.Array:
  """InstanceNorm of a low-precision x, statistics in float32; the gradient keeps only x.

  Autodiff would keep x_hat in float32 for the backward pass, twice the bytes
  of a bfloat16 x; recomputing the whole norm there instead (jax.checkpoint)
  re-reads x for both statistics again. This keeps x (its own dtype) and the
  per-channel mean and 1/std (float32); the forward pass reads x once for
  both statistics, and the backward pass reads g and x once for its two sums
  and once more to write dx.
  """
  return _norm_keeping_input_fwd(x, scale, bias, eps)[0]


def _norm_statistics(x32: jax.Array, eps: float):
  """Per image and channel: the mean and 1/sqrt(biased var + eps), in one pass over x.

  E[x^2] - E[x]^2 lets XLA compute both sums in one read of x (torch's two
  passes read it twice). In float32 it loses some of the variance to
  cancellation when the mean dwarfs the spread, but x is bfloat16 here, and
  its own rounding moves the variance more: for mean/std = 200 the one-pass
  variance is 0.35% off the two-pass one, while rounding x to bfloat16 moved
  the variance by 10% (tests/test_models_variants.py holds mean/std = 50).
  """
  mean = jnp.mean(x32, axis=(1, 2), keepdims=True)
  mean_sq = jnp.mean(x32 * x32, axis=(1, 2), keepdims=True)
  var = jnp.maximum(mean_sq - mean * mean, 0.0)
  return mean, jax.lax.rsqrt(var + eps)


def _norm_keeping_input_fwd(x, scale, bias, eps):
  x32 = x.astype(jnp.float32)
  mean, inv_std = _norm_statistics(x32, eps)
  y = ((x32 - mean) * inv_std * scale + bias).astype(x.dtype)
  return y, (x, mean, inv_std, scale)


def _norm_keeping_input_bwd(eps, residuals, g):
  del eps
  x, mean, inv_std, scale = residuals
  x_hat = (x.astype(jnp.float32) - mean) * inv_std
  dx, sum_g, sum_g_xhat = kernels.instance_norm_grad(g.astype(jnp.float32), x_hat, inv_std, scale)
  # The barrier keeps the batch sums below from being folded into the sums
  # above as one reduction over (N, H, W): that would re-read g and x.
  sum_g, sum_g_xhat = jax.lax.optimization_barrier((sum_g, sum_g_xhat))
  return (dx.astype(x.dtype), jnp.sum(sum_g_xhat, axis=(0, 1, 2)),
          jnp.sum(sum_g, axis=(0, 1, 2)))

instance_norm_keeping_input.defvjp(_norm_keeping_input_fwd, _norm_keeping_input_bwd)


class InstanceNorm(nn.Module):
  """torch.nn.InstanceNorm2d(eps=1e-5): no running statistics, so train == eval.

  Params 'scale' and 'bias' (when affine) as flax.linen.InstanceNorm names
  them. Statistics are computed in float32, or float64 when computing in it.
  """

  affine: bool = True
  epsilon: float = 1e-5
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    channels = x.shape[-1]
    if self.affine:
      scale = self.param('scale', nn.initializers.ones, (channels,), jnp.float32)
      bias = self.param('bias', nn.initializers.zeros, (channels,), jnp.float32)
    else:
      scale = jnp.ones((channels,), jnp.float32)
      bias = jnp.zeros((channels,), jnp.float32)
    stats_dtype = jnp.promote_types(self.dtype, jnp.float32)

    if stats_dtype != self.dtype:
      return instance_norm_keeping_input(x.astype(self.dtype), scale, bias, self.epsilon)
    y = kernels.instance_norm(x.astype(stats_dtype), scale.astype(stats_dtype),
                              bias.astype(stats_dtype), self.epsilon)
    return y.astype(self.dtype)


class PadConv(nn.Module):
  """The authors' ConvLayer: [nearest x2] -> reflect pad k//2 -> conv -> [IN] -> [LeakyReLU 0.2].

  The conv carries a bias only when no norm follows it, as in the code. With
  upsample (3x3, stride 1: every up block) it runs as upsample_conv3x3, and a
  3x3 stride-2 conv (every down block) as conv3x3_stride2: the same functions
  and params with less work.
  """

  features: int
  kernel_size: int = 3
  stride: int = 1
  upsample: bool = False
  norm: bool = False
  activation: bool = False
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k, stride = self.kernel_size, self.stride
    if self.upsample:
      if (k, stride) != (3, 1):
        raise ValueError('PadConv upsamples only before a 3x3 stride-1 conv (as every up '
                         f'block does), got kernel {k}, stride {stride}')
      x = KernelConv(self.features, kernels.upsample_conv3x3, use_bias=not self.norm,
                     dtype=self.dtype, name='conv2d')(x)
    elif (k, stride) == (3, 2):
      x = KernelConv(self.features, kernels.conv3x3_stride2, use_bias=not self.norm,
                     dtype=self.dtype, name='conv2d')(reflect_pad(x, 1))
    else:
      x = reflect_pad(x, k // 2)
      x = nn.Conv(self.features, (k, k), strides=stride, padding='VALID',
                  use_bias=not self.norm, dtype=self.dtype, name='conv2d')(x)
    if self.norm:
      x = InstanceNorm(affine=True, dtype=self.dtype, name='norm')(x)
    if self.activation:
      x = nn.leaky_relu(x, 0.2)
    return x


def _l2_normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
  """torch.nn.functional.normalize: x / max(||x||, eps)."""
  return x / jnp.maximum(jnp.linalg.norm(x), eps)


def _matvec(matrix: jax.Array, vector: jax.Array) -> jax.Array:
  """Full float32 precision: TPUs and TF32 GPUs would otherwise round the operands, which
  moves sigma (and every D output) for the price of a few hundred thousand multiply-adds."""
  return jnp.matmul(matrix, vector, precision=jax.lax.Precision.HIGHEST)


def _oihw_matrix(kernel_hwio: jax.Array) -> jax.Array:
  """HWIO kernel -> (O, I*kh*kw) matrix in PyTorch's OIHW flattening order."""
  return jnp.transpose(kernel_hwio, (3, 2, 0, 1)).reshape(kernel_hwio.shape[-1], -1)


class SpectralNormConv(nn.Module):
  """Conv whose kernel is divided by its spectral norm, as torch.nn.utils.spectral_norm.

  PyTorch's classic form (dim 0, one power iteration, eps 1e-12): in training
  mode each call updates v <- normalize(W^T u), u <- normalize(W v) without
  gradient; sigma = u . (W v) carries gradient to W. In eval mode there is no
  iteration. u and v live in the 'spectral' collection; v is flattened in
  PyTorch's (I, kh, kw) order so authors' buffers load unchanged.
  flax.linen.SpectralNorm keeps only u and iterates in eval, hence this module.
  """

  features: int
  kernel_size: int = 3
  stride: int = 2
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    cin = x.shape[-1]
    k = self.kernel_size
    fan_in = cin * k * k
    kernel = self.param('kernel', nn.initializers.lecun_normal(), (k, k, cin, self.features),
                        jnp.float32)
    bias = self.param('bias', nn.initializers.zeros, (self.features,), jnp.float32)
    u = self.variable(
        'spectral', 'u',
        lambda: _l2_normalize(jax.random.normal(self.make_rng('params'), (self.features,))))
    v = self.variable(
        'spectral', 'v',
        lambda: _l2_normalize(jax.random.normal(self.make_rng('params'), (fan_in,))))

    w_mat = _oihw_matrix(kernel)
    if train and not self.is_initializing():
      w_fixed = jax.lax.stop_gradient(w_mat)
      v_new = _l2_normalize(_matvec(w_fixed.T, u.value))
      u_new = _l2_normalize(_matvec(w_fixed, v_new))
      u.value, v.value = u_new, v_new
    u_vec = jax.lax.stop_gradient(u.value)
    v_vec = jax.lax.stop_gradient(v.value)
    sigma = jnp.dot(u_vec, _matvec(w_mat, v_vec), precision=jax.lax.Precision.HIGHEST)
    x, kernel = x.astype(self.dtype), (kernel / sigma).astype(self.dtype)
    if (k, self.stride) == (3, 2):
      y = kernels.conv3x3_stride2(x, kernel)
    else:
      y = jax.lax.conv_general_dilated(x, kernel, (self.stride, self.stride), 'VALID',
                                       dimension_numbers=_NHWC)
    return y + bias.astype(self.dtype)
