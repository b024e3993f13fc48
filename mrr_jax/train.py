"""Training for both phases: MRRNet (L1) and MRRGAN (L1 + RaHinge + perceptual).

Steps are pure functions (state, batch) -> (state, metrics), pmapped over all
devices with axis_name='batch'. The GAN iteration is the authors': a G step on
SR = G(LR), then a D step on SR recomputed with the updated G (ARCH.md).
"""
import functools
import json
import os
import signal
import time
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from absl import logging
from clu import metric_writers, periodic_actions
from clu import metrics as clu_metrics
import flax
import grain.checkpoint as grain_checkpoint
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp

from mrr_jax import config_checks, exported, input_pipeline, losses, metrics, parallel, sr_io
from mrr_jax import vgg_weights, visualize, workdir_lock
from mrr_jax.models import Discriminator, MRRNet, VGG19Features
from mrr_jax.models import init as model_init

AXIS = 'batch'


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
  generator = exported.build_generator(config.model.to_dict(), dtype=dtype)
  return generator, Discriminator(dtype=dtype)


def lr_decay_steps(config, steps_per_epoch: int) -> int:
  """G lr x0.7 every 4 epochs (the code's StepLR), unless a step count is given."""
  return config.lr_decay_every_steps or max(4 * steps_per_epoch, 1)


def make_optimizers(config, steps_per_epoch: int):
  g_schedule = optax.exponential_decay(
      config.g_lr, transition_steps=lr_decay_steps(config, steps_per_epoch),
      decay_rate=config.lr_decay_factor, staircase=True)
  adam = functools.partial(optax.adam, b1=config.adam_b1, b2=config.adam_b2, eps=config.adam_eps)
  return adam(g_schedule), adam(config.d_lr), g_schedule


def init_state(config, generator, discriminator, g_tx, d_tx, seed: int) -> TrainState:
  g_params = model_init.init_generator(generator, seed)
  d_params, spectral = {}, {}
  if config.phase == 'gan':
    d_params, spectral = model_init.init_discriminator(discriminator, seed + 1)
  return TrainState(
      step=jnp.asarray(0, jnp.int32), g_params=g_params, g_opt_state=g_tx.init(g_params),
      d_params=d_params, d_opt_state=d_tx.init(d_params) if d_params else {},
      spectral=spectral, ema_params=g_params if config.ema_decay > 0 else {})


def load_generator_params(path: str, generator: MRRNet) -> Dict[str, Any]:
  """G params from a phase-1 workdir/checkpoint dir or an export (config.init_from)."""
  if not path:
    raise TrainingError('the GAN phase starts from a phase-1 generator: set --config.init_from '
                        'to a phase-1 workdir, its checkpoints/ directory, or an export')
  if not os.path.exists(path):
    raise TrainingError(f'config.init_from={path} does not exist')
  if os.path.isfile(os.path.join(path, exported.MODEL_FILE)):
    _, params, _ = exported.load_generator(path)
  else:
    ckpt_dir, step = _checkpoint_location(path)
    mngr = _read_only_manager(ckpt_dir)
    step = mngr.latest_step() if step is None else step
    if step is None:
      raise TrainingError(f'config.init_from={path} holds no checkpoint (give a phase-1 '
                          'workdir, its checkpoints/ directory, one step folder in it, or an export)')
    restored = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    params = restored['state']['g_params']
    logging.info('phase 2: G from %s step %d', ckpt_dir, step)
  try:
    exported.check_params(generator, params)
  except exported.ExportError as e:
    raise TrainingError(f'config.init_from={path} is incompatible with config.model: {e}') from e
  return jax.tree_util.tree_map(jnp.asarray, params)


def _checkpoint_location(path: str) -> Tuple[str, Optional[int]]:
  """(checkpoints directory, step or None for the latest) named by a workdir, its
  checkpoints/ directory or one of its step folders (checkpoints/20)."""
  path = os.path.abspath(path)
  if os.path.isdir(os.path.join(path, 'checkpoints')):
    return os.path.join(path, 'checkpoints'), None
  name = os.path.basename(path)
  if name.isdigit() and os.path.isdir(os.path.join(path, 'state')):
    return os.path.dirname(path), int(name)
  return path, None


def _read_only_manager(ckpt_dir: str) -> ocp.CheckpointManager:
  """Reads checkpoints without creating or cleaning anything in ckpt_dir."""
  options = ocp.CheckpointManagerOptions(create=False, read_only=True)
  return ocp.CheckpointManager(ckpt_dir, options=options,
                               item_handlers={'state': ocp.StandardCheckpointHandler()})


