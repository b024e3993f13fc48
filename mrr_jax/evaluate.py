r"""Scores a generator export (or plain bicubic) on paired face images.

  python -m mrr_jax.evaluate --model EXPORT_DIR|bicubic --hr_dir DIR \
      [--lr_dir DIR] [--save_dir DIR] [--json FILE] [--batch_size N] \
      [--lpips_backbone PATH --lpips_linear PATH]

The protocol is DIC's (see mrr_jax/metrics.py): SR quantised to uint8 values,
Y channel, 8-pixel border crop, Gaussian-window SSIM on the valid region;
--crop_border, --channel and --quantize select the other protocols found in
the literature. LR images pair with HR images by file name without extension;
without --lr_dir the LR is made from the HR as training makes it. --model
bicubic scores the network input itself (PIL bicubic 16->128), the first row
of every face-SR table.

Images that cannot be scored (unreadable, wrong size, no partner) are skipped
and listed; the table and JSON then say the result is incomplete. The exit
status is non-zero only when nothing could be scored.
"""
import dataclasses
import json
import os
import sys
import tempfile
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from absl import app
from absl import flags
from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from mrr_jax import lpips
from mrr_jax import metrics
from mrr_jax import output_paths
from mrr_jax import platform
from mrr_jax import sr_io
from mrr_jax import visualize

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')
# What --save_dir receives; an earlier evaluation's save_dir may be reused.
SAVE_DIR_ENTRIES = ('sr', 'comparison.png', 'attention.png')


class EvalError(ValueError):
  """Bad arguments or inputs that stop an evaluation as a whole."""


@dataclasses.dataclass
class Example:
  """One scored pair: HR 128x128x3 uint8 and LR 16x16x3 uint8."""
  name: str
  hr: np.ndarray
  lr: np.ndarray


# ------------------------------------------------------------------ images


def list_images(folder: str, what: str) -> Tuple[Dict[str, str], List[Dict[str, str]]]:
  """{name without extension: path} of the image files in a folder, plus clashing names."""
  if not os.path.isdir(folder):
    raise EvalError(f'{what} directory {folder} does not exist')
  found, clashes = {}, []
  for fname in sorted(os.listdir(folder)):
    stem, ext = os.path.splitext(fname)
    if fname.startswith('.') or ext.lower() not in IMAGE_EXTENSIONS:
      continue
    if stem in found:
      clashes.append({'name': fname, 'reason': f'{what} {fname} has the same name as '
                                                f'{os.path.basename(found[stem])}'})
      continue
    found[stem] = os.path.join(folder, fname)
  return found, clashes


def folder_examples(hr_dir: str, lr_dir: Optional[str],
                    skipped: List[Dict[str, str]]) -> Tuple[int, Iterator[Example]]:
  """(number of candidates, lazy Examples) from HR/LR folders; appends what cannot be scored.

  Other sources (e.g. a TFDS split) plug into `evaluate_examples` the same way:
  any iterable of Examples.
  """
  hr_files, clashes = list_images(hr_dir, 'HR')
  skipped.extend(clashes)
  lr_files = {}
  if lr_dir:
    lr_files, clashes = list_images(lr_dir, 'LR')
    skipped.extend(clashes)
    for name in sorted(set(lr_files) - set(hr_files)):
      skipped.append({'name': os.path.basename(lr_files[name]),
                      'reason': f'LR image has no HR image named {name}.* in {hr_dir}'})
  if not hr_files:
    raise EvalError(f'no images ({", ".join(IMAGE_EXTENSIONS)}) in HR directory {hr_dir}')
  names = sorted(hr_files)

  def load(name: str) -> Example:
    hr = sr_io.read_rgb(hr_files[name])
    if hr.shape[:2] != (sr_io.HR_SIZE, sr_io.HR_SIZE):
      raise EvalError(f'HR {hr_files[name]} is {hr.shape[1]}x{hr.shape[0]}, '
                      f'not {sr_io.HR_SIZE}x{sr_io.HR_SIZE}')
    if not lr_dir:
      return Example(name, hr, sr_io.degrade(hr))
    if name not in lr_files:
      raise EvalError(f'no LR image named {name}.* in {lr_dir}')
    lr = sr_io.read_rgb(lr_files[name])
    if lr.shape[:2] != (sr_io.LR_SIZE, sr_io.LR_SIZE):
      raise EvalError(f'LR {lr_files[name]} is {lr.shape[1]}x{lr.shape[0]}, '
                      f'not {sr_io.LR_SIZE}x{sr_io.LR_SIZE}')
    return Example(name, hr, lr)

  def generate() -> Iterator[Example]:
    for name in names:
      try:
        yield load(name)
      except (EvalError, sr_io.InputError) as e:
        logging.warning('skipping %s: %s', name, e)
        skipped.append({'name': os.path.basename(hr_files[name]), 'reason': str(e)})

  return len(names), generate()


