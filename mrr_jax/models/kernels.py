"""Two forms of five building blocks, behind one switch: CPU kernels and plain forms.

On a 2-core CPU, XLA's autodiff of three of the network's operations cost far
more than their forward pass (docs/performance.md#cpu-kernels): the gradient
of reflect padding (several full-size intermediates per pad), of 3x3 stride-2
convolutions (a conv over a zero-dilated gradient) and of InstanceNorm
(several reductions re-reading fused producers). The CPU kernels here compute
the same values with less work there, and the up conv and the attention's
padded branch inputs take the forms that were fastest on that CPU. The plain
forms are what XLA compiles best for GPUs and TPUs (one fused pass per pad,
the up conv as one transposed conv). The CPU forms are used on the CPU backend
only, unless forced:

  config.kernels / MRR_JAX_KERNELS = 'auto' (CPU kernels on the CPU backend
  only; the default), 'cpu' (always), 'plain' (never).

The choice is made when a function is traced, and jit keeps one trace per
function: build the functions to jit after choosing (mrr_jax.train.setup does).
tests/test_kernels.py checks that both paths give the same values and
gradients.
"""
import contextlib
import functools
import os
from typing import Callable, Iterator, Optional

import jax
import jax.numpy as jnp

MODES = ('auto', 'cpu', 'plain')
ENV_VAR = 'MRR_JAX_KERNELS'
_mode: Optional[str] = None  # set_mode's choice; None: the environment's, else 'auto'.
_NHWC = ('NHWC', 'HWIO', 'NHWC')


def _check(mode: str) -> str:
  if mode not in MODES:
    raise ValueError(f'kernels mode must be one of {MODES}, got {mode!r} '
                     f'(config.kernels or ${ENV_VAR})')
  return mode


def set_mode(mode: Optional[str]) -> None:
  """Sets the mode for functions traced from now on; None: ${MRR_JAX_KERNELS} or 'auto'."""
  global _mode
  _mode = None if mode is None else _check(mode)


def mode() -> str:
  if _mode is not None:
    return _mode
  return _check(os.environ.get(ENV_VAR, 'auto') or 'auto')


@contextlib.contextmanager
def forced(new_mode: str) -> Iterator[None]:
  """Traces inside the block use `new_mode` (tests, lowering for other platforms)."""
  global _mode
  previous, _mode = _mode, _check(new_mode)
  try:
    yield
  finally:
    _mode = previous


def enabled() -> bool:
  """Whether the CPU kernels are used in what is traced now."""
  m = mode()
  return m == 'cpu' or (m == 'auto' and jax.default_backend() == 'cpu')


# ---------------------------------------------------------------- the switch


def reflect_pad(x: jax.Array, pad: int) -> jax.Array:
  """Pads H and W of NHWC by reflection (numpy 'reflect' == torch ReflectionPad2d)."""
  return reflect_pad_cpu(x, pad) if enabled() else mirror_pad(x, pad, 'reflect')


def reflect_pads_of(x: jax.Array, widest: int) -> Callable[[int], jax.Array]:
  """pad -> reflect_pad(x, pad) for pads up to widest: the inputs of the attention's parallel branches."""
  return reflect_pads_of_cpu(x, widest) if enabled() else functools.partial(reflect_pad, x)


