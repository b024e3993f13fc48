"""PIL's bicubic resize, bit for bit, for whole batches at once.

Pillow's 8-bit resampling (Resample.c) works in fixed point: integer weights
scaled by 2**22, and each pass (horizontal, then vertical) rounds its sums
back to uint8 as (sum + 2**21) >> 22 clipped to [0, 255]. pil_bicubic_batch
reproduces that with two matrix products per batch (exact in float64), which
is what makes the network input cheap enough for the input pipeline.
"""
import functools
import math

import numpy as np
from PIL import Image
import threadpoolctl

_PRECISION_BITS = 22


def pil_bicubic(image: np.ndarray, size: int) -> np.ndarray:
  """Image.resize((size, size), BICUBIC) of one HxWxC uint8 image (antialiased when shrinking)."""
  return np.asarray(Image.fromarray(image).resize((size, size), Image.BICUBIC), np.uint8)


def _bicubic_kernel(x: float) -> float:
  """Pillow's bicubic_filter (a = -0.5)."""
  x = abs(x)
  if x < 1.0:
    return (1.5 * x - 2.5) * x * x + 1.0
  if x < 2.0:
    return (((x - 5.0) * x + 8.0) * x - 4.0) * -0.5
  return 0.0


@functools.cache
def pil_bicubic_weights(in_size: int, out_size: int) -> np.ndarray:
  """Pillow's bicubic weights for in_size -> out_size as an (out, in) matrix, over 2**22.

  Resample.c's precompute_coeffs and normalize_coeffs_8bpc step for step: the
  kernel is widened by the scale when shrinking (antialiasing), each output's
  weights are divided by their sum, scaled by 2**22 and rounded half away from
  zero. Returned divided by 2**22 (exact, a power of two) so that a float64
  product gives Pillow's integer sum over 2**22 exactly: every term and
  partial sum is a multiple of 2**-22 with fewer than 53 significant bits.
  """
  scale = in_size / out_size
  filterscale = max(scale, 1.0)
  support = 2.0 * filterscale
  ss = 1.0 / filterscale  # C multiplies by the reciprocal; dividing can differ in the last bit
  weights = np.zeros((out_size, in_size))
  for i in range(out_size):
    center = (i + 0.5) * scale
    lo = max(int(center - support + 0.5), 0)
    hi = min(int(center + support + 0.5), in_size)
    w = [_bicubic_kernel((x - center + 0.5) * ss) for x in range(lo, hi)]
    total = 0.0
    for v in w:  # C's summation order, so the normalised weights match bit for bit
      total += v
    for x, v in zip(range(lo, hi), w):
      v = v / total if total != 0.0 else v
      weights[i, x] = math.trunc(v * (1 << _PRECISION_BITS) + (0.5 if v >= 0 else -0.5))
  return weights * 2.0 ** -_PRECISION_BITS


def _pil_round(acc: np.ndarray) -> np.ndarray:
  """floor(acc + 1/2) clipped to [0, 255] in place: Pillow's (sum + 2**21) >> 22."""
  acc += 0.5
  np.floor(acc, out=acc)
  return np.clip(acc, 0.0, 255.0, out=acc)


@functools.cache
def _horizontal_weights(in_size: int, out_size: int, channels: int) -> np.ndarray:
  """The horizontal pass on rows of interleaved channels: (in*C, out*C) weights.

  kron(weights.T, I_C) applies the (out, in) weights to each channel, so the
  pass over a whole batch is one matrix product.
  """
  return np.kron(pil_bicubic_weights(in_size, out_size).T, np.eye(channels))


@functools.cache
def _blas() -> threadpoolctl.ThreadpoolController:
  return threadpoolctl.ThreadpoolController()


def pil_bicubic_batch(u8: np.ndarray, size: int) -> np.ndarray:
  """(B, H, W, C) uint8 -> (B, size, size, C) float64 holding PIL BICUBIC's uint8 values.

  Equal to Image.resize((size, size), Image.BICUBIC) on each image, bit for
  bit, in two matrix products for the whole batch.
  """
  b, h, w, c = u8.shape
  # One BLAS thread: the products are small, and OpenBLAS's threads waiting
  # for a busy second core made them tens of times slower (measured).
  with _blas().limit(limits=1, user_api='blas'):
    rows = _pil_round(u8.reshape(b * h, w * c).astype(np.float64)
                      @ _horizontal_weights(w, size, c))
    out = np.matmul(pil_bicubic_weights(h, size), rows.reshape(b, h, size * c))
  return _pil_round(out).reshape(b, size, size, c)
