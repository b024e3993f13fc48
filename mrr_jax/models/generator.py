"""MRRNet generator as the authors' code builds it (docs/architecture.md#generator).

Input: the 16x16 LR face bicubic-upsampled to 128x128, NHWC in [-1, 1].
Output: NHWC, linear (no tanh/clamp). Attention maps are sown into the
'intermediates' collection under '<block>/att_map' (shape (N, H, W, 1)).
"""
from typing import Any, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from mrr_jax.models import kernels
from mrr_jax.models.layers import InstanceNorm, PadConv

Dtype = Any
ATTENTION_TYPES = ('mrr', 'cbam', 'none')


class MultiscaleAttention(nn.Module):
  """Multiscale receptive-field spatial attention (the code's att_func).

  Parallel convs with the given kernel sizes (reflect-padded, with bias), each
  giving channels/len(kernels) maps, concatenated in kernel order -> ReLU ->
  InstanceNorm without affine -> PadConv 3x3 to one channel -> sigmoid.
  """

  kernels: Tuple[int, ...] = (1, 3, 5, 7)
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, h: jax.Array) -> jax.Array:
    branch_width = h.shape[-1] // len(self.kernels)
    padded = kernels.reflect_pads_of(h, max(self.kernels) // 2)
    feats = [nn.Conv(branch_width, (k, k), padding='VALID', dtype=self.dtype,
                     name=f'feature_extract_{k}')(padded(k // 2))
             for k in self.kernels]
    a = nn.relu(jnp.concatenate(feats, axis=-1))
    a = InstanceNorm(affine=False, dtype=self.dtype, name='norm')(a)
    a = PadConv(1, 3, dtype=self.dtype, name='out_block')(a)
    return nn.sigmoid(a)


class CBAM(nn.Module):
  """CBAM (Woo et al. 2018) for the paper's MRR-CBAM comparison.

  Returns (channel-refined h, spatial map); the block then gates with the map
  exactly as it gates with the MRR map, so only the attention differs.
  """

  reduction: int = 16
  spatial_kernel: int = 7
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, h: jax.Array) -> Tuple[jax.Array, jax.Array]:
    channels = h.shape[-1]
    hidden = max(channels // self.reduction, 1)
    mlp_in = nn.Dense(hidden, dtype=self.dtype, name='mlp_in')
    mlp_out = nn.Dense(channels, dtype=self.dtype, name='mlp_out')
    mlp = lambda z: mlp_out(nn.relu(mlp_in(z)))
    avg = jnp.mean(h, axis=(1, 2), keepdims=True)
    mx = jnp.max(h, axis=(1, 2), keepdims=True)
    h = h * nn.sigmoid(mlp(avg) + mlp(mx))
    pooled = jnp.concatenate(
        [jnp.mean(h, axis=-1, keepdims=True), jnp.max(h, axis=-1, keepdims=True)], axis=-1)
    a = PadConv(1, self.spatial_kernel, dtype=self.dtype, name='spatial')(pooled)
    return h, nn.sigmoid(a)


class ResBlock(nn.Module):
  """Pre-activation residual block with spatial attention on the residual branch.

  mode: 'down' (stride-2 conv2), 'up' (nearest x2 before conv1), 'none'.
  out = shortcut(x) + h * a, shortcut an identity only for mode 'none' with
  equal widths, else a 3x3 PadConv with bias (a learned shortcut the paper's
  eq. 6 does not write).
  """

  features: int
  mode: str = 'none'
  attention: str = 'mrr'
  att_kernels: Tuple[int, ...] = (1, 3, 5, 7)
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    down, up = self.mode == 'down', self.mode == 'up'
    if self.mode == 'none' and x.shape[-1] == self.features:
      shortcut = x
    else:
      shortcut = PadConv(self.features, 3, stride=2 if down else 1, upsample=up,
                         dtype=self.dtype, name='shortcut_func')(x)
    h = nn.leaky_relu(InstanceNorm(affine=True, dtype=self.dtype, name='preact_norm')(x), 0.2)
    h = PadConv(self.features, 3, upsample=up, norm=True, activation=True,
                dtype=self.dtype, name='conv1')(h)
    h = PadConv(self.features, 3, stride=2 if down else 1, norm=True,
                dtype=self.dtype, name='conv2')(h)
    if self.attention == 'none':
      return shortcut + h
    if self.attention == 'mrr':
      a = MultiscaleAttention(self.att_kernels, dtype=self.dtype, name='att_func')(h)
    else:
      h, a = CBAM(dtype=self.dtype, name='att_func')(h)
    self.sow('intermediates', 'att_map', a)
    return shortcut + h * a


def stage_widths(base_channels: int, max_channels: int, num_down: int) -> Sequence[int]:
  """Widths per resolution level: base*2**i clipped to [base, max] (the code's ch_clip)."""
  return [min(max(base_channels * 2 ** i, base_channels), max_channels) for i in range(num_down + 1)]


class MRRNet(nn.Module):
  """The generator. Defaults equal the authors' MRRNet(res_depth=10, 'in', 'mrr', 4).

  Ablations: att_kernels (e.g. (1, 3), (5, 7), (1, 7)); attention='none' (w/o SA);
  attention='cbam' (MRR-CBAM). base_channels/max_channels/num_res for tiny models.
  """

  base_channels: int = 32
  max_channels: int = 128
  num_down: int = 3
  num_res: int = 10
  attention: str = 'mrr'
  att_kernels: Tuple[int, ...] = (1, 3, 5, 7)
  out_channels: int = 3
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if self.attention not in ATTENTION_TYPES:
      raise ValueError(f'attention must be one of {ATTENTION_TYPES}, got {self.attention!r}')
    if not self.att_kernels or any(k % 2 != 1 for k in self.att_kernels):
      raise ValueError(f'att_kernels must be odd sizes, got {self.att_kernels!r}')
    widths = stage_widths(self.base_channels, self.max_channels, self.num_down)
    block = lambda feats, mode, name: ResBlock(
        feats, mode, self.attention, tuple(self.att_kernels), dtype=self.dtype, name=name)
    x = PadConv(widths[0], 3, dtype=self.dtype, name='encoder_0')(x.astype(self.dtype))
    for i in range(self.num_down):
      x = block(widths[i + 1], 'down', f'encoder_{i + 1}')(x)
    for i in range(self.num_res):
      x = block(widths[-1], 'none', f'res_layers_{i}')(x)
    for i in range(self.num_down):
      x = block(widths[self.num_down - i - 1], 'up', f'decoder_{i}')(x)
    x = PadConv(self.out_channels, 3, dtype=self.dtype, name='out_conv')(x)
    return x.astype(jnp.promote_types(self.dtype, jnp.float32))
