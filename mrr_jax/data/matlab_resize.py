"""MATLAB's imresize(I, scale, 'bicubic') in numpy, for LR images made the MATLAB way.

Much of the SR literature (BasicSR's benchmarks among it) makes LR images with
MATLAB's bicubic imresize, which differs from PIL's and OpenCV's bicubic: it
widens the kernel when shrinking (antialiasing), maps output to input
coordinates with pixel centres aligned, and folds taps outside the image back
into it. The DIC face test pairs are not among them: their 16x16 LR files are
PIL's bicubic of the 128x128 HR, bit for bit (checked on 200 CelebA pairs), so
they need PIL, not this. This module reproduces MATLAB's algorithm (its
`contributions` and `resizeAlongDim` steps) so such LR images can be made
without MATLAB:

  * the cubic convolution kernel of Keys (1981) with a = -0.5, width 4;
  * when shrinking by s < 1 the kernel is stretched to s * k(s * x) and its
    width to 4 / s;
  * output pixel x (1-based) samples input coordinate u = x / s + (1 - 1 / s) / 2;
  * taps outside the image read the image mirrored with the edge pixel
    repeated (MATLAB's [1:n, n:-1:1] index table; border='symmetric'). Older
    MATLAB releases (the imresize.m of 2013 and earlier) clamped them to the
    edge pixel instead; border='replicate' gives those results, which are
    what most MATLAB outputs published before the change show;
  * the weights of each output pixel are normalised to sum to 1;
  * the dimension with the smaller scale is resized first (rows on a tie);
  * an integer image is rounded (half away from zero) and saturated to its
    type after each dimension, as MATLAB's imresize returns the input's class
    from each pass. Float images are computed in float64 and returned in their
    own dtype, unclipped (MATLAB does not clip doubles).
"""
import math
from typing import Sequence, Tuple, Union

import numpy as np

KERNEL_WIDTH = 4.0
BORDERS = ('symmetric', 'replicate')

Size = Union[float, int, Sequence[int]]


def cubic(x: np.ndarray) -> np.ndarray:
  """Keys' cubic convolution kernel with a = -0.5, as MATLAB's imresize defines it."""
  ax = np.abs(np.asarray(x, np.float64))
  ax2, ax3 = ax * ax, ax * ax * ax
  inner = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
  outer = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
  return inner + outer


def contributions(in_length: int, out_length: int, scale: float, antialiasing: bool = True,
                  border: str = 'symmetric') -> Tuple[np.ndarray, np.ndarray]:
  """(weights, indices), each [out_length, taps]: output i = sum_t w[i, t] * input[idx[i, t]].

  Indices are 0-based and already folded into the image (see `fold_index`).
  Taps whose weight is zero for every output are dropped, as MATLAB drops
  them (it changes nothing but the work).
  """
  if scale < 1 and antialiasing:
    kernel = lambda d: scale * cubic(scale * d)  # A low-pass as wide as the output pixel.
    width = KERNEL_WIDTH / scale
  else:
    kernel, width = cubic, KERNEL_WIDTH
  x = np.arange(1, out_length + 1, dtype=np.float64)
  u = x / scale + 0.5 * (1.0 - 1.0 / scale)  # 1-based input coordinate of each output.
  left = np.floor(u - width / 2.0)
  taps = int(math.ceil(width)) + 2
  index = left[:, None] + np.arange(taps)[None, :]  # 1-based, may fall outside [1, n].
  weights = kernel(u[:, None] - index)
  weights = weights / weights.sum(axis=1, keepdims=True)
  index = fold_index(index.astype(np.int64), in_length, border)
  used = np.any(weights != 0, axis=0)
  return weights[:, used], index[:, used]


def fold_index(index: np.ndarray, length: int, border: str) -> np.ndarray:
  """1-based indices, possibly outside [1, length], as 0-based indices inside the image."""
  if border == 'symmetric':  # MATLAB's aux = [1:n, n:-1:1]; aux(mod(index - 1, 2n) + 1).
    mirror = np.concatenate([np.arange(length), np.arange(length)[::-1]])
    return mirror[np.mod(index - 1, 2 * length)]
  if border == 'replicate':  # Older MATLAB: min(max(1, index), n).
    return np.clip(index, 1, length) - 1
  raise ValueError(f'imresize: border must be one of {BORDERS}, got {border!r}')


def _round_to(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
  """MATLAB's conversion of doubles to an integer class: round half away from zero, saturate."""
  info = np.iinfo(dtype)
  rounded = np.sign(values) * np.floor(np.abs(values) + 0.5)
  return np.clip(rounded, info.min, info.max).astype(dtype)


def _resize_axis(image: np.ndarray, axis: int, weights: np.ndarray,
                 index: np.ndarray) -> np.ndarray:
  """One dimension's pass, summed tap by tap in float64; integer inputs come back rounded."""
  moved = np.moveaxis(image, axis, 0).astype(np.float64)
  out = np.zeros((weights.shape[0],) + moved.shape[1:], np.float64)
  extra = (1,) * (moved.ndim - 1)
  for t in range(weights.shape[1]):
    out += weights[:, t].reshape((-1,) + extra) * moved[index[:, t]]
  out = np.moveaxis(out, 0, axis)
  if np.issubdtype(image.dtype, np.integer):
    return _round_to(out, image.dtype)
  return out


def output_shape_and_scales(in_shape: Tuple[int, int],
                            size: Size) -> Tuple[Tuple[int, int], Tuple[float, float]]:
  """MATLAB's two ways to ask: a scale (output ceil(scale * n)) or an output [rows, cols]."""
  if np.ndim(size) == 0:
    scale = float(size)
    if not scale > 0:
      raise ValueError(f'imresize: the scale must be > 0, got {size!r}')
    out = tuple(int(math.ceil(scale * n)) for n in in_shape)
    return out, (scale, scale)
  out = tuple(int(n) for n in size)
  if len(out) != 2 or min(out) < 1 or any(int(n) != n for n in size):
    raise ValueError(f'imresize: an output size must be two positive integers, got {size!r}')
  return out, (out[0] / in_shape[0], out[1] / in_shape[1])


def imresize(image: np.ndarray, size: Size, antialiasing: bool = True,
             border: str = 'symmetric') -> np.ndarray:
  """MATLAB's imresize(image, size, 'bicubic') of an HxW or HxWxC array.

  Args:
    image: uint8 (or another integer type) or float array, HxW or HxWxC.
    size: a scale factor (e.g. 1 / 8) or an output size (rows, cols).
    antialiasing: MATLAB's 'Antialiasing' option (on by default for bicubic);
      it only matters when shrinking.
    border: 'symmetric' (current MATLAB) or 'replicate' (MATLAB's imresize.m
      of 2013 and earlier); they differ only within a kernel radius of the
      image edge.

  Returns:
    The resized array in the input's dtype.
  """
  image = np.asarray(image)
  if image.ndim not in (2, 3):
    raise ValueError(f'imresize: expected HxW or HxWxC, got shape {image.shape}')
  if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
    raise ValueError(f'imresize: expected an integer or float image, got {image.dtype}')
  out_shape, scales = output_shape_and_scales(image.shape[:2], size)
  out = image
  for axis in sorted((0, 1), key=lambda a: scales[a]):  # Stable: rows first on a tie.
    weights, index = contributions(image.shape[axis], out_shape[axis], scales[axis],
                                   antialiasing, border)
    out = _resize_axis(out, axis, weights, index)
  return out.astype(image.dtype, copy=False)
