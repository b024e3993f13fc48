"""Building blocks shared by the generator and discriminator (NHWC).

Every conv in the authors' G and D pads by reflection and then convolves with
no padding (ARCH.md "PadConv"); InstanceNorm uses eps 1e-5 and no running
statistics, so train and eval outputs are identical.
"""
import functools
from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any

# The authors' init_weights: N(0, 0.02) conv weights, zero biases (G only).
G_KERNEL_INIT = nn.initializers.normal(stddev=0.02)
# PyTorch's default Conv2d init (kaiming_uniform a=sqrt(5)): U(+-1/sqrt(fan_in)).
TORCH_KERNEL_INIT = nn.initializers.variance_scaling(1.0 / 3.0, 'fan_in', 'uniform')


def torch_bias_init(fan_in: int):
  """PyTorch's default conv bias init, U(+-1/sqrt(fan_in))."""
  bound = 1.0 / float(fan_in) ** 0.5

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def reflect_pad(x: jax.Array, pad: int) -> jax.Array:
  """Pads H and W by reflection (numpy 'reflect' == torch ReflectionPad2d).

  The gradient folds the padded border back onto the rows and columns it
  mirrors, in one fused pass per axis; autodiff of jnp.pad's reflect mode
  made XLA (CPU) write several full-size intermediates per pad instead.
  """
  return _reflect_pad(x, pad)


def _reflect_pad(x, pad):
  if pad == 0:
    return x
  return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode='reflect')


def _fold_reflected(g: jax.Array, pad: int, axis: int) -> jax.Array:
  """Transpose of reflect padding along one axis: border rows add onto their mirrors.

  Padded rows pad-1 .. 0 copy rows 1 .. pad, and the last pad rows copy rows
  n-2 .. n-1-pad, so their gradients land there (flipped), zero-padded to n.
  """
  n = g.shape[axis] - 2 * pad
  rows = lambda start, stop: jax.lax.slice_in_dim(g, start, stop, axis=axis)
  zero = jnp.zeros((), g.dtype)
  def placed(block, before):
    config = [(0, 0, 0)] * g.ndim
    config[axis] = (before, n - before - pad, 0)
    return jax.lax.pad(jnp.flip(block, axis), zero, config)
  return (rows(pad, pad + n) + placed(rows(0, pad), 1)
          + placed(rows(pad + n, n + 2 * pad), n - 1 - pad))


def _reflect_pad_fwd(x, pad):
  return _reflect_pad(x, pad), None


def _reflect_pad_bwd(pad, _, g):
  if pad == 0:
    return (g,)
  return (_fold_reflected(_fold_reflected(g, pad, 1), pad, 2),)


reflect_pad.defvjp(_reflect_pad_fwd, _reflect_pad_bwd)


def _phase_kernels(kernel: jax.Array) -> jax.Array:
  """3x3 HWIO kernel -> (2, 2, 2, 2, I, O) 2x2 kernels per output phase (row a, col b).

  On a nearest-x2 image, output row 2i+a reads input rows (i-1, i, i) for a=0
  and (i, i, i+1) for a=1, so the taps that land on the same input row add up:
  a=0 uses rows [w0, w1+w2] at (i-1, i), a=1 uses [w0+w1, w2] at (i, i+1).
  Same for columns.
  """
  def fold(k, axis):
    w0, w1, w2 = jnp.split(k, 3, axis=axis)
    return jnp.stack([jnp.concatenate([w0, w1 + w2], axis),
                      jnp.concatenate([w0 + w1, w2], axis)])
  rows = fold(kernel, 0)                       # (2, 2, 3, I, O): phase a, then taps
  return jnp.moveaxis(fold(rows, 2), 0, 1)     # (2a, 2b, 2, 2, I, O)