def load_vgg(config) -> Tuple[Dict[str, Any], str]:
  """(VGG19 params, preprocess mode); refuses to train MRRGAN on a random VGG unless asked."""
  if config.vgg_weights or not config.allow_random_vgg:
    try:
      return vgg_weights.load_vgg19(config.vgg_weights)
    except vgg_weights.VGGWeightsError as e:
      raise TrainingError(str(e)) from e
  logging.warning('using a RANDOM VGG19 (config.allow_random_vgg): for tests and timing only')
  return model_init.init_vgg19_random(VGG19Features(), seed=0), 'torch'


# ----------------------------------------------------------------------------
# Steps
# ----------------------------------------------------------------------------
@flax.struct.dataclass
class TrainMetrics(clu_metrics.Collection):
  l1: clu_metrics.Average.from_output('l1')
  g_loss: clu_metrics.Average.from_output('g_loss')


@flax.struct.dataclass
class GanMetrics(clu_metrics.Collection):
  l1: clu_metrics.Average.from_output('l1')
  g_loss: clu_metrics.Average.from_output('g_loss')
  g_gan: clu_metrics.Average.from_output('g_gan')
  g_pcp: clu_metrics.Average.from_output('g_pcp')
  d_loss: clu_metrics.Average.from_output('d_loss')
  d_real: clu_metrics.Average.from_output('d_real')
  d_fake: clu_metrics.Average.from_output('d_fake')


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
  grads = jax.lax.pmean(grads, AXIS)
  updates, g_opt_state = g_tx.update(grads, state.g_opt_state, state.g_params)
  g_params = optax.apply_updates(state.g_params, updates)
  new_state = state.replace(step=state.step + 1, g_params=g_params, g_opt_state=g_opt_state,
                            ema_params=_ema(config, state, g_params))
  return new_state, TrainMetrics.single_from_model_output(l1=l1, g_loss=g_loss)


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
  g_grads = jax.lax.pmean(g_grads, AXIS)
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
  d_grads = jax.lax.pmean(d_grads, AXIS)
  d_updates, d_opt_state = d_tx.update(d_grads, state.d_opt_state, state.d_params)
  d_params = optax.apply_updates(state.d_params, d_updates)
  # Power iteration is data-independent, so every device holds the same u, v;
  # the mean keeps them bit-identical regardless.
  spectral = jax.lax.pmean(spectral, AXIS)
  new_state = state.replace(
      step=state.step + 1, g_params=g_params, g_opt_state=g_opt_state, d_params=d_params,
      d_opt_state=d_opt_state, spectral=spectral, ema_params=_ema(config, state, g_params))
  return new_state, GanMetrics.single_from_model_output(
      l1=l1, g_loss=g_loss, g_gan=gan, g_pcp=pcp, d_loss=d_loss,
      d_real=losses.global_mean(real, AXIS), d_fake=losses.global_mean(fake, AXIS))


def make_step_fn(config, generator, discriminator, g_tx, d_tx, vgg_params=None, pcp_mode='torch',
                 devices=None):
  """The phase's pmapped step: (replicated state, sharded batch) -> (state, metrics)."""
  pmap = functools.partial(jax.pmap, axis_name=AXIS, donate_argnums=(0,), devices=devices)
  if config.phase == 'l1':
    return pmap(functools.partial(l1_train_step, config=config, generator=generator, g_tx=g_tx))
  if config.phase != 'gan':
    raise TrainingError(f"config.phase must be 'l1' or 'gan', got {config.phase!r}")
  vgg_model = VGG19Features(dtype=compute_dtype(config))
  step = functools.partial(gan_train_step, config=config, generator=generator,
                           discriminator=discriminator, g_tx=g_tx, d_tx=d_tx,
                           vgg_apply=vgg_model.apply, pcp_mode=pcp_mode)
  pstep = pmap(step)
  vgg_replicated = parallel.replicate(vgg_params, devices)
  return lambda state, batch: pstep(state, batch, vgg_replicated)


