"""The training state and what builds it: models, optimisers, initial params, VGG19.

One dataclass holds G and D params, both optimiser states, the spectral-norm
vectors and the EMA params; the L1 phase leaves D's fields empty.
"""
import functools
from typing import Any, Dict, Tuple

from absl import logging
import flax
import jax.numpy as jnp
import optax

from mrr_jax.models import Discriminator, MRRNet, VGG19Features
from mrr_jax.models import init as model_init
from mrr_jax.weights import export_format, vgg19


class TrainingError(RuntimeError):
  """A run that cannot start or continue (bad init checkpoint, non-finite loss...)."""


# ----------------------------------------------------------------------------
# State
# ----------------------------------------------------------------------------
@flax.struct.dataclass
class TrainState:
  step: jnp.ndarray
  g_params: Any
  g_opt_state: Any
  d_params: Any          # {} in the L1 phase.
  d_opt_state: Any
  spectral: Any          # discriminator spectral-norm u, v ({} in the L1 phase).
  ema_params: Any        # {} unless config.ema_decay > 0.

COMPUTE_DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16,
                  'float64': jnp.float64}  # float64: numerics checks under jax x64 only.


def compute_dtype(config) -> Any:
  if config.compute_dtype not in COMPUTE_DTYPES:
    raise TrainingError(f'config.compute_dtype must be one of {sorted(COMPUTE_DTYPES)}, '
                        f'got {config.compute_dtype!r}')
  return COMPUTE_DTYPES[config.compute_dtype]


def build_models(config) -> Tuple[MRRNet, Discriminator]:
  dtype = compute_dtype(config)
  generator = export_format.build_generator(config.model.to_dict(), dtype=dtype)
  return generator, Discriminator(dtype=dtype)


def epoch_steps(num_examples: int, global_batch_size: int) -> int:
  """Steps in one epoch: ceil(examples / batch), as the authors' DataLoader (drop_last=False)
  iterates, and so as their StepLR counts epochs. (Our batches run on across epoch
  boundaries instead of ending an epoch with a short one; the count is the same.)"""
  return max(1, -(-num_examples // global_batch_size))


def train_steps(config, steps_per_epoch: int) -> int:
  """The run's length: config.num_train_steps when set (> 0), else num_epochs epochs."""
  return config.num_train_steps or config.num_epochs * steps_per_epoch


def lr_decay_steps(config, steps_per_epoch: int) -> int:
  """G lr x0.7 every lr_decay_every_epochs (4, the code's StepLR), unless a step count is given."""
  return config.lr_decay_every_steps or max(config.lr_decay_every_epochs * steps_per_epoch, 1)


# The global batch at which g_lr and d_lr are the authors' (docs/architecture.md).
REFERENCE_BATCH = 12
LR_SCALINGS = ('none', 'linear', 'sqrt')


def scaled_lr(config, lr: float) -> float:
  """lr for config.batch_size under config.lr_scaling (for large accelerator batches).

  'none' keeps lr; 'linear' multiplies it by batch_size / 12, 'sqrt' by the
  square root of that (the usual rule for Adam). Neither is the paper's
  recipe, which is batch 12 at the configured rates.
  """
  ratio = config.batch_size / REFERENCE_BATCH
  factor = {'none': 1.0, 'linear': ratio, 'sqrt': ratio ** 0.5}[config.lr_scaling]
  return lr * factor


def make_optimizers(config, steps_per_epoch: int):
  g_schedule = optax.exponential_decay(
      scaled_lr(config, config.g_lr), transition_steps=lr_decay_steps(config, steps_per_epoch),
      decay_rate=config.lr_decay_factor, staircase=True)
  adam = functools.partial(optax.adam, b1=config.adam_b1, b2=config.adam_b2, eps=config.adam_eps)
  return adam(g_schedule), adam(scaled_lr(config, config.d_lr)), g_schedule


def init_state(config, generator, discriminator, g_tx, d_tx, seed: int) -> TrainState:
  g_params = model_init.init_generator(generator, seed)
  d_params, spectral = {}, {}
  if config.phase == 'gan':
    d_params, spectral = model_init.init_discriminator(discriminator, seed + 1)
  return TrainState(
      step=jnp.asarray(0, jnp.int32), g_params=g_params, g_opt_state=g_tx.init(g_params),
      d_params=d_params, d_opt_state=d_tx.init(d_params) if d_params else {},
      spectral=spectral, ema_params=g_params if config.ema_decay > 0 else {})


def load_vgg(config) -> Tuple[Dict[str, Any], str]:
  """(VGG19 params, preprocess mode); refuses to train MRRGAN on a random VGG unless asked."""
  if config.vgg_weights or not config.allow_random_vgg:
    try:
      return vgg19.load_vgg19(config.vgg_weights)
    except vgg19.VGGWeightsError as e:
      raise TrainingError(str(e)) from e
  logging.warning('using a RANDOM VGG19 (config.allow_random_vgg): for tests and timing only')
  return model_init.init_vgg19_random(VGG19Features(), seed=0), 'torch'