def upsample_conv3x3(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """conv3x3(reflect_pad(nearest_x2(x), 1)), the authors' up conv, without building the x2 image."""
  return upsample_conv3x3_cpu(x, kernel) if enabled() else transposed_upsample_conv3x3(x, kernel)


def conv3x3_stride2(xp: jax.Array, kernel: jax.Array) -> jax.Array:
  """VALID 3x3 stride-2 conv of an already padded NHWC image (every down conv)."""
  return conv3x3_stride2_cpu(xp, kernel) if enabled() else _conv_stride2(xp, kernel)


def instance_norm(x: jax.Array, scale: jax.Array, bias: jax.Array, eps: float) -> jax.Array:
  """(x - mean) / sqrt(var + eps) * scale + bias, statistics per image and channel over H, W."""
  if enabled():
    return instance_norm_cpu(x, scale, bias, eps)
  return _instance_norm_fwd(x, scale, bias, eps)[0]


# ---------------------------------------------------------------- the plain forms
#
# What XLA compiles best for GPUs and TPUs, read off the optimized HLO XLA
# writes for an H200 (docs/performance.md#the-plain-forms): each saves whole
# passes over an activation.


def _mirrored_pieces(size: int, pad: int, mode: str):
  """(start, stop, flipped, offset in the padded axis) of the three pieces of one padded axis.

  The border before, the axis itself, the border after. 'reflect' mirrors
  about the edge row (torch ReflectionPad2d); 'symmetric' repeats it, which
  for a pad of 1 is edge padding.
  """
  skip = 1 if mode == 'reflect' else 0
  return ((skip, skip + pad, True, 0), (0, size, False, pad),
          (size - skip - pad, size - skip, True, pad + size))


def mirror_pad(x: jax.Array, pad: int, mode: str) -> jax.Array:
  """jnp.pad(x, mode=mode) of H and W (mode 'reflect' or 'symmetric'), as one fused pass.

  The padded image is written as a sum of nine zero-padded pieces (rows
  before/inside/after by columns before/inside/after), which XLA fuses into
  one kernel, usually with the producer of x. jnp.pad's concatenations
  compiled to two kernels per pad for a GPU, rows and then columns, each
  reading and writing the whole image.
  """
  if pad == 0:
    return x
  _, rows, cols, _ = x.shape
  zero = jnp.zeros((), x.dtype)
  padded = None
  for r0, r1, r_flip, r_at in _mirrored_pieces(rows, pad, mode):
    for c0, c1, c_flip, c_at in _mirrored_pieces(cols, pad, mode):
      piece = x[:, r0:r1, c0:c1]
      flip_axes = (1,) * r_flip + (2,) * c_flip
      piece = jnp.flip(piece, flip_axes) if flip_axes else piece
      placed = jax.lax.pad(piece, zero, ((0, 0, 0),
                                         (r_at, rows + 2 * pad - r_at - (r1 - r0), 0),
                                         (c_at, cols + 2 * pad - c_at - (c1 - c0), 0),
                                         (0, 0, 0)))
      padded = placed if padded is None else padded + placed
  return padded


def _up_kernel(kernel: jax.Array) -> jax.Array:
  """3x3 HWIO kernel (I, O) -> the 4x4 HWIO kernel (O, I) of _stride2_conv4x4 whose transpose is the up conv.

  Output row 2i+a of the up conv reads edge-padded input rows (i, i+1) with
  taps [w0, w1+w2] for a=0 and (i+1, i+2) with [w0+w1, w2] for a=1
  (upsample_conv3x3_cpu). A stride-2 conv with padding 3 and taps
  [w2, w1+w2, w0+w1, w0] pairs the same rows and taps the other way round.
  """
  def fold(k, axis):
    w0, w1, w2 = jnp.split(k, 3, axis=axis)
    return jnp.concatenate([w2, w1 + w2, w0 + w1, w0], axis)
  return jnp.swapaxes(fold(fold(kernel, 0), 1), 2, 3)


def _stride2_conv4x4(g: jax.Array, kernel4: jax.Array) -> jax.Array:
  """(n, 2h, 2w, O) -> (n, h + 2, w + 2, I): the conv the up conv is the transpose of."""
  return jax.lax.conv_general_dilated(g, kernel4, (2, 2), ((3, 3), (3, 3)),
                                      dimension_numbers=_NHWC)


@jax.custom_vjp
def _transposed_conv(xp: jax.Array, kernel4: jax.Array) -> jax.Array:
  n, rows, cols, _ = xp.shape
  out = jax.ShapeDtypeStruct((n, 2 * rows - 4, 2 * cols - 4, kernel4.shape[2]), xp.dtype)
  return jax.linear_transpose(lambda g: _stride2_conv4x4(g, kernel4), out)(xp)[0]


def _transposed_conv_fwd(xp, kernel4):
  return _transposed_conv(xp, kernel4), (xp, kernel4)


def _transposed_conv_bwd(residuals, g):
  # y = A(kernel4)^T xp with A the stride-2 conv, so <g, y> = <A(kernel4) g, xp>:
  # both gradients are the stride-2 conv's own (its output, its kernel
  # gradient), the forms XLA maps to cuDNN's forward and backward-filter
  # convs. Autodiff of the transpose instead reached a kernel gradient with a
  # reversed window, which XLA ran as a forward conv with a 66x66 filter.
  xp, kernel4 = residuals
  dkernel4 = jax.vjp(lambda k: _stride2_conv4x4(g, k), kernel4)[1](xp)[0]
  return _stride2_conv4x4(g, kernel4), dkernel4

_transposed_conv.defvjp(_transposed_conv_fwd, _transposed_conv_bwd)


def transposed_upsample_conv3x3(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """The up conv as one stride-2 transposed conv of the edge-padded input.

  The same 16 multiply-adds per output pixel as the four phase convs of
  upsample_conv3x3_cpu, in one conv that writes the interleaved image
  itself (cuDNN's backward-data conv): no four phase inputs cut from the
  padded image, no interleaving pass, forward or gradient.
  """
  return _transposed_conv(mirror_pad(x, 1, 'symmetric'), _up_kernel(kernel))


# ---------------------------------------------------------------- the CPU kernels


def _reflect_pad_plain(x: jax.Array, pad: int) -> jax.Array:
  if pad == 0:
    return x
  return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode='reflect')


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def reflect_pad_cpu(x: jax.Array, pad: int) -> jax.Array:
  """Pads H and W by reflection (numpy 'reflect' == torch ReflectionPad2d).

  The gradient folds the padded border back onto the rows and columns it
  mirrors, in one fused pass per axis; autodiff of jnp.pad's reflect mode
  made XLA (CPU) write several full-size intermediates per pad instead.
  """
  return _reflect_pad_plain(x, pad)


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
  return _reflect_pad_plain(x, pad), None


def _reflect_pad_bwd(pad, _, g):
  if pad == 0:
    return (g,)
  return (_fold_reflected(_fold_reflected(g, pad, 1), pad, 2),)

reflect_pad_cpu.defvjp(_reflect_pad_fwd, _reflect_pad_bwd)


def reflect_pads_of_cpu(x: jax.Array, widest: int) -> Callable[[int], jax.Array]:
  """One reflect pad by widest whose windows serve every smaller pad (a pad of 0 is x itself).

  Padding by P and cropping P - p equals padding by p, so there is one pad
  and one gradient fold instead of one per branch.
  """
  padded = reflect_pad_cpu(x, widest)
  crop = lambda o: padded[:, o:padded.shape[1] - o, o:padded.shape[2] - o]
  return lambda pad: x if pad == 0 else crop(widest - pad)


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


def upsample_conv3x3_cpu(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """conv3x3(reflect_pad(nearest_x2(x), 1)) as four 2x2 phase convs, without the x2 image.

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
  conv = lambda v, kk: jax.lax.conv_general_dilated(v, kk, (1, 1), 'VALID', dimension_numbers=_NHWC)
  # Phase a reads padded rows [a, a + h + 1); likewise columns.
  phases = [[conv(xp[:, a:a + h + 1, b:b + w + 1], k[a, b]) for b in (0, 1)] for a in (0, 1)]
  y = jnp.stack([jnp.stack(row, axis=3) for row in phases], axis=2)  # (n, h, 2, w, 2, o)
  return y.reshape(n, 2 * h, 2 * w, kernel.shape[-1])


def _conv_stride2(xp: jax.Array, kernel: jax.Array) -> jax.Array:
  return jax.lax.conv_general_dilated(xp, kernel, (2, 2), 'VALID', dimension_numbers=_NHWC)


@jax.custom_vjp
def conv3x3_stride2_cpu(xp: jax.Array, kernel: jax.Array) -> jax.Array:
  """VALID 3x3 stride-2 conv of an already padded NHWC image (every down conv).

  Same forward as lax; the input gradient of large ones is computed by output
  parity (stride2_input_grad) instead of XLA's conv over a zero-dilated
  gradient, which on CPU took 1.5-4x as long.
  """
  return _conv_stride2(xp, kernel)


def stride2_input_grad(g: jax.Array, kernel: jax.Array, height: int, width: int) -> jax.Array:
  """Gradient of conv3x3_stride2_cpu with respect to its (height, width) input.

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

conv3x3_stride2_cpu.defvjp(_conv3x3_stride2_fwd, _conv3x3_stride2_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def instance_norm_cpu(x: jax.Array, scale: jax.Array, bias: jax.Array, eps: float) -> jax.Array:
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


def instance_norm_grad(g: jax.Array, x_hat: jax.Array, inv_std: jax.Array, scale: jax.Array):
  """(dx, per-image sum of g, per-image sum of g * x_hat) of y = x_hat * scale + bias.

  The two sums read g and x_hat once; the param gradients are their batch
  sums, which each caller takes its own way. Shared by the CPU kernel and the
  bfloat16 norm (layers.instance_norm_keeping_input).
  """
  count = x_hat.shape[1] * x_hat.shape[2]
  sum_g = jnp.sum(g, axis=(1, 2), keepdims=True)
  sum_g_xhat = jnp.sum(g * x_hat, axis=(1, 2), keepdims=True)
  # d/dx of the normalisation: project out the mean and the x_hat direction.
  dx = (scale * inv_std) * (g - (sum_g + x_hat * sum_g_xhat) / count)
  return dx, sum_g, sum_g_xhat


def _instance_norm_bwd(eps, residuals, g):
  del eps
  x_hat, inv_std, scale = residuals
  dx, sum_g, sum_g_xhat = instance_norm_grad(g, x_hat, inv_std, scale)
  # The param gradients sum the per-image sums over the batch as a product
  # with ones: written as a sum, XLA folds sum(sum(.)) into a second pass over
  # the full activation (as an unfused reduce-window on CPU), 4% of a block.
  # HIGHEST precision: TPUs and TF32 GPUs would otherwise round the operands.
  n, c = x_hat.shape[0], x_hat.shape[-1]
  batch_sum = lambda s: jnp.dot(jnp.ones((n,), s.dtype), s.reshape(n, c),
                                precision=jax.lax.Precision.HIGHEST)
  return dx, batch_sum(sum_g_xhat), batch_sum(sum_g)

instance_norm_cpu.defvjp(_instance_norm_fwd, _instance_norm_bwd)