def make_evaluate_fn(config, generator) -> Optional[Callable]:
  """PSNR/SSIM on the eval set (DIC protocol, mrr_jax.metrics) for periodic evaluation.

  The eval set is config.data.eval_hr_dir/eval_lr_dir, or the builder's test
  split; None when there is none (an image folder for training alone).
  """
  if not config.eval_every_steps:
    return None
  if config.data.train_dir and not config.data.eval_hr_dir:
    logging.warning('no periodic evaluation: set --config.data.eval_hr_dir (and eval_lr_dir) '
                    'to a paired test folder to evaluate while training on a train_dir')
    return None
  process, processes = jax.process_index(), jax.process_count()
  batches = input_pipeline.create_eval_batches(config.data, config.batch_size, process, processes)

  @jax.jit
  def score(params, batch):
    sr = metrics.quantize(generator.apply({'params': params}, batch['input']))
    hr = jnp.round((batch['hr'] + 1.0) * 127.5)
    psnr, ssim = metrics.psnr_ssim(sr, hr)
    mask = batch['mask']
    # Identical images give PSNR inf; keep the sums finite so one cannot poison the mean.
    psnr = jnp.minimum(psnr, 100.0)
    return jnp.stack([jnp.sum(psnr * mask), jnp.sum(ssim * mask), jnp.sum(mask)])

  def evaluate(params) -> Dict[str, float]:
    totals = np.zeros(3)
    for batch in batches:
      batch = {k: v for k, v in batch.items() if k != 'name'}
      totals += np.asarray(score(params, batch), np.float64)
    if processes > 1:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      totals = np.asarray(multihost_utils.process_allgather(totals)).sum(axis=0)
    return {'psnr': totals[0] / totals[2], 'ssim': totals[1] / totals[2]}

  return evaluate


# ----------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------
class _IteratorStateHolder:
  """What the grain checkpoint handler saves: the input position of the last
  batch the model consumed (the host iterator runs ahead because of prefetch).

  grain's handler stores a non-grain iterator's state as bytes (one JSON file
  per process) and calls start_prefetch() after restoring.
  """

  def __init__(self, iterator):
    self.iterator = iterator
    self.state = iterator.get_state()

  def get_state(self) -> bytes:
    return json.dumps(self.state).encode()

  def set_state(self, state: bytes) -> None:
    self.state = json.loads(state)
    self.iterator.set_state(self.state)

  def start_prefetch(self) -> None:
    pass


def checkpoint_manager(workdir: str, config) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(max_to_keep=config.max_to_keep, create=True,
                                         enable_async_checkpointing=True)
  return ocp.CheckpointManager(
      os.path.join(os.path.abspath(workdir), 'checkpoints'), options=options,
      item_handlers={'state': ocp.StandardCheckpointHandler(),
                     'data': grain_checkpoint.CheckpointHandler()})


def save_checkpoint(mngr, state, holder):
  step = int(jax.device_get(state.step[0]))
  host_state = jax.device_get(parallel.unreplicate(state))
  mngr.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(host_state), data=grain_checkpoint.CheckpointSave(holder)))
  return step


def restore_checkpoint(mngr, state, holder):
  step = mngr.latest_step()
  if step is None:
    return state
  abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, jax.device_get(state))
  restored = mngr.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract), data=grain_checkpoint.CheckpointRestore(holder)))
  logging.info('resumed from %s step %d', mngr.directory, step)
  return restored['state']


# ----------------------------------------------------------------------------
# Loop
# ----------------------------------------------------------------------------
class _Preemption:
  """SIGTERM sets a flag; the loop saves at the current step and exits 0."""

  def __init__(self):
    self.requested = False
    self._previous = signal.signal(signal.SIGTERM, self._handle)

  def _handle(self, signum, frame):
    del signum, frame
    logging.warning('SIGTERM: saving a checkpoint at the current step, then exiting')
    self.requested = True

  def any_process(self) -> bool:
    if jax.process_count() == 1:
      return self.requested
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    return bool(np.any(multihost_utils.process_allgather(np.int32(self.requested))))

  def restore(self):
    signal.signal(signal.SIGTERM, self._previous)


def _image_summaries(generator, params, batch) -> Dict[str, np.ndarray]:
  """bicubic input | SR | HR rows and the attention maps of the first images, uint8."""
  n = min(4, batch['input'].shape[0])
  sr, inter = generator.apply({'params': params}, jnp.asarray(batch['input'][:n]),
                              mutable=['intermediates'])
  bicubic, sr, hr = (visualize.to_uint8(np.asarray(x)) for x in
                     (batch['input'][:n], sr, batch['hr'][:n]))
  out = {'samples': visualize.comparison_grid([bicubic, sr, hr], ['bicubic', 'SR', 'HR'])[None]}
  blocks = sr_io.forward_order(inter.get('intermediates', {}))
  if blocks:
    maps = [np.asarray(inter['intermediates'][b]['att_map'][0]) for b in blocks]
    out['attention'] = visualize.tile_grid(visualize.attention_rows(bicubic, sr, maps))[None]
  return out


