"""The train steps, pure functions (state, batch) -> (state, metrics), pmapped over devices.

The GAN iteration is the authors': a G step on SR = G(LR), then a D step on SR
recomputed with the updated G (docs/architecture.md#gan-iteration). Gradients
are averaged over devices with axis_name='batch'; the relativistic loss's
batch means run over the global batch, so N devices equal one.
"""
import functools
from typing import Callable

import jax
import jax.numpy as jnp
import optax

from mrr_jax.models import VGG19Features
from mrr_jax.train import losses, parallel
from mrr_jax.train.state import TrainState, TrainingError, compute_dtype

AXIS = parallel.AXIS  # the pmap axis; parallel's device arrays share its name


# ----------------------------------------------------------------------------
# Steps
# ----------------------------------------------------------------------------
# Each step returns its metrics as {name: scalar}, each already the global
# batch's mean (the step's pmean), identical on every device; the loop averages
# them over the steps between logs on the devices and fetches them then.
L1_METRICS = ('l1', 'g_loss')
GAN_METRICS = ('l1', 'g_loss', 'g_gan', 'g_pcp', 'd_loss', 'd_real', 'd_fake')


def _ema(config, state, g_params):
  if config.ema_decay <= 0:
    return state.ema_params
  d = config.ema_decay
  return jax.tree_util.tree_map(lambda e, p: d * e + (1 - d) * p, state.ema_params, g_params)


def l1_train_step(state: TrainState, batch, *, config, generator, g_tx):
  """One MRRNet step: lambda_pix * L1, gradients averaged over devices."""

  def loss_fn(params):
    sr = generator.apply({'params': params}, batch['input'])
    l1 = losses.l1_loss(sr, batch['hr'], AXIS)
    return config.lambda_pix * l1, l1

  (g_loss, l1), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.g_params)
  grads = parallel.mean_over_devices(grads)
  updates, g_opt_state = g_tx.update(grads, state.g_opt_state, state.g_params)
  g_params = optax.apply_updates(state.g_params, updates)
  new_state = state.replace(step=state.step + 1, g_params=g_params, g_opt_state=g_opt_state,
                            ema_params=_ema(config, state, g_params))
  return new_state, {'l1': l1, 'g_loss': g_loss}


