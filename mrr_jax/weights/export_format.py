"""The exported-generator format: everything needed to run a trained MRRNet.

An export is a directory holding
  model.json      {"format": "mrr_jax.generator", "version": 1,
                   "model": {MRRNet fields}, "metadata": {...}}
  params.msgpack  the flax params tree (float32), flax.serialization msgpack.

`mrr_jax.convert` writes it from the authors' PyTorch weights, `mrr_jax.export`
from a training checkpoint; evaluate and infer load it. Directories are
written to a temporary sibling and renamed into place, so a failure never
leaves a half-written export.
"""
import json
import os
import shutil
import tempfile
from typing import Any, Dict, Mapping, Optional, Tuple

import flax
import jax
import jax.numpy as jnp
import numpy as np

from mrr_jax.models.generator import MRRNet

FORMAT_NAME = 'mrr_jax.generator'
FORMAT_VERSION = 1
MODEL_FILE = 'model.json'
PARAMS_FILE = 'params.msgpack'
# With --serving also mrr_jax.weights.serving's files (kept in step by a test).
SERVING_FILES = ('serving.jaxexport', 'serving.json', 'load_serving.py')
EXPORT_FILES = (MODEL_FILE, PARAMS_FILE) + SERVING_FILES
# A training workdir's copy of its config; export reads the architecture from it.
RUN_CONFIG_FILE = 'config.json'
MODEL_FIELDS = ('base_channels', 'max_channels', 'num_down', 'num_res', 'attention',
                'att_kernels', 'out_channels')


class ExportError(ValueError):
  """A missing, malformed or mismatched export directory."""


def model_config(model: MRRNet) -> Dict[str, Any]:
  """The architecture fields of an MRRNet, JSON-serialisable."""
  cfg = {f: getattr(model, f) for f in MODEL_FIELDS}
  cfg['att_kernels'] = list(cfg['att_kernels'])
  return cfg


def build_generator(cfg: Mapping[str, Any], dtype=jnp.float32) -> MRRNet:
  """MRRNet from a model-config dict; unknown keys are an error naming them."""
  unknown = sorted(set(cfg) - set(MODEL_FIELDS))
  if unknown:
    raise ExportError(f'unknown generator config keys {unknown}; valid: {list(MODEL_FIELDS)}')
  kwargs = dict(cfg)
  if 'att_kernels' in kwargs:
    kwargs['att_kernels'] = tuple(int(k) for k in kwargs['att_kernels'])
  return MRRNet(dtype=dtype, **kwargs)


def param_shapes(model: MRRNet) -> Dict[Tuple[str, ...], Tuple[int, ...]]:
  """Flat {path: shape} of the model's params, without computing anything."""
  abstract = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 128, 128, 3)))
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(abstract['params']))
  return {k: tuple(v.shape) for k, v in flat.items()}


def check_params(model: MRRNet, params: Mapping[str, Any]) -> None:
  """Raises ExportError naming every missing, unexpected or mis-shaped param."""
  want = param_shapes(model)
  got = {k: tuple(np.shape(v)) for k, v in flax.traverse_util.flatten_dict(dict(params)).items()}
  problems = [f'missing {"/".join(k)} {want[k]}' for k in sorted(set(want) - set(got))]
  problems += [f'unexpected {"/".join(k)}' for k in sorted(set(got) - set(want))]
  problems += [f'{"/".join(k)}: shape {got[k]}, expected {want[k]}'
               for k in sorted(set(want) & set(got)) if want[k] != got[k]]
  if problems:
    raise ExportError('params do not fit the generator config: ' + '; '.join(problems))


def _listing(path: str, limit: int = 5) -> str:
  """'3 entries: a.jpg, b.jpg, notes.txt' for the refusal messages."""
  names = sorted(os.listdir(path))
  shown = ', '.join(names[:limit]) + (', ...' if len(names) > limit else '')
  return f'{len(names)} entries: {shown}' if names else 'nothing'


def check_replaceable(path: str) -> None:
  """Raises ExportError unless `path` is an export that --overwrite may replace.

  Only a folder whose model.json says it is an mrr_jax export, and that holds
  nothing but the files an export is made of, is ever removed: a mistyped
  --output must not delete a folder of photos or a training run.
  """
  if not os.path.isdir(path):
    raise ExportError(f'refusing to overwrite {path}: it is a file, not an export directory')
  try:
    read_model_json(path)
  except ExportError as e:
    raise ExportError(f'refusing to overwrite {path}: it is not an mrr_jax export '
                      f'(it holds {_listing(path)})') from e
  foreign = sorted(set(os.listdir(path)) - set(EXPORT_FILES))
  if foreign:
    raise ExportError(f'refusing to overwrite {path}: besides the export it holds '
                      f'{", ".join(foreign[:5])}{", ..." if len(foreign) > 5 else ""}, '
                      'which mrr_jax did not write; move them or choose a new output directory')