def write_config(workdir: str, config) -> None:
  """The run's config beside its checkpoints: export reads the architecture from it."""
  os.makedirs(workdir, exist_ok=True)
  tmp = os.path.join(workdir, exported.RUN_CONFIG_FILE + '.tmp')
  with open(tmp, 'w') as f:
    f.write(config.to_json_best_effort(indent=2, sort_keys=True))
  os.replace(tmp, os.path.join(workdir, exported.RUN_CONFIG_FILE))


def _last_good(mngr) -> str:
  mngr.wait_until_finished()
  last = mngr.latest_step()
  return (f'the last good checkpoint is step {last} in {mngr.directory}' if last is not None
          else 'no checkpoint was written')


def _check_finite(step: int, scalars: Dict[str, float], mngr) -> None:
  bad = {k: v for k, v in scalars.items() if not np.isfinite(v)}
  if bad:
    raise TrainingError(f'non-finite loss at step {step}: {bad}; {_last_good(mngr)}')


def make_health_fn(config, generator, discriminator):
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

  return jax.pmap(healthy, axis_name=AXIS)


def _path_name(path) -> str:
  """'g_params/encoder_0/conv2d/kernel' for a pytree path of the state or of its
  checkpoint's metadata (dataclass fields and tuples there are dict keys here)."""
  parts = (getattr(k, 'key', getattr(k, 'name', getattr(k, 'idx', k))) for k in path)
  return '/'.join(str(p) for p in parts)


def _check_resume(workdir: str, config, abstract_state: TrainState, mngr) -> None:
  """Refuses, before anything is written, a resume whose config or state does not fit.

  Compares the run's config.json (what shapes the state: config_checks) and
  then the latest checkpoint's array shapes with the state this config builds.
  """
  step = mngr.latest_step()
  if step is None:
    return
  saved_path = os.path.join(workdir, exported.RUN_CONFIG_FILE)
  if os.path.isfile(saved_path):
    with open(saved_path) as f:
      saved = json.load(f)
    conflicts = config_checks.resume_conflicts(saved, config.to_dict())
    if conflicts:
      raise TrainingError(
          f'{workdir} holds a run (checkpoint step {step}) whose state this config cannot '
          f'resume: {"; ".join(conflicts)}. Use the run\'s settings or another --workdir')
  metadata = mngr.item_metadata(step)['state']
  have = {_path_name(p): tuple(getattr(m, 'shape', ()))
          for p, m in jax.tree_util.tree_leaves_with_path(metadata)}
  want = {_path_name(p): tuple(x.shape)
          for p, x in jax.tree_util.tree_leaves_with_path(abstract_state)}
  differ = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
  if differ:
    shown = ', '.join(f'{k} {have.get(k, "missing")} vs {want.get(k, "missing")}'
                      for k in differ[:4])
    raise TrainingError(
        f'the checkpoint at step {step} in {mngr.directory} does not fit this config\'s state '
        f'({len(differ)} arrays differ: {shown}{", ..." if len(differ) > 4 else ""}); '
        'use the run\'s settings or another --workdir')


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       evaluate_fn: Optional[Callable] = None,
                       extra_hooks: Sequence[Callable[[int], None]] = ()) -> TrainState:
  """Runs (or resumes) training in workdir; returns the final (replicated) state.

  evaluate_fn(g_params) -> {metric: value}, called every eval_every_steps.
  extra_hooks: called with the step number after every step (like clu's
  periodic actions). The config is checked and the workdir locked (process 0)
  before anything is written.
  """
  config_checks.validate(config)
  parallel.check_batch_size(config.batch_size)
  lock = workdir_lock.WorkdirLock(workdir) if jax.process_index() == 0 else None
  if lock is not None:
    lock.acquire()
  try:
    return _train(config, workdir, evaluate_fn, extra_hooks)
  finally:
    if lock is not None:
      lock.release()


