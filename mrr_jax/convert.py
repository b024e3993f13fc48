r"""Converts generator weights between the authors' PyTorch format and mrr_jax exports.

  python -m mrr_jax.convert --generator pretrain_models/latest_net_G.pth --output exports/mrrnet_authors
  python -m mrr_jax.convert --from_export exports/mrrnet_authors --output G.safetensors

--generator is the authors' state_dict as `.pth` (read with torch.load(
weights_only=True) when torch is installed, else with mrr_jax's restricted
reader; neither runs code from the file), `.safetensors` or `.npz`; the output
is the exported-generator directory that evaluate and infer load
(mrr_jax/export_format.py). A `.safetensors` written by --from_export carries its
model config, so converting it back needs no --model_config.

--from_export writes an export's generator as the authors' state_dict (their
key names, OIHW convolution kernels) in a `.safetensors` file, the model
config JSON in its metadata under "mrr_jax.model_config"; in PyTorch:
  model.load_state_dict(safetensors.torch.load_file('G.safetensors'))

Any problem (missing file, refused or corrupt file, missing/extra/mis-shaped
key, an output in the way) is one line `error: ...` on stderr and exit
status 1, and nothing is written.
"""
import json
import os
import stat
import sys
from typing import Any, Dict, Mapping, Optional

from absl import app, flags, logging

from mrr_jax import cli
from mrr_jax.weights import export_format
from mrr_jax.weights import torch_io
from mrr_jax.weights import torch_keys

_GENERATOR = flags.DEFINE_string(
    'generator', None, 'Authors\' G state_dict (.pth, .safetensors, .npz) -> export --output.')
_FROM_EXPORT = flags.DEFINE_string(
    'from_export', None, 'Export directory -> the authors\' state_dict at --output (.safetensors).')
_OUTPUT = flags.DEFINE_string('output', None, 'Export directory or .safetensors file to create.')
_MODEL = flags.DEFINE_string(
    'model_config', '', 'JSON of MRRNet fields when the weights are not the default '
    'architecture (and not a .safetensors that names it), e.g. \'{"num_res": 6}\'.')
_OVERWRITE = flags.DEFINE_bool(
    'overwrite', False, 'Replace an existing output (a .safetensors output only if the file '
    'there is itself a safetensors file).')

# Metadata key of the model config in the .safetensors files --from_export writes.
MODEL_CONFIG_KEY = 'mrr_jax.model_config'
SAFETENSORS_SUFFIX = '.safetensors'


class ConvertError(ValueError):
  """The flags ask for something impossible, or the output is in the way."""


def _config_from_metadata(metadata: Mapping[str, str], path: str) -> Dict[str, Any]:
  """The model config a .safetensors file names in its metadata ({} when none)."""
  if MODEL_CONFIG_KEY not in metadata:
    return {}
  try:
    config = json.loads(metadata[MODEL_CONFIG_KEY])
  except json.JSONDecodeError as e:
    raise ConvertError(f'{path}: metadata {MODEL_CONFIG_KEY} is not JSON: {e}') from e
  if not isinstance(config, dict):
    raise ConvertError(f'{path}: metadata {MODEL_CONFIG_KEY} is not a JSON object')
  return config


def convert_generator(generator_path: str, output: str,
                      model_config: Optional[Dict[str, Any]] = None,
                      overwrite: bool = False) -> str:
  """State dict file -> export directory; returns the directory.

  The architecture is model_config when given, else the one a .safetensors
  file's metadata names, else MRRNet's defaults.
  """
  state = torch_io.load_state_dict(generator_path)
  file_config = {}
  if generator_path.endswith(SAFETENSORS_SUFFIX):
    file_config = _config_from_metadata(torch_io.safetensors_metadata(generator_path),
                                        generator_path)
  model = export_format.build_generator(file_config if model_config is None else model_config)
  params = torch_keys.generator_from_torch(state, export_format.param_shapes(model))
  return export_format.save_generator(
      output, model, params, metadata={'source': 'mrr_jax.convert', 'weights': generator_path},
      overwrite=overwrite)


def _in_the_way(path: str) -> Optional[str]:
  """What occupies `path` when --overwrite may not replace it; None for a safetensors file."""
  mode = os.lstat(path).st_mode
  if stat.S_ISLNK(mode):
    return 'a symbolic link'
  if stat.S_ISDIR(mode):
    return 'a directory'
  if not stat.S_ISREG(mode):
    return 'not a regular file'
  try:
    torch_io.safetensors_metadata(path)
  except torch_io.StateDictError:
    return 'a file that is not safetensors'
  return None


def _check_output_free(path: str, overwrite: bool) -> None:
  """Refuses an existing output, and with overwrite anything but a safetensors file."""
  if not os.path.lexists(path):
    return
  if not overwrite:
    raise ConvertError(f'{path} already exists; pass --overwrite to replace it')
  there = _in_the_way(path)
  if there:
    raise ConvertError(f'{path} is {there}; --overwrite replaces only a safetensors file')


def export_to_safetensors(export_dir: str, output: str, overwrite: bool = False) -> str:
  """Export directory -> the authors' state_dict as a .safetensors file; returns its path."""
  output = os.path.abspath(output)
  if not output.endswith(SAFETENSORS_SUFFIX):
    raise ConvertError(f'--output {output}: --from_export writes a {SAFETENSORS_SUFFIX} file; '
                       f'name it *{SAFETENSORS_SUFFIX}')
  if not os.path.isdir(os.path.dirname(output)):
    raise ConvertError(f'--output {output}: folder {os.path.dirname(output)} does not exist')
  _check_output_free(output, overwrite)
  model, params, _ = export_format.load_generator(export_dir)
  metadata = {
      'format': 'pt',  # what safetensors.torch and its users expect to find
      MODEL_CONFIG_KEY: json.dumps(export_format.model_config(model), sort_keys=True),
      'mrr_jax.source': 'mrr_jax.convert --from_export',  # no local paths in a file to share
  }
  return torch_io.write_safetensors(output, torch_keys.generator_to_torch(params), metadata)


def _fail(message: str) -> None:
  print(f'error: {" ".join(message.splitlines())}', file=sys.stderr)
  sys.exit(1)


def _run() -> str:
  """Does what the flags ask; returns the path written."""
  if bool(_GENERATOR.value) == bool(_FROM_EXPORT.value) or not _OUTPUT.value:
    raise ConvertError('give --output and exactly one of --generator (PyTorch -> export) '
                       'and --from_export (export -> .safetensors)')
  if _FROM_EXPORT.value:
    if _MODEL.value:
      raise ConvertError('--model_config is for --generator; an export names its own config')
    return export_to_safetensors(_FROM_EXPORT.value, _OUTPUT.value, _OVERWRITE.value)
  try:
    model_config = json.loads(_MODEL.value) if _MODEL.value else None
  except json.JSONDecodeError as e:
    raise ConvertError(f'--model_config is not JSON: {e}') from e
  return convert_generator(_GENERATOR.value, _OUTPUT.value, model_config, _OVERWRITE.value)


def main(argv):
  if len(argv) > 1:
    _fail(f'unexpected arguments {argv[1:]}')
  try:
    path = _run()
  except (ConvertError, torch_io.StateDictError, torch_keys.WeightsError, export_format.ExportError,
          OSError) as e:
    _fail(str(e))
  logging.info('wrote %s', path)
  print(path)


if __name__ == '__main__':
  cli.run(main)