def check_output_dir(path: str, overwrite: bool) -> str:
  """The absolute output path, after the checks save_generator makes before writing."""
  path = os.path.abspath(path)
  if os.path.lexists(path):
    if not overwrite:
      raise ExportError(f'{path} already exists; choose a new output directory '
                        '(or pass --overwrite to replace an earlier export there)')
    check_replaceable(path)
  parent = os.path.dirname(path)
  if os.path.exists(parent) and not os.path.isdir(parent):
    raise ExportError(f'cannot create {path}: {parent} is a file')
  return path


def _replace_dir(tmp: str, path: str) -> None:
  """Moves the finished folder `tmp` to `path`, replacing an export there.

  The old export is first renamed aside, so at every moment `path` holds
  either the whole old export or the whole new one.
  """
  if not os.path.lexists(path):
    os.replace(tmp, path)
    return
  old = tempfile.mkdtemp(prefix='.' + os.path.basename(path) + '.old-', dir=os.path.dirname(path))
  os.rmdir(old)
  os.replace(path, old)
  try:
    os.replace(tmp, path)
  except BaseException:
    os.replace(old, path)
    raise
  shutil.rmtree(old, ignore_errors=True)


def save_generator(path: str, model: MRRNet, params: Mapping[str, Any],
                   metadata: Optional[Mapping[str, Any]] = None, overwrite: bool = False,
                   serving: bool = False) -> str:
  """Writes an export directory atomically; returns its path.

  With overwrite, replaces only an earlier export (check_replaceable).
  serving: also the jax.export program (mrr_jax.weights.serving).
  """
  check_params(model, params)
  path = check_output_dir(path, overwrite)
  parent = os.path.dirname(path)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix='.' + os.path.basename(path) + '.tmp-', dir=parent)
  try:
    host_params = jax.tree_util.tree_map(lambda x: np.asarray(x, np.float32), dict(params))
    with open(os.path.join(tmp, PARAMS_FILE), 'wb') as f:
      f.write(flax.serialization.msgpack_serialize(host_params))
    doc = {'format': FORMAT_NAME, 'version': FORMAT_VERSION, 'model': model_config(model),
           'metadata': dict(metadata or {})}
    with open(os.path.join(tmp, MODEL_FILE), 'w') as f:
      json.dump(doc, f, indent=2, sort_keys=True)
    if serving:
      from mrr_jax.weights import serving as serving_lib  # pylint: disable=g-import-not-at-top
      serving_lib.write_serving(tmp, model, host_params)
    check_output_dir(path, overwrite)  # Again: something may have appeared meanwhile.
    _replace_dir(tmp, path)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return path


def read_model_json(path: str) -> Dict[str, Any]:
  model_file = os.path.join(path, MODEL_FILE)
  if not os.path.isdir(path):
    raise ExportError(f'export directory {path} does not exist')
  if not os.path.isfile(model_file):
    raise ExportError(f'{model_file} is missing: {path} is not an mrr_jax generator export '
                      '(make one with `python -m mrr_jax.convert` or `python -m mrr_jax.export`)')
  try:
    with open(model_file) as f:
      doc = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise ExportError(f'{model_file} is not readable JSON: {e}') from e
  if doc.get('format') != FORMAT_NAME or doc.get('version') != FORMAT_VERSION:
    raise ExportError(f'{model_file}: expected format {FORMAT_NAME} v{FORMAT_VERSION}, '
                      f'got {doc.get("format")} v{doc.get("version")}')
  return doc


def load_generator(path: str, dtype=jnp.float32) -> Tuple[MRRNet, Dict[str, Any], Dict[str, Any]]:
  """Loads an export: (model, params, metadata)."""
  doc = read_model_json(path)
  model = build_generator(doc['model'], dtype=dtype)
  params_file = os.path.join(path, PARAMS_FILE)
  if not os.path.isfile(params_file):
    raise ExportError(f'{params_file} is missing')
  try:
    with open(params_file, 'rb') as f:
      params = flax.serialization.msgpack_restore(f.read())
  except Exception as e:  # msgpack raises several unrelated types on corrupt input.
    raise ExportError(f'{params_file} is corrupt: {e}') from e
  check_params(model, params)
  return model, params, doc.get('metadata', {})