# ------------------------------------------------------------------ scoring


def _score_fn(generator, lpips_net: Optional[str], channel: str, border: int, quantize: str):
  """Jitted (params, lpips params, LR-up pixels, HR pixels) -> per-image results."""

  def score(params, lpips_params, up, hr):
    sr = sr_io.super_resolve(generator, params, up, quantize)
    hr = jnp.asarray(hr, jnp.float32)
    out = {'sr': jnp.round(sr).astype(jnp.uint8)}
    out['psnr'], out['ssim'] = metrics.psnr_ssim(sr, hr, channel, border)
    if lpips_net:
      out['lpips'] = lpips.distance(lpips_net, lpips_params, sr / 127.5 - 1.0, hr / 127.5 - 1.0)
    return out

  return jax.jit(score)


def _batched(examples: Iterable[Example], size: int) -> Iterator[List[Example]]:
  batch = []
  for ex in examples:
    batch.append(ex)
    if len(batch) == size:
      yield batch
      batch = []
  if batch:
    yield batch


def _padded(batch: List[Example], size: int) -> Dict[str, np.ndarray]:
  """Stacks a batch and pads it with zero images to `size` (results of pads are dropped)."""
  up = np.stack([sr_io.upsample_lr(ex.lr) for ex in batch])
  hr = np.stack([ex.hr for ex in batch])
  pad = size - len(batch)
  if pad:
    up = np.concatenate([up, np.zeros((pad,) + up.shape[1:], np.uint8)])
    hr = np.concatenate([hr, np.zeros((pad,) + hr.shape[1:], np.uint8)])
  return {'up': up, 'hr': hr}


def _mean(values: Sequence[float]) -> float:
  return float(np.mean(values)) if values else float('nan')


