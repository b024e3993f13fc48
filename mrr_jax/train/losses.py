"""Losses as the authors' code computes them (docs/architecture.md#losses), pure functions.

`axis_name`: under pmap, batch means that the relativistic loss compares
against are taken over the global batch (lax.pmean), so N devices compute the
same loss as one device with the whole batch. Every mean here is over
equal-sized per-device shards, so pmean of local means is the global mean.
"""
from typing import Optional, Sequence

import jax
import jax.numpy as jnp

from mrr_jax.models import vgg

PERCEPTUAL_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)


def global_mean(x: jax.Array, axis_name: Optional[str] = None) -> jax.Array:
  """Mean over all elements, and over devices when `axis_name` is given."""
  m = jnp.mean(x)
  return jax.lax.pmean(m, axis_name) if axis_name else m


def l1_loss(sr: jax.Array, hr: jax.Array, axis_name: Optional[str] = None) -> jax.Array:
  """Mean |sr - hr| over all elements."""
  return global_mean(jnp.abs(sr - hr), axis_name)


def _rahinge(real: jax.Array, fake: jax.Array, sign: float, halved: bool,
             axis_name: Optional[str]) -> jax.Array:
  mean_real = global_mean(real, axis_name)
  mean_fake = global_mean(fake, axis_name)
  loss = (global_mean(jax.nn.relu(1.0 - sign * (real - mean_fake)), axis_name)
          + global_mean(jax.nn.relu(1.0 + sign * (fake - mean_real)), axis_name))
  return 0.5 * loss if halved else loss


def rahinge_d_loss(real: jax.Array, fake: jax.Array, halved: bool = True,
                   axis_name: Optional[str] = None) -> jax.Array:
  """Relativistic average hinge loss for D.

  0.5 * [mean relu(1 - (r - mean f)) + mean relu(1 + (f - mean r))]; the code's
  0.5 factor is the default, `halved=False` gives the paper's eq. 8.
  """
  return _rahinge(real, fake, 1.0, halved, axis_name)


def rahinge_g_loss(real: jax.Array, fake: jax.Array, halved: bool = True,
                   axis_name: Optional[str] = None) -> jax.Array:
  """Relativistic average hinge loss for G (roles swapped; paper's eq. 9 unhalved)."""
  return _rahinge(real, fake, -1.0, halved, axis_name)


def perceptual_taps(vgg_apply, sr: jax.Array, hr: jax.Array, axis_name: Optional[str] = None,
                    preprocess_mode: str = 'torch') -> Sequence[jax.Array]:
  """Unweighted mean |F_i(sr) - F_i(hr)| per tap; HR features carry no gradient.

  vgg_apply: images already preprocessed -> list of five taps (a bound
  VGG19Features apply). sr, hr: NHWC in [-1, 1]. preprocess_mode: see
  vgg.preprocess ('caffe' for Keras weights).
  """
  # Two VGG calls, not one on the stacked pair: backprop then runs through the
  # SR images only (about 28% less time for the GAN step's perceptual gradient).
  feats_sr = vgg_apply(vgg.preprocess(sr, preprocess_mode))
  feats_hr = vgg_apply(vgg.preprocess(jax.lax.stop_gradient(hr), preprocess_mode))
  return [global_mean(jnp.abs(f - jax.lax.stop_gradient(g)), axis_name)
          for f, g in zip(feats_sr, feats_hr)]


def perceptual_loss(vgg_apply, sr: jax.Array, hr: jax.Array,
                    weights: Sequence[float] = PERCEPTUAL_WEIGHTS,
                    axis_name: Optional[str] = None, preprocess_mode: str = 'torch') -> jax.Array:
  """sum_i w_i * mean |F_i(sr) - F_i(hr)| with weights (1/32, 1/16, 1/8, 1/4, 1)."""
  taps = perceptual_taps(vgg_apply, sr, hr, axis_name, preprocess_mode)
  return sum(w * t for w, t in zip(weights, taps))
