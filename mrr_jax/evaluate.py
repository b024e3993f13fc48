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

HR and LR pair by mrr_jax.data.pairs' rule; the scoring is
mrr_jax.evaluation.loop's, the one periodic evaluation runs too. Images that
cannot be scored (unreadable, wrong size, no partner) are skipped and listed;
the table and JSON then say the result is incomplete. The exit status is
non-zero only when nothing could be scored; output paths are checked before
any work.
"""
import json
import sys
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from absl import flags
from absl import logging
import numpy as np

from mrr_jax import cli
from mrr_jax import outputs
from mrr_jax.data import bad_files, degradations, images, pairs
from mrr_jax.evaluation import lpips, loop, metrics, predict

# What --save_dir receives; an earlier evaluation's save_dir may be reused.
SAVE_DIR_ENTRIES = ('sr', 'comparison.png', 'attention.png')


class EvalError(ValueError):
  """Bad arguments or inputs that stop an evaluation as a whole."""


# ------------------------------------------------------------------ pairs


def folder_examples(hr_dir: str, lr_dir: Optional[str], skipped: List[Dict[str, str]],
                    lr_resize: str = 'pil') -> Tuple[int, Iterator[pairs.Example]]:
  """(number of pairs, lazily loaded Examples); appends what cannot be scored to skipped."""
  try:
    found, bad = pairs.find_pairs(hr_dir, lr_dir or None)
  except bad_files.DataError as e:
    raise EvalError(str(e)) from e
  skipped.extend({'name': b['file'], 'reason': b['reason']} for b in bad)

  def generate() -> Iterator[pairs.Example]:
    for pair in found:
      try:
        yield pairs.load_pair(pair, lr_resize)
      except bad_files.BadImageError as e:
        reason = str(e) if 'no LR image' in str(e) else f'cannot read image {pair.hr_file}: {e}'
        logging.warning('skipping %s: %s', pair.hr_file, reason)
        skipped.append({'name': pair.hr_file, 'reason': reason})

  return len(found), generate()


# ------------------------------------------------------------------ reporting


def summarize(rows: List[Dict[str, Any]], skipped: List[Dict[str, str]]) -> Dict[str, Any]:
  """Dataset means of the per-image rows, with the skip count spelled out."""
  result = {'num_images': len(rows), 'num_skipped': len(skipped), 'complete': not skipped}
  for key in ('psnr', 'ssim', 'lpips'):
    if rows and key in rows[0]:
      result[key] = float(np.mean([r[key] for r in rows]))
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
  """Writes the result atomically (PSNR inf is written as Infinity)."""
  outputs.write_atomically(path, lambda f: json.dump(result, f, indent=2), binary=False)


def _check_options(crop_border: int, channel: str, quantize: str) -> None:
  if channel not in metrics.CHANNELS:
    raise EvalError(f'--channel must be one of {metrics.CHANNELS}, got {channel!r}')
  if quantize not in metrics.QUANTIZE_MODES:
    raise EvalError(f'--quantize must be one of {metrics.QUANTIZE_MODES}, got {quantize!r}')
  if crop_border < 0 or images.HR_SIZE - 2 * crop_border < metrics.SSIM_WINDOW:
    raise EvalError(f'--crop_border {crop_border} leaves less than an SSIM window of a '
                    f'{images.HR_SIZE}x{images.HR_SIZE} image')


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
        num_pictures: int = 16, resize: str = 'pil') -> Dict[str, Any]:
  """Evaluates `model` (an export directory or 'bicubic') on HR[/LR] folders; returns the result.

  Raises EvalError when the run cannot start or nothing could be scored; in
  that case no JSON is written.
  """
  _check_options(crop_border, channel, quantize)
  if resize not in degradations.LR_RESIZES:
    raise EvalError(f'--resize must be one of {", ".join(degradations.LR_RESIZES)}, got {resize!r}')
  try:  # Before any work: a bad output path must not cost the scores.
    outputs.check_dir(save_dir, '--save_dir', ours=SAVE_DIR_ENTRIES)
    outputs.check_file(json_path, '--json')
  except outputs.OutputPathError as e:
    raise EvalError(str(e)) from e
  lpips_weights = _load_lpips(lpips_backbone, lpips_linear)
  try:
    generator, params, metadata = predict.load_model(model)
  except predict.ModelError as e:
    raise EvalError(str(e)) from e
  skipped = []
  total, examples = folder_examples(hr_dir, lr_dir, skipped, resize)
  scored = loop.score_examples(generator, params, examples, batch_size, lpips_weights,
                               crop_border, channel, quantize, save_dir,
                               num_pictures if save_dir else 0, total)
  if save_dir:
    loop.save_pictures(save_dir, scored['pictures'], generator is None)
  if not scored['rows']:
    reasons = '; '.join(f'{s["name"]}: {s["reason"]}' for s in skipped[:5])
    raise EvalError(f'nothing could be scored ({len(skipped)} skipped): {reasons}')
  result = {'model': model, 'model_metadata': metadata, 'hr_dir': hr_dir, 'lr_dir': lr_dir,
            'protocol': {'channel': channel, 'crop_border': crop_border, 'quantize': quantize,
                         'ssim': 'gaussian 11x11 sigma 1.5, valid region',
                         'lr_source': 'from files' if lr_dir else
                                      f'made from HR ({resize} bicubic 128->16)',
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
  flags.DEFINE_enum('resize', 'pil', degradations.LR_RESIZES, 'Without --lr_dir, how LR is made '
                    'from HR: pil (as training does by default) or matlab (imresize).',
                    flag_values=fv)
  flags.DEFINE_integer('num_pictures', 16, 'Images shown in comparison.png and attention.png.',
                       flag_values=fv)
  return fv


def main(argv: Sequence[str], fv: flags.FlagValues = flags.FLAGS) -> None:
  """The CLI: prints the table; exits non-zero with the reason when nothing was scored."""
  cli.check_args(argv, fv, ('model', 'hr_dir'))
  cli.enable_compilation_cache()
  try:
    result = run(fv.model, fv.hr_dir, fv.lr_dir, fv.save_dir, fv.json, fv.batch_size,
                 fv.lpips_backbone, fv.lpips_linear, fv.crop_border, fv.channel, fv.quantize,
                 fv.num_pictures, fv.resize)
  except EvalError as e:
    sys.exit(f'error: {e}')
  print(format_table(result))


if __name__ == '__main__':
  define_flags()
  cli.run(main)
