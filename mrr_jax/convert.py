r"""Converts the authors' PyTorch generator weights into an mrr_jax export.

  python -m mrr_jax.convert --generator pretrain_models/latest_net_G.pth --output exports/mrrnet_authors

--generator is the authors' `.pth` (read with torch when installed, else with
mrr_jax's restricted reader) or an `.npz` with the same keys. The output is
the exported-generator directory that evaluate and infer load
(mrr_jax/exported.py). Any problem (missing file, missing/extra/mis-shaped
key) exits non-zero with a message naming it, and leaves no output behind.
"""
import json
import sys
from typing import Any, Dict, Optional

from absl import app, flags, logging

from mrr_jax import exported, torch_io, weights

_GENERATOR = flags.DEFINE_string('generator', None, 'Authors\' G state_dict: .pth or .npz.')
_OUTPUT = flags.DEFINE_string('output', None, 'Export directory to create.')
_MODEL = flags.DEFINE_string(
    'model_config', '', 'JSON of MRRNet fields when the weights are not the default '
    'architecture, e.g. \'{"num_res": 6}\'.')
_OVERWRITE = flags.DEFINE_bool('overwrite', False, 'Replace an existing output directory.')


def convert_generator(generator_path: str, output: str,
                      model_config: Optional[Dict[str, Any]] = None,
                      overwrite: bool = False) -> str:
  """State dict file -> export directory; returns the directory."""
  model = exported.build_generator(model_config or {})
  state = torch_io.load_state_dict(generator_path)
  params = weights.generator_from_torch(state, exported.param_shapes(model))
  return exported.save_generator(
      output, model, params, metadata={'source': 'mrr_jax.convert', 'weights': generator_path},
      overwrite=overwrite)


def main(argv):
  del argv
  if not _GENERATOR.value or not _OUTPUT.value:
    raise app.UsageError('--generator and --output are required')
  try:
    model_config = json.loads(_MODEL.value) if _MODEL.value else None
    path = convert_generator(_GENERATOR.value, _OUTPUT.value, model_config, _OVERWRITE.value)
  except (torch_io.StateDictError, weights.WeightsError, exported.ExportError,
          json.JSONDecodeError) as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)
  logging.info('wrote %s', path)
  print(path)


if __name__ == '__main__':
  app.run(main)
