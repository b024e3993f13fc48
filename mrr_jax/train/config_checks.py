"""Checks of a training config before anything runs or is written.

`validate` refuses values that would fail late (a ZeroDivisionError at step
one, a run that trains nothing and exits 0). `resume_conflicts` lists what a
resumed run changed that the checkpoint's state cannot take.

What may change when resuming (the state does not depend on it): the step
counts (num_train_steps, *_every_steps, max_to_keep), learning rates and
their decay, loss weights, Adam's betas and eps, ema_decay's value (not on/off),
data paths and workers, vgg_weights, compute_dtype, kernels. What shapes the state and
may not: phase, every model.* key, EMA on or off.
"""
from typing import Any, Dict, List, Mapping

import ml_collections

from mrr_jax.train import state as state_lib

PHASES = ('l1', 'gan')
COMPUTE_DTYPES = ('float32', 'bfloat16', 'float64')
KERNEL_MODES = ('auto', 'cpu', 'plain')  # mrr_jax.models.kernels.MODES (imports no jax here)
# Keys of the run's config.json whose change the checkpoint cannot take.
STATE_SHAPING_KEYS = ('phase',)


class ConfigError(ValueError):
  """A config value that cannot work; the message names the key."""


def _require(ok: bool, message: str) -> None:
  if not ok:
    raise ConfigError(message)


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError (one line naming the key) for a value no run can use."""
  _require(config.phase in PHASES, f"config.phase must be one of {PHASES}, got {config.phase!r}")
  _require(config.compute_dtype in COMPUTE_DTYPES,
           f'config.compute_dtype must be one of {COMPUTE_DTYPES}, got {config.compute_dtype!r}')
  _require(config.kernels in KERNEL_MODES,
           f'config.kernels must be one of {KERNEL_MODES}, got {config.kernels!r}')
  _require(config.batch_size >= 1, f'config.batch_size must be >= 1, got {config.batch_size}')
  _require(config.num_train_steps >= 0, f'config.num_train_steps must be >= 1, or 0 for '
           f'num_epochs epochs, got {config.num_train_steps}')
  _require(config.num_train_steps or config.num_epochs >= 1,
           f'config.num_epochs must be >= 1 (or set num_train_steps), got {config.num_epochs}')
  _require(config.lr_decay_every_epochs >= 1,
           f'config.lr_decay_every_epochs must be >= 1, got {config.lr_decay_every_epochs}')
  _require(config.log_every_steps >= 1,
           f'config.log_every_steps must be >= 1, got {config.log_every_steps}')
  for key in ('checkpoint_every_steps', 'eval_every_steps', 'image_every_steps',
              'lr_decay_every_steps'):
    _require(config[key] >= 0, f'config.{key} must be >= 1, or 0 for '
             f'{_ZERO_MEANS[key]}, got {config[key]}')
  _require(config.max_to_keep >= 1, f'config.max_to_keep must be >= 1, got {config.max_to_keep}')
  _require(0.0 <= config.ema_decay < 1.0,
           f'config.ema_decay must be in [0, 1) (0 = no EMA), got {config.ema_decay}')
  for key in ('g_lr', 'd_lr'):
    _require(config[key] > 0, f'config.{key} must be > 0, got {config[key]}')
  _require(config.lr_scaling in state_lib.LR_SCALINGS, f'config.lr_scaling must be one of '
           f'{", ".join(state_lib.LR_SCALINGS)}, got {config.lr_scaling!r}')
  _require(0.0 < config.lr_decay_factor <= 1.0,
           f'config.lr_decay_factor must be in (0, 1], got {config.lr_decay_factor}')
  for key in ('lambda_pix', 'lambda_gan', 'lambda_pcp'):
    _require(config[key] >= 0, f'config.{key} must be >= 0, got {config[key]}')
  _require(config.data.num_workers >= -1, f'config.data.num_workers must be >= 0, or -1 '
           f'to choose from the host, got {config.data.num_workers}')
  _require(config.profile_steps >= 0,
           f'config.profile_steps must be >= 0 (0 = no profiling), got {config.profile_steps}')
  _require(config.data.resize in ('pil', 'matlab'),
           f"config.data.resize must be 'pil' or 'matlab', got {config.data.resize!r}")
  lo, hi = config.data.scale_range
  _require(0 < lo <= hi, f'config.data.scale_range must be (lo, hi) with 0 < lo <= hi, '
           f'got {tuple(config.data.scale_range)}')


_ZERO_MEANS = {
    'checkpoint_every_steps': 'a checkpoint only at the end (and on preemption)',
    'eval_every_steps': 'no periodic evaluation',
    'image_every_steps': 'no image summaries',
    'lr_decay_every_steps': 'every lr_decay_every_epochs epochs of the train set',
}


def _flatten(tree: Mapping[str, Any], prefix: str = '') -> Dict[str, Any]:
  out = {}
  for key, value in tree.items():
    if isinstance(value, Mapping):
      out.update(_flatten(value, f'{prefix}{key}.'))
    else:
      out[f'{prefix}{key}'] = list(value) if isinstance(value, tuple) else value
  return out


def resume_conflicts(saved: Mapping[str, Any], new: Mapping[str, Any]) -> List[str]:
  """'key: saved -> new' for each state-shaping difference between two config dicts."""
  old_flat, new_flat = _flatten(saved), _flatten(new)
  keys = sorted(k for k in set(old_flat) | set(new_flat)
                if k in STATE_SHAPING_KEYS or k.startswith('model.'))
  out = [f'{k}: {old_flat.get(k, "(unset)")!r} -> {new_flat.get(k, "(unset)")!r}'
         for k in keys if old_flat.get(k) != new_flat.get(k)]
  old_ema, new_ema = float(old_flat.get('ema_decay', 0)) > 0, float(new_flat.get('ema_decay', 0)) > 0
  if old_ema != new_ema:
    out.append(f'ema_decay: {old_flat.get("ema_decay")!r} -> {new_flat.get("ema_decay")!r} '
               '(EMA turned ' + ('off' if old_ema else 'on') + ')')
  return out
