"""VGG19 `features` for the perceptual loss (torchvision layout, NHWC).

docs/architecture.md#perceptual-loss: the taps the authors' code effectively compares are
relu1_2, relu2_2, relu3_4, relu4_4 (post-ReLU; torchvision's in-place ReLUs
overwrite the pre-ReLU slices it stores) and conv5_4 pre-ReLU.
`post_relu_taps=False` gives the literal pre-ReLU reading (a negative control).
"""
import math
from typing import Any, List, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Dtype = Any

# (name, width) per conv; 'M' marks a 2x2 max-pool. torchvision index in comments.
VGG19_LAYERS = (
    ('conv1_1', 64), ('conv1_2', 64), 'M',                                     # 0, 2
    ('conv2_1', 128), ('conv2_2', 128), 'M',                                   # 5, 7
    ('conv3_1', 256), ('conv3_2', 256), ('conv3_3', 256), ('conv3_4', 256), 'M',  # 10..16
    ('conv4_1', 512), ('conv4_2', 512), ('conv4_3', 512), ('conv4_4', 512), 'M',  # 19..25
    ('conv5_1', 512), ('conv5_2', 512), ('conv5_3', 512), ('conv5_4', 512),       # 28..34
)
TAP_LAYERS = ('conv1_2', 'conv2_2', 'conv3_4', 'conv4_4', 'conv5_4')
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Keras applications' VGG19 ('caffe' mode): BGR in 0..255 minus these means.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
VGG_INPUT_SIZE = 224
PREPROCESS_MODES = ('torch', 'caffe')


def torchvision_feature_indices() -> List[Tuple[str, int]]:
  """(flax conv name, torchvision `features` index) for the 16 convs."""
  out, idx = [], 0
  for layer in VGG19_LAYERS:
    if layer == 'M':
      idx += 1
    else:
      out.append((layer[0], idx))
      idx += 2  # conv, relu
  return out


def preprocess(x: jax.Array, mode: str = 'torch') -> jax.Array:
  """[-1,1] NHWC -> VGG input, bilinearly resized to 224 when smaller.

  mode 'torch': torchvision weights (RGB in [0,1], ImageNet mean/std), as the
  authors' code; 'caffe': Keras applications weights (BGR 0..255 minus mean).
  """
  x = (x + 1.0) / 2.0
  if mode == 'torch':
    # float32 constants as the authors' code makes them (torch.Tensor(...).to(x)), so a
    # float64 run matches theirs to rounding (docs/golden.md#two-training-iterations).
    mean = jnp.asarray(np.float32(IMAGENET_MEAN), x.dtype)
    std = jnp.asarray(np.float32(IMAGENET_STD), x.dtype)
    x = (x - mean) / std
  elif mode == 'caffe':
    x = x[..., ::-1] * 255.0 - jnp.asarray(CAFFE_MEAN_BGR)
  else:
    raise ValueError(f'VGG preprocess mode must be one of {PREPROCESS_MODES}, got {mode!r}')
  if x.shape[2] < VGG_INPUT_SIZE:
    x = bilinear_upsample(x, VGG_INPUT_SIZE)
  return x


def bilinear_upsample(x: jax.Array, size: int) -> jax.Array:
  """NHWC -> (N, size, size, C) as torch's interpolate(bilinear, align_corners=False).

  Half-pixel centres, edge samples clamped, no antialiasing: what
  jax.image.resize(..., 'bilinear', antialias=False) computes when enlarging,
  but from strided slices and a lerp instead of its two float32 HIGHEST-precision
  contractions per image, which TPUs run as six bf16 passes and which XLA's GPU
  compiler failed to tile for VGG's input at 128 images per device.
  """
  return _upsample_axis(_upsample_axis(x, 1, size), 2, size)


def _upsample_axis(x: jax.Array, axis: int, out_size: int) -> jax.Array:
  """Bilinear enlargement along one axis, as periods of whole input and output samples.

  in/out = step/phases in lowest terms (128 -> 224: 4 inputs make 7 outputs), so
  output k * phases + p reads inputs k * step + left[p] and one after it, with
  the same weight frac[p] for every k: one stride-`step` slice per phase and
  neighbour. The edge samples repeat once on each side, which is torch's clamp.
  """
  in_size = x.shape[axis]
  if out_size < in_size:
    raise ValueError(f'bilinear_upsample enlarges: {in_size} -> {out_size}')
  periods = math.gcd(in_size, out_size)
  step, phases = in_size // periods, out_size // periods
  source = (np.arange(phases) + 0.5) * (in_size / out_size) - 0.5
  left = np.floor(source).astype(int)  # -1 before the first sample's centre: its repeat
  frac = source - left
  edges = (jax.lax.slice_in_dim(x, 0, 1, axis=axis),
           jax.lax.slice_in_dim(x, in_size - 1, in_size, axis=axis))
  padded = jnp.concatenate([edges[0], x, edges[1]], axis=axis)

  def every_period(first):  # padded index first + 1 is input index first
    start = first + 1
    return jax.lax.slice_in_dim(padded, start, start + step * (periods - 1) + 1, step, axis)

  outputs = [every_period(l) if t == 0 else
             every_period(l) * (1 - t).astype(x.dtype) + every_period(l + 1) * t.astype(x.dtype)
             for l, t in zip(left, frac)]
  shape = x.shape[:axis] + (out_size,) + x.shape[axis + 1:]
  return jnp.stack(outputs, axis=axis + 1).reshape(shape)


def max_pool_2x2(x: jax.Array) -> jax.Array:
  """2x2 max pool, stride 2, on even H and W (as nn.max_pool(x, (2, 2), (2, 2))).

  Written as a reshape and a max so its gradient is a compare-and-select rather
  than XLA's select-and-scatter, which cost 15% of the perceptual-loss gradient
  on CPU. Exact ties split the gradient instead of picking one input; ties
  happen in practice at the zeros of the preceding ReLU, which zeroes their
  gradient anyway.
  """
  n, h, w, c = x.shape
  return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


class VGG19Features(nn.Module):
  """Returns the five perceptual taps for an already preprocessed batch."""

  post_relu_taps: bool = True
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> List[jax.Array]:
    taps = []
    x = x.astype(self.dtype)
    for layer in VGG19_LAYERS:
      if layer == 'M':
        x = max_pool_2x2(x)
        continue
      name, width = layer
      x = nn.Conv(width, (3, 3), padding=((1, 1), (1, 1)), dtype=self.dtype, name=name)(x)
      pre = x
      x = nn.relu(x)
      if name in TAP_LAYERS:
        # conv5_4 is the last slice: nothing overwrites it, so it stays pre-ReLU.
        taps.append(x if (self.post_relu_taps and name != 'conv5_4') else pre)
      if name == TAP_LAYERS[-1]:
        break
    return [t.astype(jnp.promote_types(self.dtype, jnp.float32)) for t in taps]
