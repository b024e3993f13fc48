"""The whole training setup in one call: what the trainer, the benchmark and the tests share.

Models, optimisers, the initial state (phase 2 may start G from a phase-1
generator), VGG19 for the perceptual loss, and the pmapped step and health
functions, built the same way everywhere, so a benchmark times exactly what
training runs.
"""
import dataclasses
from typing import Any, Callable, Dict, Optional, Sequence

import optax

from mrr_jax.models import Discriminator, MRRNet, kernels
from mrr_jax.train import state as state_lib
from mrr_jax.train import steps


@dataclasses.dataclass
class Setup:
  """Everything a training run builds before its first step."""
  generator: MRRNet
  discriminator: Discriminator
  g_tx: optax.GradientTransformation
  d_tx: optax.GradientTransformation
  g_schedule: Callable[[int], Any]
  state: state_lib.TrainState          # on the host, not replicated
  vgg_params: Optional[Dict[str, Any]]
  pcp_mode: str
  step_fn: Callable                    # pmapped (replicated state, sharded batch) -> (state, metrics)
  health_fn: Callable                  # pmapped (replicated state, sharded batch) -> finite?


def create(config, steps_per_epoch: int, devices: Optional[Sequence[Any]] = None,
           g_params: Optional[Dict[str, Any]] = None,
           vgg: Optional[Any] = None) -> Setup:
  """Builds the training setup of `config`.

  steps_per_epoch: for the lr decay every 4 epochs (config.lr_decay_every_steps
  overrides it). g_params: G's starting params (phase 2 from phase 1), else the
  authors' init from config.seed. vgg: (params, preprocess mode) already loaded,
  else state.load_vgg(config) in the GAN phase. devices: those to pmap over
  (default: all local devices).
  """
  kernels.set_mode(config.kernels)
  generator, discriminator = state_lib.build_models(config)
  g_tx, d_tx, g_schedule = state_lib.make_optimizers(config, steps_per_epoch)
  state = state_lib.init_state(config, generator, discriminator, g_tx, d_tx, config.seed)
  if g_params is not None:
    state = state.replace(g_params=g_params, g_opt_state=g_tx.init(g_params),
                          ema_params=g_params if config.ema_decay > 0 else {})
  vgg_params, pcp_mode = None, 'torch'
  if config.phase == 'gan':
    vgg_params, pcp_mode = vgg if vgg is not None else state_lib.load_vgg(config)
  step_fn = steps.make_step_fn(config, generator, discriminator, g_tx, d_tx, vgg_params, pcp_mode,
                               devices)
  health_fn = steps.make_health_fn(config, generator, discriminator, devices)
  return Setup(generator, discriminator, g_tx, d_tx, g_schedule, state, vgg_params, pcp_mode,
               step_fn, health_fn)


def initial_state(config) -> state_lib.TrainState:
  """The state `config` starts from (G from config.seed): for its structure and shapes."""
  generator, discriminator = state_lib.build_models(config)
  g_tx, d_tx, _ = state_lib.make_optimizers(config, steps_per_epoch=1)
  return state_lib.init_state(config, generator, discriminator, g_tx, d_tx, config.seed)