def gan_train_step(state: TrainState, batch, vgg_params, *, config, generator, discriminator,
                   g_tx, d_tx, vgg_apply, pcp_mode):
  """One MRRGAN iteration: G step, then D step on SR from the updated G.

  D runs in training mode four times (real, fake in each step), so the
  spectral-norm vectors advance four power iterations, as in the code.
  """
  lr_input, hr = batch['input'], batch['hr']

  def d_apply(d_params, spectral, x):
    out, upd = discriminator.apply({'params': d_params, 'spectral': spectral}, x, train=True,
                                   mutable=['spectral'])
    return out, upd['spectral']

  def g_loss_fn(g_params, spectral):
    sr = generator.apply({'params': g_params}, lr_input)
    real, spectral = d_apply(state.d_params, spectral, hr)
    fake, spectral = d_apply(state.d_params, spectral, sr)
    l1 = losses.l1_loss(sr, hr, AXIS)
    gan = losses.rahinge_g_loss(real, fake, config.rahinge_halved, AXIS)
    pcp = losses.perceptual_loss(lambda x: vgg_apply({'params': vgg_params}, x), sr, hr,
                                 axis_name=AXIS, preprocess_mode=pcp_mode)
    total = config.lambda_pix * l1 + config.lambda_gan * gan + config.lambda_pcp * pcp
    return total, (spectral, l1, gan, pcp)

  (g_loss, (spectral, l1, gan, pcp)), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(
      state.g_params, state.spectral)
  g_grads = parallel.mean_over_devices(g_grads)
  g_updates, g_opt_state = g_tx.update(g_grads, state.g_opt_state, state.g_params)
  g_params = optax.apply_updates(state.g_params, g_updates)

  sr = jax.lax.stop_gradient(generator.apply({'params': g_params}, lr_input))

  def d_loss_fn(d_params, spectral):
    real, spectral = d_apply(d_params, spectral, hr)
    fake, spectral = d_apply(d_params, spectral, sr)
    loss = losses.rahinge_d_loss(real, fake, config.rahinge_halved, AXIS)
    return loss, (spectral, real, fake)

  (d_loss, (spectral, real, fake)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(
      state.d_params, spectral)
  d_grads = parallel.mean_over_devices(d_grads)
  d_updates, d_opt_state = d_tx.update(d_grads, state.d_opt_state, state.d_params)
  d_params = optax.apply_updates(state.d_params, d_updates)
  # Power iteration is data-independent, so every device holds the same u, v;
  # the mean keeps them bit-identical regardless.
  spectral = parallel.mean_over_devices(spectral)
  new_state = state.replace(
      step=state.step + 1, g_params=g_params, g_opt_state=g_opt_state, d_params=d_params,
      d_opt_state=d_opt_state, spectral=spectral, ema_params=_ema(config, state, g_params))
  return new_state, {'l1': l1, 'g_loss': g_loss, 'g_gan': gan, 'g_pcp': pcp, 'd_loss': d_loss,
                     'd_real': losses.global_mean(real, AXIS),
                     'd_fake': losses.global_mean(fake, AXIS)}


class StepFn:
  """A pmapped step with its constant arguments (VGG19's params) bound.

  Call it as step(state, batch); lower(state, batch) and call_compiled let the
  trainer and the benchmark compile it ahead and run exactly that program.
  """

  def __init__(self, pmapped, *constants):
    self.pmapped, self.constants = pmapped, constants

  def __call__(self, state, batch):
    return self.pmapped(state, batch, *self.constants)

  def lower(self, state, batch):
    return self.pmapped.lower(state, batch, *self.constants)

  def call_compiled(self, compiled, state, batch):
    return compiled(state, batch, *self.constants)


def phase_step(config, generator, discriminator, g_tx, d_tx, pcp_mode='torch') -> Callable:
  """The phase's per-device step (state, batch, *constants) -> (state, metrics), to be pmapped.

  The GAN step's one constant is VGG19's params; the L1 step has none.
  """
  if config.phase == 'l1':
    return functools.partial(l1_train_step, config=config, generator=generator, g_tx=g_tx)
  if config.phase != 'gan':
    raise TrainingError(f"config.phase must be 'l1' or 'gan', got {config.phase!r}")
  vgg_model = VGG19Features(dtype=compute_dtype(config))
  return functools.partial(gan_train_step, config=config, generator=generator,
                           discriminator=discriminator, g_tx=g_tx, d_tx=d_tx,
                           vgg_apply=vgg_model.apply, pcp_mode=pcp_mode)


def donates_state(devices=None) -> bool:
  """Whether the pmapped step donates the state's buffers to the new state: everywhere but GPUs.

  On a GPU, XLA lays conv kernels out for cuDNN (OHWI, the params are HWIO),
  so each kernel's Adam update reads its gradient transposed and writes
  fresh buffers; with the state donated it then copies every param and
  moment back into the donated buffer: 322 copy kernels and 0.21 GB per L1
  step, compiled for an H200. Without donation the state is held twice
  while the step runs (about 110 MB for MRRNet and Adam).
  """
  devices = devices or jax.local_devices()
  return devices[0].platform != 'gpu'


def pmap_step(step: Callable, devices=None) -> Callable:
  """A phase_step pmapped as training runs it: over AXIS, the state donated where donates_state."""
  donate = (0,) if donates_state(devices) else ()
  return jax.pmap(step, axis_name=AXIS, donate_argnums=donate, devices=devices)


def make_step_fn(config, generator, discriminator, g_tx, d_tx, vgg_params=None, pcp_mode='torch',
                 devices=None) -> StepFn:
  """The phase's pmapped step: (replicated state, sharded batch) -> (state, metrics)."""
  pmapped = pmap_step(phase_step(config, generator, discriminator, g_tx, d_tx, pcp_mode), devices)
  if config.phase == 'l1':
    return StepFn(pmapped)
  return StepFn(pmapped, parallel.replicate(vgg_params, devices))


def make_health_fn(config, generator, discriminator, devices=None):
  """pmapped (state, batch) -> True when the params and what they compute are finite.

  Run before every checkpoint: a checkpoint is a promise that training can go
  on from it and that its generator works. Finite params are not enough: an
  update with a huge learning rate leaves finite weights of 1e30 whose
  outputs overflow, and the loss that shows it comes one step later.
  """

  def finite(tree):
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)

  def healthy(state, batch):
    ok = finite(state.g_params) & finite(state.ema_params)
    ok &= finite(generator.apply({'params': state.g_params}, batch['input']))
    if config.phase == 'gan':
      ok &= finite(state.d_params) & finite(state.spectral)
      ok &= finite(discriminator.apply({'params': state.d_params, 'spectral': state.spectral},
                                       batch['hr'], train=False))
    return jax.lax.pmin(ok.astype(jnp.int32), AXIS)

  return jax.pmap(healthy, axis_name=AXIS, devices=devices)