def evaluate_examples(generator, params, examples: Iterable[Example], total: int,
                      batch_size: int = 16, lpips_weights: Optional[Tuple[str, Any]] = None,
                      crop_border: int = 8, channel: str = 'y', quantize: str = 'round',
                      save_dir: Optional[str] = None, num_pictures: int = 16) -> Dict[str, Any]:
  """Scores Examples batch by batch on all local devices: per-image rows and pictures."""
  # One jit over the batch, split along its first axis over all local devices
  # (params replicated); XLA partitions the per-image computation.
  mesh = jax.sharding.Mesh(np.array(jax.local_devices()), ('batch',))
  split = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec('batch'))
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  step_size = -(-max(batch_size, 1) // mesh.size) * mesh.size
  lpips_net, lpips_params = lpips_weights or (None, {})
  score = _score_fn(generator, lpips_net, channel, crop_border, quantize)
  rep_params = jax.device_put(params, replicated)
  rep_lpips = jax.device_put(lpips_params, replicated)
  with_attention = generator is not None and generator.attention != 'none'
  rows, pictures = [], {'bicubic': [], 'sr': [], 'hr': [], 'maps': []}
  done = 0
  for batch in _batched(examples, step_size):
    arrays = _padded(batch, step_size)
    out = score(rep_params, rep_lpips, *jax.device_put((arrays['up'], arrays['hr']), split))
    out = {k: np.asarray(v)[:len(batch)] for k, v in out.items()}
    for i, ex in enumerate(batch):
      rows.append({'name': ex.name, **{k: float(out[k][i]) for k in out if k != 'sr'}})
      if save_dir:
        visualize.save_png(os.path.join(save_dir, 'sr', ex.name + '.png'), out['sr'][i])
    wanted = num_pictures - len(pictures['sr']) if save_dir else 0
    if wanted > 0:
      take = slice(0, min(wanted, len(batch)))
      pictures['bicubic'].extend(arrays['up'][take])
      pictures['sr'].extend(out['sr'][take])
      pictures['hr'].extend(arrays['hr'][take])
      if with_attention:
        # Op by op: a few images once, not worth a second compilation.
        maps = sr_io.attention_maps(generator, params, arrays['up'][take])
        pictures['map_names'] = sr_io.forward_order(maps)
        pictures['maps'].append([np.asarray(maps[n]) for n in pictures['map_names']])
    done += len(batch)
    logging.info('scored %d / %d images', done, total)
  if save_dir and pictures['sr']:
    _save_pictures(save_dir, pictures, generator is None)
  return {'rows': rows}


def _save_pictures(save_dir: str, pictures: Dict[str, Any], is_bicubic: bool) -> None:
  if is_bicubic:
    columns, labels = [pictures['bicubic'], pictures['hr']], ['bicubic', 'HR']
  else:
    columns, labels = [pictures['bicubic'], pictures['sr'], pictures['hr']], ['bicubic', 'SR', 'HR']
  visualize.save_png(os.path.join(save_dir, 'comparison.png'),
                     visualize.comparison_grid([np.stack(c) for c in columns], labels))
  if pictures['maps']:
    maps = [np.concatenate(parts) for parts in zip(*pictures['maps'])]
    rows = visualize.attention_rows(np.stack(pictures['bicubic']), np.stack(pictures['sr']), maps)
    labels = ['bicubic', 'SR'] + pictures['map_names']
    visualize.save_png(os.path.join(save_dir, 'attention.png'), visualize.tile_grid(rows, labels))


# ------------------------------------------------------------------ reporting


def summarize(rows: List[Dict[str, Any]], skipped: List[Dict[str, str]]) -> Dict[str, Any]:
  """Dataset means of the per-image rows, with the skip count spelled out."""
  result = {'num_images': len(rows), 'num_skipped': len(skipped), 'complete': not skipped}
  for key in ('psnr', 'ssim', 'lpips'):
    if rows and key in rows[0]:
      result[key] = _mean([r[key] for r in rows])
  result['skipped'] = list(skipped)
  result['per_image'] = rows
  return result


def format_table(result: Dict[str, Any]) -> str:
  """The printed summary; an incomplete result says so in its first line."""
  lines = []
  if not result['complete']:
    lines.append(f'INCOMPLETE: {result["num_skipped"]} image(s) skipped, see "skipped" '
                 'in the JSON or the warnings above')
  cols = [('model', str(result['model'])), ('PSNR', f'{result["psnr"]:.4f}'),
          ('SSIM', f'{result["ssim"]:.4f}')]
  if 'lpips' in result:
    cols.append(('LPIPS', f'{result["lpips"]:.4f}'))
  cols += [('images', str(result['num_images'])), ('skipped', str(result['num_skipped']))]
  widths = [max(len(h), len(v)) for h, v in cols]
  lines.append(' | '.join(h.ljust(w) for (h, _), w in zip(cols, widths)))
  lines.append('-+-'.join('-' * w for w in widths))
  lines.append(' | '.join(v.ljust(w) for (_, v), w in zip(cols, widths)))
  p = result['protocol']
  lines.append(f'protocol: {p["channel"]} channel, {p["crop_border"]}-pixel border crop, '
               f'SR quantised by {p["quantize"]}, LR {p["lr_source"]}')
  return '\n'.join(lines)


def write_json(path: str, result: Dict[str, Any]) -> None:
  """Writes the result via a temporary file and a rename (PSNR inf is written as Infinity)."""
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', suffix='.tmp', dir=folder)
  try:
    with os.fdopen(fd, 'w') as f:
      json.dump(result, f, indent=2)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def _check_options(crop_border: int, channel: str, quantize: str) -> None:
  if channel not in metrics.CHANNELS:
    raise EvalError(f'--channel must be one of {metrics.CHANNELS}, got {channel!r}')
  if quantize not in metrics.QUANTIZE_MODES:
    raise EvalError(f'--quantize must be one of {metrics.QUANTIZE_MODES}, got {quantize!r}')
  if crop_border < 0 or sr_io.HR_SIZE - 2 * crop_border < metrics.SSIM_WINDOW:
    raise EvalError(f'--crop_border {crop_border} leaves less than an SSIM window of a '
                    f'{sr_io.HR_SIZE}x{sr_io.HR_SIZE} image')


def _load_lpips(backbone: Optional[str], linear: Optional[str]):
  if bool(backbone) != bool(linear):
    raise EvalError('LPIPS needs both --lpips_backbone (torchvision AlexNet/VGG16 weights) and '
                    '--lpips_linear (alex.pth/vgg.pth from the lpips package)')
  if not backbone:
    return None
  try:
    return lpips.load(backbone, linear)
  except lpips.LpipsWeightsError as e:
    raise EvalError(str(e)) from e


def run(model: str, hr_dir: str, lr_dir: Optional[str] = None, save_dir: Optional[str] = None,
        json_path: Optional[str] = None, batch_size: int = 16,
        lpips_backbone: Optional[str] = None, lpips_linear: Optional[str] = None,
        crop_border: int = 8, channel: str = 'y', quantize: str = 'round',
        num_pictures: int = 16) -> Dict[str, Any]:
  """Evaluates `model` (an export directory or 'bicubic') on HR[/LR] folders; returns the result.

  Raises EvalError when the run cannot start or nothing could be scored; in
  that case no JSON is written.
  """
  _check_options(crop_border, channel, quantize)
  try:  # Before any work: a bad output path must not cost the scores.
    output_paths.check_dir(save_dir, '--save_dir', ours=SAVE_DIR_ENTRIES)
    output_paths.check_file(json_path, '--json')
  except output_paths.OutputPathError as e:
    raise EvalError(str(e)) from e
  lpips_weights = _load_lpips(lpips_backbone, lpips_linear)
  try:
    generator, params, metadata = sr_io.load_model(model)
  except sr_io.InputError as e:
    raise EvalError(str(e)) from e
  skipped = []
  total, examples = folder_examples(hr_dir, lr_dir, skipped)
  scored = evaluate_examples(generator, params, examples, total, batch_size, lpips_weights,
                             crop_border, channel, quantize, save_dir, num_pictures)
  if not scored['rows']:
    reasons = '; '.join(f'{s["name"]}: {s["reason"]}' for s in skipped[:5])
    raise EvalError(f'nothing could be scored ({len(skipped)} skipped): {reasons}')
  result = {'model': model, 'model_metadata': metadata, 'hr_dir': hr_dir, 'lr_dir': lr_dir,
            'protocol': {'channel': channel, 'crop_border': crop_border, 'quantize': quantize,
                         'ssim': 'gaussian 11x11 sigma 1.5, valid region',
                         'lr_source': 'from files' if lr_dir else
                                      'made from HR (PIL bicubic 128->16)',
                         'lpips': lpips_weights[0] if lpips_weights else None}}
  result.update(summarize(scored['rows'], skipped))
  if json_path:
    write_json(json_path, result)
  return result


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> flags.FlagValues:
  """Declares the CLI flags on `fv` (called, not imported, so CLIs can share a process)."""
  flags.DEFINE_string('model', None, 'Generator export directory, or "bicubic".', flag_values=fv)
  flags.DEFINE_string('hr_dir', None, 'Folder of 128x128 HR images.', flag_values=fv)
  flags.DEFINE_string('lr_dir', None, 'Folder of 16x16 LR images named as the HR ones '
                      '(default: LR made from HR as in training).', flag_values=fv)
  flags.DEFINE_string('save_dir', None, 'Writes sr/<name>.png, comparison.png and '
                      'attention.png here.', flag_values=fv)
  flags.DEFINE_string('json', None, 'Writes the result (means, per-image rows, skips) here.',
                      flag_values=fv)
  flags.DEFINE_integer('batch_size', 16, 'Images per step over all local devices.',
                       flag_values=fv)
  flags.DEFINE_string('lpips_backbone', None, 'torchvision AlexNet/VGG16 weights (.pth/.npz).',
                      flag_values=fv)
  flags.DEFINE_string('lpips_linear', None, 'LPIPS heads: alex.pth/vgg.pth of the lpips package.',
                      flag_values=fv)
  flags.DEFINE_integer('crop_border', 8, 'Pixels cropped from each side (0 = none).',
                       flag_values=fv)
  flags.DEFINE_enum('channel', 'y', metrics.CHANNELS, 'Score the Y channel (DIC) or RGB.',
                    flag_values=fv)
  flags.DEFINE_enum('quantize', 'round', metrics.QUANTIZE_MODES,
                    'How SR outputs become pixel values (round = as saved to PNG).',
                    flag_values=fv)
  flags.DEFINE_integer('num_pictures', 16, 'Images shown in comparison.png and attention.png.',
                       flag_values=fv)
  return fv


def main(argv: Sequence[str], fv: flags.FlagValues = flags.FLAGS) -> None:
  """The CLI: prints the table; exits non-zero with the reason when nothing was scored."""
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if not fv.model or not fv.hr_dir:
    raise app.UsageError('--model and --hr_dir are required')
  try:
    result = run(fv.model, fv.hr_dir, fv.lr_dir, fv.save_dir, fv.json, fv.batch_size,
                 fv.lpips_backbone, fv.lpips_linear, fv.crop_border, fv.channel, fv.quantize,
                 fv.num_pictures)
  except EvalError as e:
    sys.exit(f'error: {e}')
  print(format_table(result))


if __name__ == '__main__':
  platform.reexec_with_hugepage_malloc()  # First: it restarts the process.
  define_flags()
  app.run(main)
