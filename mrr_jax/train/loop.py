"""The training loop: runs (or resumes) a config in a workdir, logs, evaluates, checkpoints.

Everything that can refuse the run (the config, the workdir lock, the resume
check, the data, the weights) happens before the first write to the workdir.
Only process 0 writes logs; metrics are fetched every log_every_steps.
"""
import itertools
import os
import signal
import time
from typing import Callable, Dict, Optional, Sequence, Tuple

from absl import logging
from clu import metric_writers, periodic_actions
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from mrr_jax import visualize
from mrr_jax.data import pipeline, sources
from mrr_jax.evaluation import loop as eval_loop
from mrr_jax.evaluation import predict
from mrr_jax.train import checkpoints, config_checks, lock, parallel, setup
from mrr_jax.train import state as state_lib
from mrr_jax.train.state import TrainState, TrainingError


class Preemption:
  """A preemption notice (SIGTERM) means: save a checkpoint at an agreed step, then exit 0.

  One process: a Python SIGTERM handler sets a flag. Several (jax.distributed):
  jax's preemption service, on by default, catches the notice on whichever
  process gets it and agrees with the others in the background on the step to
  stop at; each process asks it every step, a local check with no collective
  (multihost_utils.reached_preemption_sync_point), so pod steps keep
  dispatching asynchronously.
  """

  def __init__(self):
    self.requested = False
    self._distributed = jax.process_count() > 1
    self._previous = None
    if not self._distributed:
      self._previous = signal.signal(signal.SIGTERM, self._handle)

  def _handle(self, signum, frame):
    del signum, frame
    logging.warning('SIGTERM: saving a checkpoint at the current step, then exiting')
    self.requested = True

  def reached(self, step: int) -> bool:
    """True at the step every process saves and stops at."""
    if not self._distributed:
      return self.requested
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    return multihost_utils.reached_preemption_sync_point(step)

  def restore(self):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


EVAL_PICTURES = 8  # faces in the grid each periodic evaluation writes


def make_evaluate_fn(config, generator) -> Optional[
    Callable[[Dict], Tuple[Dict[str, float], Optional[np.ndarray]]]]:
  """g_params -> ({'psnr', 'ssim'}, grid) on the eval set, by mrr_jax.evaluation.loop (as `evaluate`).

  The eval set is config.data.eval_hr_dir/eval_lr_dir, or the builder's test
  split; None when there is none (an image folder for training alone). Each
  process scores its share of the images; the sums are gathered. grid: the
  first EVAL_PICTURES faces of this process, bicubic | SR (with PSNR) | HR.
  """
  if not config.eval_every_steps:
    return None
  if config.data.train_dir and not config.data.eval_hr_dir:
    logging.warning('no periodic evaluation: set --config.data.eval_hr_dir (and eval_lr_dir) '
                    'to a paired test folder to evaluate while training on a train_dir')
    return None
  process, processes = jax.process_index(), jax.process_count()
  examples = sources.eval_examples(config.data)[process::processes]
  per_process = max(config.batch_size // processes, 1)

  def evaluate(params):
    scored = eval_loop.score_examples(generator, params, examples, per_process,
                                      num_pictures=EVAL_PICTURES)
    rows = scored['rows']
    totals = np.array([sum(r['psnr'] for r in rows), sum(r['ssim'] for r in rows), len(rows)])
    if processes > 1:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      totals = np.asarray(multihost_utils.process_allgather(totals)).sum(axis=0)
    means = {'psnr': totals[0] / totals[2], 'ssim': totals[1] / totals[2]}
    return means, eval_loop.scored_grid(scored['pictures'], rows)

  return evaluate


def make_image_summaries(generator) -> Callable[[Dict, Dict], Dict[str, np.ndarray]]:
  """(g_params, host batch) -> bicubic | SR | HR rows and the attention maps, uint8 (jitted)."""

  @jax.jit
  def run(params, inputs):
    sr, inter = generator.apply({'params': params}, inputs, mutable=['intermediates'])
    maps = {b: v['att_map'][0] for b, v in inter.get('intermediates', {}).items()
            if 'att_map' in v}
    return sr, maps

  def summaries(params, batch) -> Dict[str, np.ndarray]:
    n = min(4, batch['input'].shape[0])
    sr, maps = run(params, jnp.asarray(batch['input'][:n]))
    bicubic, sr, hr = (visualize.to_uint8(np.asarray(x)) for x in
                       (batch['input'][:n], sr, batch['hr'][:n]))
    out = {'samples': visualize.comparison_grid([bicubic, sr, hr], ['bicubic', 'SR', 'HR'])[None]}
    if maps:
      rows = visualize.attention_rows(bicubic, sr, [np.asarray(maps[b]) for b in
                                                    predict.forward_order(maps)])
      out['attention'] = visualize.tile_grid(rows)[None]
    return out

  return summaries


def _write_evaluation(writer, workdir: str, step: int, result, process: int) -> None:
  """Eval scalars to TensorBoard, and process 0's grid to WORKDIR/eval/step_<N>.png."""
  means, grid = result
  writer.write_scalars(step, {f'eval_{k}': v for k, v in means.items()})
  if grid is not None and process == 0:
    visualize.save_png(os.path.join(workdir, 'eval', f'step_{step:08d}.png'), grid)


def _means(totals: Dict[str, jax.Array], count: int) -> Dict[str, float]:
  """The metrics' means over the steps since the last log (one device-to-host fetch)."""
  return {k: float(v) / count for k, v in jax.device_get(totals).items()}


def _last_good(mngr) -> str:
  mngr.wait_until_finished()
  last = mngr.latest_step()
  return (f'the last good checkpoint is step {last} in {mngr.directory}' if last is not None
          else 'no checkpoint was written')


def _check_finite(step: int, scalars: Dict[str, float], mngr) -> None:
  bad = {k: v for k, v in scalars.items() if not np.isfinite(v)}
  if bad:
    raise TrainingError(f'non-finite loss at step {step}: {bad}; {_last_good(mngr)}')


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       extra_hooks: Sequence[Callable[[int], None]] = ()) -> TrainState:
  """Runs (or resumes) training in workdir; returns the final (replicated) state.

  The config is checked and the workdir locked (process 0) before anything is
  written. Evaluation (make_evaluate_fn) runs every eval_every_steps.
  extra_hooks: called with the step number after every step, like clu's
  periodic actions (a test uses one to preempt a run at a chosen step).
  """
  config_checks.validate(config)
  parallel.check_batch_size(config.batch_size)
  workdir_lock = lock.WorkdirLock(workdir) if jax.process_index() == 0 else None
  if workdir_lock is not None:
    workdir_lock.acquire()
  try:
    return _train(config, workdir, extra_hooks)
  finally:
    if workdir_lock is not None:
      workdir_lock.release()


