"""The authors' patch discriminator (docs/architecture.md#discriminator).

Four reflect-padded spectral-norm stride-2 3x3 convs with bias and LeakyReLU
0.2 (3->32->64->128->256, 128->8 pixels), then a reflect-padded 3x3 conv with
no bias and no spectral norm and a tanh: an (N, 8, 8, 1) map in (-1, 1).
Spectral-norm vectors live in the mutable 'spectral' collection.
"""
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from mrr_jax.models.layers import SpectralNormConv, reflect_pad

Dtype = Any


class Discriminator(nn.Module):
  widths: Sequence[int] = (32, 64, 128, 256)
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    x = x.astype(self.dtype)
    for i, width in enumerate(self.widths):
      x = SpectralNormConv(width, 3, stride=2, dtype=self.dtype, name=f'd{i + 1}')(
          reflect_pad(x, 1), train)
      x = nn.leaky_relu(x, 0.2)
    x = nn.Conv(1, (3, 3), padding='VALID', use_bias=False,
                dtype=self.dtype, name='d4_pred')(reflect_pad(x, 1))
    return jnp.tanh(x).astype(jnp.promote_types(self.dtype, jnp.float32))
