r"""Trains MRRNet (phase 1) or MRRGAN (phase 2).

  python -m mrr_jax.main --config configs/mrrnet.py --workdir runs/mrrnet
  python -m mrr_jax.main --config configs/mrrgan.py --workdir runs/mrrgan \
      --config.init_from=runs/mrrnet --config.vgg_weights=/path/vgg19-dcbb9e9d.pth

Multi-host: pass --coordinator_address/--num_processes/--process_id, or
--distributed to let jax.distributed.initialize() read the cluster (TPU pods,
SLURM). A workdir that holds a checkpoint is resumed.
"""
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from mrr_jax import cli
from mrr_jax.train import config_checks
from mrr_jax.train import lock

_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for checkpoints and TensorBoard logs.')
config_flags.DEFINE_config_file('config', None, 'Training configuration file.', lock_config=True)
_DISTRIBUTED = flags.DEFINE_bool('distributed', False,
                                 'Call jax.distributed.initialize() with auto-detection.')
_COORDINATOR = flags.DEFINE_string('coordinator_address', None, 'host:port of process 0.')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None, 'Number of processes.')
_PROCESS_ID = flags.DEFINE_integer('process_id', None, 'This process\' index.')
flags.mark_flags_as_required(['config', 'workdir'])


def _hide_accelerators_from_tensorflow():
  """TF (used by TFDS and TensorBoard) must not grab GPU/TPU memory jax needs."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.set_visible_devices([], 'GPU')
  tf.config.set_visible_devices([], 'TPU')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  try:  # Before anything is imported, started or written.
    config_checks.validate(flags.FLAGS.config)
  except config_checks.ConfigError as e:
    _fail(e)
  _hide_accelerators_from_tensorflow()
  import jax  # pylint: disable=g-import-not-at-top
  if _COORDINATOR.value or _NUM_PROCESSES.value or _DISTRIBUTED.value:
    # Cross-process collectives on CPU hosts (tests, CPU clusters) need gloo;
    # the setting does not affect GPU or TPU backends.
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
    jax.distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  from mrr_jax.train import loop, state  # pylint: disable=g-import-not-at-top
  logging.info('JAX process %d / %d, local devices %s', jax.process_index(),
               jax.process_count(), jax.local_devices())
  try:
    loop.train_and_evaluate(flags.FLAGS.config, _WORKDIR.value)
  except (state.TrainingError, lock.WorkdirLockedError, ValueError) as e:
    _fail(e)


def _fail(error: Exception) -> None:
  logging.error('%s', error)
  print(f'error: {error}', file=sys.stderr)
  sys.exit(1)


if __name__ == '__main__':
  cli.run(main, config_flags=True)