def _train(config, workdir, evaluate_fn, extra_hooks) -> TrainState:
  # Everything that can refuse the run (resume, data, weights) comes before
  # the first write to the workdir.
  process, processes = jax.process_index(), jax.process_count()
  generator, discriminator = build_models(config)
  ckpt_dir = os.path.join(os.path.abspath(workdir), 'checkpoints')
  resuming = os.path.isdir(ckpt_dir) and _read_only_manager(ckpt_dir).latest_step() is not None
  if resuming:
    # Only the state's structure matters here, not the real schedule.
    g_tx, d_tx, _ = make_optimizers(config, steps_per_epoch=1)
    abstract = jax.eval_shape(lambda: init_state(config, generator, discriminator, g_tx, d_tx,
                                                 config.seed))
    _check_resume(workdir, config, abstract, _read_only_manager(ckpt_dir))
  train_iter = input_pipeline.create_train_iterator(
      config.data, config.batch_size, config.seed, process, processes)
  steps_per_epoch = input_pipeline.steps_per_epoch(config.data, config.batch_size)
  g_tx, d_tx, g_schedule = make_optimizers(config, steps_per_epoch)
  vgg_params, pcp_mode = (load_vgg(config) if config.phase == 'gan' else (None, 'torch'))
  state = init_state(config, generator, discriminator, g_tx, d_tx, config.seed)
  if not resuming and config.phase == 'gan':
    g_params = load_generator_params(config.init_from, generator)
    state = state.replace(g_params=g_params, g_opt_state=g_tx.init(g_params),
                          ema_params=g_params if config.ema_decay > 0 else {})
  if evaluate_fn is None:
    evaluate_fn = make_evaluate_fn(config, generator)

  if process == 0:
    write_config(workdir, config)
  writer = metric_writers.create_default_writer(workdir, just_logging=process != 0)
  mngr = checkpoint_manager(workdir, config)
  holder = _IteratorStateHolder(train_iter)
  if resuming:
    state = restore_checkpoint(mngr, state, holder)
  start_step = int(state.step)
  state = parallel.replicate(state)
  step_fn = make_step_fn(config, generator, discriminator, g_tx, d_tx, vgg_params, pcp_mode)
  health_fn = make_health_fn(config, generator, discriminator)

  hooks = list(extra_hooks)
  if process == 0:
    hooks.append(periodic_actions.ReportProgress(num_train_steps=config.num_train_steps,
                                                 writer=writer))
    hooks.append(periodic_actions.Profile(num_profile_steps=5, logdir=workdir))
  preemption = _Preemption()
  batches = parallel.prefetch_to_device(_with_iterator_state(train_iter), size=2, with_extra=True)
  collection, last_batch = None, None
  t_log, step_log = time.time(), start_step
  step = start_step
  every = lambda n: n and step % n == 0
  try:
    while step < config.num_train_steps:
      batch, input_state = next(batches)
      state, step_metrics = step_fn(state, batch)
      holder.state = input_state
      step += 1
      last_batch = batch
      step_metrics = flax.jax_utils.unreplicate(step_metrics)
      collection = step_metrics if collection is None else collection.merge(step_metrics)
      for hook in hooks:
        hook(step)
      if every(config.log_every_steps) or step == config.num_train_steps:
        scalars = {k: float(v) for k, v in collection.compute().items()}
        _check_finite(step, scalars, mngr)
        scalars['g_lr'] = float(g_schedule(step - 1))
        if config.phase == 'gan':
          scalars['d_lr'] = config.d_lr
        scalars['steps_per_s'] = (step - step_log) / max(time.time() - t_log, 1e-9)
        writer.write_scalars(step, {f'train_{k}': v for k, v in scalars.items()})
        collection, t_log, step_log = None, time.time(), step
      if every(config.image_every_steps) and process == 0:
        params = parallel.unreplicate(state.ema_params if config.ema_decay > 0 else state.g_params)
        host_batch = jax.tree_util.tree_map(lambda x: np.asarray(x[0]), last_batch)
        writer.write_images(step, _image_summaries(generator, params, host_batch))
      if evaluate_fn and every(config.eval_every_steps):
        params = parallel.unreplicate(state.ema_params if config.ema_decay > 0 else state.g_params)
        writer.write_scalars(step, {f'eval_{k}': v for k, v in evaluate_fn(params).items()})
      preempted = preemption.any_process()
      if preempted or every(config.checkpoint_every_steps) or step == config.num_train_steps:
        if collection is not None:
          _check_finite(step, {k: float(v) for k, v in collection.compute().items()}, mngr)
        if not int(health_fn(state, last_batch)[0]):
          raise TrainingError(f'step {step}: the updated params, or what they compute, are not '
                              f'finite (not saved); {_last_good(mngr)}')
        save_checkpoint(mngr, state, holder)
      if preempted:
        logging.warning('preempted: checkpoint saved at step %d', step)
        break
    mngr.wait_until_finished()
  finally:
    preemption.restore()
    writer.flush()
  return state


def _with_iterator_state(iterator):
  """Yields (batch, iterator state after that batch)."""
  for batch in iterator:
    yield batch, iterator.get_state()
