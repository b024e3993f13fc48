"""Checkpoints: what is saved, how a run resumes, and what it refuses to resume.

A checkpoint holds the whole TrainState and the input iterator's position
(grain's handler), written asynchronously by orbax; a workdir holding one is
resumed exactly. check_resume refuses, before anything is written, a config
that would change the state's shape (mrr_jax.train.config_checks).
"""
import json
import os
from typing import Any, Dict, Optional, Tuple

from absl import logging
import grain.checkpoint as grain_checkpoint
import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from mrr_jax import outputs
from mrr_jax.models import MRRNet
from mrr_jax.train import config_checks, parallel
from mrr_jax.train.state import TrainState, TrainingError
from mrr_jax.weights import export_format


# ----------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------
class InputPosition:
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


def read_only_manager(ckpt_dir: str) -> ocp.CheckpointManager:
  """Reads checkpoints without creating or cleaning anything in ckpt_dir."""
  options = ocp.CheckpointManagerOptions(create=False, read_only=True)
  return ocp.CheckpointManager(ckpt_dir, options=options,
                               item_handlers={'state': ocp.StandardCheckpointHandler()})


def load_generator_params(path: str, generator: MRRNet) -> Dict[str, Any]:
  """G params from a phase-1 workdir/checkpoint dir or an export (config.init_from)."""
  if not path:
    raise TrainingError('the GAN phase starts from a phase-1 generator: set --config.init_from '
                        'to a phase-1 workdir, its checkpoints/ directory, or an export')
  if not os.path.exists(path):
    raise TrainingError(f'config.init_from={path} does not exist')
  if os.path.isfile(os.path.join(path, export_format.MODEL_FILE)):
    _, params, _ = export_format.load_generator(path)
  else:
    ckpt_dir, step = _checkpoint_location(path)
    mngr = read_only_manager(ckpt_dir)
    step = mngr.latest_step() if step is None else step
    if step is None:
      raise TrainingError(f'config.init_from={path} holds no checkpoint (give a phase-1 '
                          'workdir, its checkpoints/ directory, one step folder in it, or an export)')
    restored = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    params = restored['state']['g_params']
    logging.info('phase 2: G from %s step %d', ckpt_dir, step)
  try:
    export_format.check_params(generator, params)
  except export_format.ExportError as e:
    raise TrainingError(f'config.init_from={path} is incompatible with config.model: {e}') from e
  return jax.tree_util.tree_map(jnp.asarray, params)


def write_config(workdir: str, config) -> None:
  """The run's config beside its checkpoints: export reads the architecture from it."""
  text = config.to_json_best_effort(indent=2, sort_keys=True)
  outputs.write_atomically(os.path.join(workdir, export_format.RUN_CONFIG_FILE),
                           lambda f: f.write(text), binary=False)


def _path_name(path) -> str:
  """'g_params/encoder_0/conv2d/kernel' for a pytree path of the state or of its
  checkpoint's metadata (dataclass fields and tuples there are dict keys here)."""
  parts = (getattr(k, 'key', getattr(k, 'name', getattr(k, 'idx', k))) for k in path)
  return '/'.join(str(p) for p in parts)


def check_resume(workdir: str, config, abstract_state: TrainState, mngr) -> None:
  """Refuses, before anything is written, a resume whose config or state does not fit.

  Compares the run's config.json (what shapes the state: config_checks) and
  then the latest checkpoint's array shapes with the state this config builds.
  """
  step = mngr.latest_step()
  if step is None:
    return
  saved_path = os.path.join(workdir, export_format.RUN_CONFIG_FILE)
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