DATA_BUILD_TIMEOUT_S = 24 * 3600  # a first build of a large face folder can take hours


def _build_data_on_process_0_first(data_config) -> None:
  """Process 0 builds the TFDS train data; the others wait, then read it.

  Left to themselves, processes sharing a data_dir (NFS on a GPU cluster)
  build it at once and one fails renaming TFDS's finished folder onto the
  other's. Hosts with data_dirs of their own build theirs after the wait.
  """
  if jax.process_index() == 0:
    sources.prepare_train_data(data_config)
  parallel.wait_for_all_processes('mrr_jax_train_data_built', timeout_s=DATA_BUILD_TIMEOUT_S)


def _prepare(config, workdir):
  """(setup, train iterator, resuming?): every check and load, nothing written yet."""
  process, processes = jax.process_index(), jax.process_count()
  ckpt_dir = os.path.join(os.path.abspath(workdir), 'checkpoints')
  resuming = (os.path.isdir(ckpt_dir)
              and checkpoints.read_only_manager(ckpt_dir).latest_step() is not None)
  if resuming:
    # Only the state's structure matters here, not the data or the schedule.
    abstract = jax.eval_shape(lambda: setup.initial_state(config))
    checkpoints.check_resume(workdir, config, abstract, checkpoints.read_only_manager(ckpt_dir))
  if processes > 1:
    _build_data_on_process_0_first(config.data)
  train_iter = pipeline.create_train_iterator(config.data, config.batch_size, config.seed,
                                              process, processes)
  steps_per_epoch = sources.steps_per_epoch(config.data, config.batch_size)
  vgg = state_lib.load_vgg(config) if config.phase == 'gan' else None
  g_params = None
  if not resuming and config.phase == 'gan':
    generator, _ = state_lib.build_models(config)
    g_params = checkpoints.load_generator_params(config.init_from, generator)
  return (setup.create(config, steps_per_epoch, g_params=g_params, vgg=vgg), train_iter,
          resuming, state_lib.train_steps(config, steps_per_epoch))


