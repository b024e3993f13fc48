r"""Writes the generator of a training checkpoint as an export (mrr_jax/export_format.py).

  python -m mrr_jax.export --workdir runs/mrrnet --output exports/mrrnet
  python -m mrr_jax.export --workdir runs/mrrgan --step 50000 --ema --output exports/mrrgan_ema

The architecture comes from the run's config.json (written by the trainer),
the weights from the orbax checkpoint (the latest unless --step). The export
is what `mrr_jax.convert` writes, so evaluate and infer load either alike.
"""
import json
import os
import sys
from typing import Optional

from absl import app, flags, logging
import orbax.checkpoint as ocp

from mrr_jax import cli
from mrr_jax.weights import export_format

_WORKDIR = flags.DEFINE_string('workdir', None, 'Training workdir (holds checkpoints/ and config.json).')
_STEP = flags.DEFINE_integer('step', None, 'Checkpoint step (default: the latest).')
_EMA = flags.DEFINE_bool('ema', False, 'Export the EMA generator (runs with config.ema_decay > 0).')
_OUTPUT = flags.DEFINE_string('output', None, 'Export directory to create.')
_OVERWRITE = flags.DEFINE_bool('overwrite', False, 'Replace an existing output directory.')
_SERVING = flags.DEFINE_bool('serving', False, 'Also write serving.jaxexport: the whole model as '
                             'one StableHLO program for cpu, cuda and tpu that runs with jax '
                             'alone (load_serving.py).')


class ExportCheckpointError(ValueError):
  """The workdir, step or EMA weights asked for do not exist."""


def export_checkpoint(workdir: str, output: str, step: Optional[int] = None, ema: bool = False,
                      overwrite: bool = False, serving: bool = False) -> str:
  """Checkpoint in `workdir` -> export directory `output`; returns its path."""
  config_path = os.path.join(workdir, export_format.RUN_CONFIG_FILE)
  if not os.path.isfile(config_path):
    raise ExportCheckpointError(f'{config_path} is missing: {workdir} is not an mrr_jax '
                                'training workdir')
  with open(config_path) as f:
    config = json.load(f)
  model = export_format.build_generator(config['model'])
  ckpt_dir = os.path.join(os.path.abspath(workdir), 'checkpoints')
  mngr = ocp.CheckpointManager(ckpt_dir, item_names=('state',))
  steps = list(mngr.all_steps())
  if not steps:
    raise ExportCheckpointError(f'{ckpt_dir} holds no checkpoint')
  step = max(steps) if step is None else step
  if step not in steps:
    raise ExportCheckpointError(f'no checkpoint for step {step} in {ckpt_dir}; have {sorted(steps)}')
  state = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))['state']
  key = 'ema_params' if ema else 'g_params'
  if not state.get(key):
    raise ExportCheckpointError(f'the run kept no EMA generator (config.ema_decay was '
                                f'{config.get("ema_decay")}); export without --ema')
  metadata = {'source': 'mrr_jax.export', 'workdir': os.path.abspath(workdir), 'step': step,
              'ema': ema, 'phase': config.get('phase')}
  return export_format.save_generator(output, model, state[key], metadata=metadata, overwrite=overwrite,
                                      serving=serving)


def main(argv):
  del argv
  if not _WORKDIR.value or not _OUTPUT.value:
    raise app.UsageError('--workdir and --output are required')
  try:
    path = export_checkpoint(_WORKDIR.value, _OUTPUT.value, _STEP.value, _EMA.value,
                             _OVERWRITE.value, _SERVING.value)
  except (ExportCheckpointError, export_format.ExportError) as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)
  logging.info('wrote %s', path)
  print(path)


if __name__ == '__main__':
  cli.run(main)