def upsample_conv3x3(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """conv3x3(reflect_pad(nearest_x2(x), 1)) without building the x2 image.

  Reflection by 1 of a nearest-x2 image equals nearest-x2 of the edge-padded
  image (row -1 of the big image is its row 1, a copy of input row 0), so each
  of the four output phases is a 2x2 VALID conv on the edge-padded input: 16
  instead of 36 multiply-adds per output pixel and no x2 copy of the input
  (forward or gradient). Only the order of the additions differs from the
  direct form.
  """
  n, h, w, _ = x.shape
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode='edge')
  k = _phase_kernels(kernel)
  conv = lambda v, kk: jax.lax.conv_general_dilated(
      v, kk, (1, 1), 'VALID', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  # Phase a reads padded rows [a, a + h + 1); likewise columns.
  phases = [[conv(xp[:, a:a + h + 1, b:b + w + 1], k[a, b]) for b in (0, 1)] for a in (0, 1)]
  y = jnp.stack([jnp.stack(row, axis=3) for row in phases], axis=2)  # (n, h, 2, w, 2, o)
  return y.reshape(n, 2 * h, 2 * w, kernel.shape[-1])


_NHWC = ('NHWC', 'HWIO', 'NHWC')


def _conv_stride2(xp: jax.Array, kernel: jax.Array) -> jax.Array:
  return jax.lax.conv_general_dilated(xp, kernel, (2, 2), 'VALID', dimension_numbers=_NHWC)


@jax.custom_vjp
def conv3x3_stride2(xp: jax.Array, kernel: jax.Array) -> jax.Array:
  """VALID 3x3 stride-2 conv of an already padded NHWC image (every down conv).

  Same forward as lax; the input gradient of large ones is computed by output
  parity (stride2_input_grad) instead of XLA's conv over a zero-dilated
  gradient, which on CPU took 1.5-4x as long.
  """
  return _conv_stride2(xp, kernel)


def stride2_input_grad(g: jax.Array, kernel: jax.Array, height: int, width: int) -> jax.Array:
  """Gradient of conv3x3_stride2 with respect to its (height, width) input.

  Input row 2p receives g[p] w0 + g[p-1] w2 and row 2p+1 receives g[p] w1, so
  with g zero-padded by one on each side every (row, column) parity is a
  stride-1 VALID conv of that padded g with taps (w2, w0) or (w1,): 9 taps in
  all, the forward's work. The four parities interleave back into rows and
  columns.
  """
  n, rows, cols, _ = g.shape
  gz = jnp.pad(g, ((0, 0), (1, 1), (1, 1), (0, 0)))
  wt = jnp.swapaxes(kernel, 2, 3)                # (3, 3, out, in): the transposed conv
  parities = ((jnp.array([2, 0]), 0), (jnp.array([1]), 1))  # (taps, first row of gz)
  grid = [[jax.lax.conv_general_dilated(gz[:, r0:, c0:], wt[rt][:, ct], (1, 1), 'VALID',
                                        dimension_numbers=_NHWC)
           for ct, c0 in parities] for rt, r0 in parities]
  dx = jnp.stack([jnp.stack(row, axis=3) for row in grid], axis=2)  # (n, rows+1, 2, cols+1, 2, in)
  dx = dx.reshape(n, 2 * rows + 2, 2 * cols + 2, kernel.shape[2])
  return dx[:, :height, :width]


def _use_parity_grad(xp_shape, kernel_shape) -> bool:
  # Measured on a 2-core CPU (BENCHMARKS.md): the parity form wins from 32x32
  # outputs and 16 input channels up (input gradient 1.5-4x faster), and loses
  # on 16x16 outputs or 3-channel inputs, where four small convs cost more
  # than one.
  out_rows = (xp_shape[1] - 3) // 2 + 1
  out_cols = (xp_shape[2] - 3) // 2 + 1
  return out_rows * out_cols >= 32 * 32 and kernel_shape[2] >= 16


def _conv3x3_stride2_fwd(xp, kernel):
  return _conv_stride2(xp, kernel), (xp, kernel)


def _conv3x3_stride2_bwd(residuals, g):
  xp, kernel = residuals
  if _use_parity_grad(xp.shape, kernel.shape):
    dxp = stride2_input_grad(g, kernel, xp.shape[1], xp.shape[2])
    dkernel = jax.vjp(lambda k: _conv_stride2(xp, k), kernel)[1](g)[0]
    return dxp, dkernel
  return jax.vjp(_conv_stride2, xp, kernel)[1](g)


conv3x3_stride2.defvjp(_conv3x3_stride2_fwd, _conv3x3_stride2_bwd)


class KernelConv(nn.Module):
  """nn.Conv's 3x3 params ('kernel' HWIO with the G init, 'bias') around conv_fn(x, kernel).

  For the convs this file computes itself (upsample_conv3x3,
  conv3x3_stride2), so checkpoints and converted weights keep nn.Conv's tree.
  """

  features: int
  conv_fn: Callable[[jax.Array, jax.Array], jax.Array]
  use_bias: bool = True
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param('kernel', G_KERNEL_INIT, (3, 3, x.shape[-1], self.features), jnp.float32)
    y = self.conv_fn(x.astype(self.dtype), kernel.astype(self.dtype))
    if self.use_bias:
      y = y + self.param('bias', nn.initializers.zeros, (self.features,), jnp.float32).astype(self.dtype)
    return y


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def instance_norm_nhwc(x: jax.Array, scale: jax.Array, bias: jax.Array, eps: float) -> jax.Array:
  """(x - mean) / sqrt(var + eps) * scale + bias, statistics per image and channel over H, W.

  A hand-written gradient: autodiff of the textbook form made XLA (CPU) emit
  several reductions per norm, each re-reading fused producer chains; this
  backward pass reads g and x_hat once for the two sums it needs, then writes
  dx once. The G L1 gradient took 25% less time and half the compile time.
  """
  return _instance_norm_fwd(x, scale, bias, eps)[0]


def _instance_norm_fwd(x, scale, bias, eps):
  mean = jnp.mean(x, axis=(1, 2), keepdims=True)
  centred = x - mean
  var = jnp.mean(centred * centred, axis=(1, 2), keepdims=True)  # biased, two-pass as torch
  inv_std = jax.lax.rsqrt(var + eps)
  x_hat = centred * inv_std
  return x_hat * scale + bias, (x_hat, inv_std, scale)


def _instance_norm_bwd(eps, residuals, g):
  del eps
  x_hat, inv_std, scale = residuals
  count = x_hat.shape[1] * x_hat.shape[2]
  sum_g = jnp.sum(g, axis=(1, 2), keepdims=True)
  sum_g_xhat = jnp.sum(g * x_hat, axis=(1, 2), keepdims=True)
  # d/dx of the normalisation: project out the mean and the x_hat direction.
  dx = (scale * inv_std) * (g - (sum_g + x_hat * sum_g_xhat) / count)
  # The param gradients sum the per-image sums over the batch as a product
  # with ones: written as a sum, XLA folds sum(sum(.)) into a second pass over
  # the full activation (as an unfused reduce-window on CPU), 4% of a block.
  # HIGHEST precision: TPUs and TF32 GPUs would otherwise round the operands.
  n, c = x_hat.shape[0], x_hat.shape[-1]
  batch_sum = lambda s: jnp.dot(jnp.ones((n,), s.dtype), s.reshape(n, c),
                                precision=jax.lax.Precision.HIGHEST)
  return dx, batch_sum(sum_g_xhat), batch_sum(sum_g)


instance_norm_nhwc.defvjp(_instance_norm_fwd, _instance_norm_bwd)


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
    y = instance_norm_nhwc(x.astype(stats_dtype), scale.astype(stats_dtype),
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
      x = KernelConv(self.features, upsample_conv3x3, use_bias=not self.norm,
                     dtype=self.dtype, name='conv2d')(x)
    elif (k, stride) == (3, 2):
      x = KernelConv(self.features, conv3x3_stride2, use_bias=not self.norm,
                     dtype=self.dtype, name='conv2d')(reflect_pad(x, 1))
    else:
      x = reflect_pad(x, k // 2)
      x = nn.Conv(
          self.features,
          (k, k),
          strides=stride,
          padding='VALID',
          use_bias=not self.norm,
          kernel_init=G_KERNEL_INIT,
          dtype=self.dtype,
          name='conv2d',
      )(x)
    if self.norm:
      x = InstanceNorm(affine=True, dtype=self.dtype, name='norm')(x)
    if self.activation:
      x = nn.leaky_relu(x, 0.2)
    return x


def _l2_normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
  """torch.nn.functional.normalize: x / max(||x||, eps)."""
  return x / jnp.maximum(jnp.linalg.norm(x), eps)


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
    kernel = self.param('kernel', TORCH_KERNEL_INIT, (k, k, cin, self.features), jnp.float32)
    bias = self.param('bias', torch_bias_init(fan_in), (self.features,), jnp.float32)
    u = self.variable(
        'spectral', 'u',
        lambda: _l2_normalize(jax.random.normal(self.make_rng('params'), (self.features,))))
    v = self.variable(
        'spectral', 'v',
        lambda: _l2_normalize(jax.random.normal(self.make_rng('params'), (fan_in,))))

    w_mat = _oihw_matrix(kernel)
    if train and not self.is_initializing():
      w_fixed = jax.lax.stop_gradient(w_mat)
      v_new = _l2_normalize(w_fixed.T @ u.value)
      u_new = _l2_normalize(w_fixed @ v_new)
      u.value, v.value = u_new, v_new
    u_vec = jax.lax.stop_gradient(u.value)
    v_vec = jax.lax.stop_gradient(v.value)
    sigma = jnp.dot(u_vec, w_mat @ v_vec)
    x, kernel = x.astype(self.dtype), (kernel / sigma).astype(self.dtype)
    if (k, self.stride) == (3, 2):
      y = conv3x3_stride2(x, kernel)
    else:
      y = jax.lax.conv_general_dilated(x, kernel, (self.stride, self.stride), 'VALID',
                                       dimension_numbers=_NHWC)
    return y + bias.astype(self.dtype)