def _compile_ahead(run, state, batch) -> None:
  """Compiles the step and the health check for the batch's shapes, before the first step.

  Both hold cross-process collectives. Compiled at their first call, they would
  make a process that compiles slowly (or a host whose own persistent cache
  lacks the program: only process 0 writes one) join the first collective late, past gloo's
  30 s on CPU. Compiled here, before wait_for_all_processes, they cannot; the
  calls that follow find the executables in jax's in-memory cache.
  """
  run.step_fn.lower(state, batch).compile()
  run.health_fn.lower(state, batch).compile()


def _train(config, workdir, extra_hooks) -> TrainState:
  process = jax.process_index()
  run, train_iter, resuming, num_steps = _prepare(config, workdir)
  logging.info('training %d steps (%s)', num_steps, 'num_train_steps' if config.num_train_steps
               else f'{config.num_epochs} epochs of {num_steps // config.num_epochs} steps')
  evaluate_fn = make_evaluate_fn(config, run.generator)

  if process == 0:
    checkpoints.write_config(workdir, config)
  writer = metric_writers.create_default_writer(workdir, just_logging=process != 0)
  mngr = checkpoints.checkpoint_manager(workdir, config)
  position = checkpoints.InputPosition(train_iter)
  state = run.state
  if resuming:
    state = checkpoints.restore_checkpoint(mngr, state, position)
  start_step = int(state.step)
  state = parallel.replicate(state)
  summaries = make_image_summaries(run.generator) if config.image_every_steps else None

  hooks = []
  if process == 0:
    hooks.append(periodic_actions.ReportProgress(num_train_steps=num_steps,
                                                 writer=writer))
    if config.profile_steps:
      hooks.append(periodic_actions.Profile(num_profile_steps=config.profile_steps,
                                            logdir=workdir))
  hooks.extend(extra_hooks)
  preemption = Preemption()
  batches = parallel.prefetch_to_device(train_iter.with_positions(), size=2, with_extra=True)
  if start_step < num_steps:
    first = next(batches)
    _compile_ahead(run, state, first[0])
    batches = itertools.chain([first], batches)
  parallel.wait_for_all_processes(f'mrr_jax_first_step_{start_step}')
  totals, count, last_batch = None, 0, None
  t_log, step_log = time.time(), start_step
  step = start_step
  every = lambda n: n and step % n == 0
  eval_params = lambda s: parallel.unreplicate(s.ema_params if config.ema_decay > 0
                                               else s.g_params)
  try:
    while step < num_steps:
      batch, input_state = next(batches)
      state, step_metrics = run.step_fn(state, batch)
      position.state = input_state
      step += 1
      last_batch = batch
      step_metrics = {k: v[0] for k, v in step_metrics.items()}  # device 0's copy, no host sync
      totals = step_metrics if totals is None else {k: totals[k] + v for k, v in
                                                    step_metrics.items()}
      count += 1
      for hook in hooks:
        hook(step)
      if every(config.log_every_steps) or step == num_steps:
        scalars = _means(totals, count)
        _check_finite(step, scalars, mngr)
        scalars['g_lr'] = float(run.g_schedule(step - 1))
        if config.phase == 'gan':
          scalars['d_lr'] = state_lib.scaled_lr(config, config.d_lr)
        scalars['steps_per_s'] = (step - step_log) / max(time.time() - t_log, 1e-9)
        writer.write_scalars(step, {f'train_{k}': v for k, v in scalars.items()})
        totals, count, t_log, step_log = None, 0, time.time(), step
      if summaries is not None and every(config.image_every_steps) and process == 0:
        host_batch = jax.tree_util.tree_map(lambda x: np.asarray(x[0]), last_batch)
        writer.write_images(step, summaries(eval_params(state), host_batch))
      if evaluate_fn and every(config.eval_every_steps):
        _write_evaluation(writer, workdir, step, evaluate_fn(eval_params(state)), process)
      preempted = preemption.reached(step)
      if preempted or every(config.checkpoint_every_steps) or step == num_steps:
        if totals is not None:
          _check_finite(step, _means(totals, count), mngr)
        if not int(run.health_fn(state, last_batch)[0]):
          raise TrainingError(f'step {step}: the updated params, or what they compute, are not '
                              f'finite (not saved); {_last_good(mngr)}')
        checkpoints.save_checkpoint(mngr, state, position)
      if preempted:
        logging.warning('preempted: checkpoint saved at step %d', step)
        break
    mngr.wait_until_finished()
  finally:
    preemption.restore()
    writer.flush()
  return state
