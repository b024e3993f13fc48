"""Face-SR metrics under one stated protocol (jnp; runs on any device).

The default protocol is DIC's (Ma et al., CVPR 2020), which the MRRNet paper's
tables follow:
  1. SR outputs are quantised as when saved to a uint8 PNG: clip to [-1, 1],
     map to [0, 255], round half to even (`quantize`, mode 'round'). HR images
     are uint8 already.
  2. Both images go to the Y channel of YCbCr (BT.601, studio swing):
     Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 on RGB in [0, 255],
     kept as float (not rounded). Channel order is RGB, never BGR.
  3. An 8-pixel border is cropped from every side.
  4. PSNR = 10 log10(255^2 / MSE) per image (inf for identical images, as in
     the reference code); SSIM with an 11x11 Gaussian window (sigma 1.5,
     normalised), K1 = 0.01, K2 = 0.03, L = 255, over the 'valid' region only
     (no padding), averaged over that map. Dataset figures are the mean of
     the per-image values.

Other protocols in the literature, as options:
  crop_border=0   no border crop (some face-SR papers).
  channel='rgb'   PSNR from the MSE over all three RGB channels; SSIM computed
                  per RGB channel and averaged (BasicSR's test_y_channel=False).
  quantize mode 'floor' truncates like pix2pix's tensor2im `.astype(uint8)`;
                  'none' scores the float output (mapped to [0, 255], clipped).

dm-pix also has PSNR/SSIM in JAX, but its PSNR takes [0, 1] images with a max
of 1 and neither converts colour nor crops; the protocol is short enough to
state here directly, without a further dependency.
"""
from typing import Tuple

import jax
import jax.numpy as jnp
import numpy as np

Y_WEIGHTS = (65.481, 128.553, 24.966)
Y_OFFSET = 16.0
DATA_RANGE = 255.0
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
QUANTIZE_MODES = ('round', 'floor', 'none')
CHANNELS = ('y', 'rgb')


def quantize(x: jax.Array, mode: str = 'round') -> jax.Array:
  """Network output in [-1, 1] -> float pixel values in [0, 255] as saved to PNG."""
  if mode not in QUANTIZE_MODES:
    raise ValueError(f'quantize mode must be one of {QUANTIZE_MODES}, got {mode!r}')
  x = (jnp.clip(x, -1.0, 1.0) + 1.0) / 2.0 * DATA_RANGE
  if mode == 'round':
    return jnp.round(x)
  if mode == 'floor':
    return jnp.floor(x)
  return x


def rgb_to_y(rgb: jax.Array) -> jax.Array:
  """[..., 3] RGB in [0, 255] -> [...] luma Y in [16, 235], unrounded float."""
  rgb = jnp.asarray(rgb, jnp.float32)
  w = jnp.asarray(Y_WEIGHTS, jnp.float32) / DATA_RANGE
  return Y_OFFSET + rgb @ w


def crop_border(x: jax.Array, border: int) -> jax.Array:
  """Drops `border` pixels from each side of the H, W axes of [N, H, W, ...]."""
  if border < 0:
    raise ValueError(f'crop border must be >= 0, got {border}')
  if border == 0:
    return x
  if 2 * border >= min(x.shape[1], x.shape[2]):
    raise ValueError(f'crop border {border} leaves nothing of a {x.shape[1]}x{x.shape[2]} image')
  return x[:, border:-border, border:-border]


def prepare(images: jax.Array, channel: str = 'y', border: int = 8) -> jax.Array:
  """[N, H, W, 3] RGB in [0, 255] -> [N, H', W', C] planes that get scored."""
  if channel not in CHANNELS:
    raise ValueError(f'channel must be one of {CHANNELS}, got {channel!r}')
  images = jnp.asarray(images, jnp.float32)
  planes = rgb_to_y(images)[..., None] if channel == 'y' else images
  return crop_border(planes, border)


def psnr(a: jax.Array, b: jax.Array) -> jax.Array:
  """Per-image PSNR in dB of [N, H, W, C] planes in [0, 255]; inf when equal."""
  diff = jnp.asarray(a, jnp.float32) - jnp.asarray(b, jnp.float32)
  mse = jnp.mean(jnp.square(diff), axis=(1, 2, 3))
  return 10.0 * jnp.log10(DATA_RANGE ** 2 / mse)


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
  """Normalised 1D Gaussian taps (cv2.getGaussianKernel / MATLAB fspecial)."""
  t = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
  g = np.exp(-t * t / (2.0 * sigma * sigma))
  return g / g.sum()


def _filter_valid(x: jax.Array, taps: np.ndarray) -> jax.Array:
  """Separable 'valid' Gaussian filtering of every channel of [N, H, W, C]."""
  channels = x.shape[-1]
  k = len(taps)
  taps = jnp.asarray(taps, jnp.float32)
  dn = ('NHWC', 'HWIO', 'NHWC')
  rows = jnp.tile(taps.reshape(k, 1, 1, 1), (1, 1, 1, channels))
  cols = jnp.tile(taps.reshape(1, k, 1, 1), (1, 1, 1, channels))
  conv = lambda v, w: jax.lax.conv_general_dilated(
      v, w, (1, 1), 'VALID', dimension_numbers=dn, feature_group_count=channels,
      precision=jax.lax.Precision.HIGHEST)
  return conv(conv(x, rows), cols)


def ssim(a: jax.Array, b: jax.Array) -> jax.Array:
  """Per-image SSIM of [N, H, W, C] planes in [0, 255], mean over valid map and channels.

  Statistics are taken about each image's own mean (filtering is linear, so
  this changes nothing mathematically) to keep float32 cancellation in
  E[x^2] - mu^2 small on planes with values near 200.
  """
  a = jnp.asarray(a, jnp.float32)
  b = jnp.asarray(b, jnp.float32)
  if min(a.shape[1], a.shape[2]) < SSIM_WINDOW:
    raise ValueError(f'SSIM needs planes of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, '
                     f'got {a.shape[1]}x{a.shape[2]}')
  ca = jnp.mean(a, axis=(1, 2, 3), keepdims=True)
  cb = jnp.mean(b, axis=(1, 2, 3), keepdims=True)
  a0, b0 = a - ca, b - cb
  taps = gaussian_window()
  stats = _filter_valid(jnp.concatenate([a0, b0, a0 * a0, b0 * b0, a0 * b0], axis=-1), taps)
  mu_a0, mu_b0, e_aa, e_bb, e_ab = jnp.split(stats, 5, axis=-1)
  var_a = e_aa - mu_a0 * mu_a0
  var_b = e_bb - mu_b0 * mu_b0
  cov = e_ab - mu_a0 * mu_b0
  mu_a, mu_b = mu_a0 + ca, mu_b0 + cb
  c1 = (SSIM_K1 * DATA_RANGE) ** 2
  c2 = (SSIM_K2 * DATA_RANGE) ** 2
  num = (2.0 * mu_a * mu_b + c1) * (2.0 * cov + c2)
  den = (mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2)
  return jnp.mean(num / den, axis=(1, 2, 3))


def psnr_ssim(sr: jax.Array, hr: jax.Array, channel: str = 'y',
              border: int = 8) -> Tuple[jax.Array, jax.Array]:
  """Per-image (PSNR, SSIM) of [N, H, W, 3] RGB images in [0, 255] under the protocol."""
  a, b = prepare(sr, channel, border), prepare(hr, channel, border)
  return psnr(a, b), ssim(a, b)
