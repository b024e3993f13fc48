r"""Super-resolves every image in a folder with a generator export.

  python -m mrr_jax.infer --model EXPORT_DIR --input DIR --output DIR

Inputs are 16x16 LR faces; other sizes are resized to 16x16 first (PIL
bicubic, with a warning). Each output is a 128x128 PNG with the input's name
and a .png extension, quantised as evaluate saves SR (clip, map, round).
Unreadable files are reported and skipped; the rest are still written, each
atomically. The exit status is non-zero only when nothing was written.
"""
import os
import sys
from typing import Any, Dict, List, Sequence

from absl import flags
from absl import logging
import jax
import numpy as np

from mrr_jax import cli
from mrr_jax import outputs
from mrr_jax import visualize
from mrr_jax.data import bad_files, degradations, images, resize
from mrr_jax.evaluation import predict


class InferError(ValueError):
  """Bad arguments, or a folder from which nothing could be written."""


def _read_lr(path: str, warnings: List[str]) -> np.ndarray:
  lr = images.read_rgb(path)
  if lr.shape[:2] != (images.LR_SIZE, images.LR_SIZE):
    msg = (f'{path} is {lr.shape[1]}x{lr.shape[0]}; resized to '
           f'{images.LR_SIZE}x{images.LR_SIZE} (PIL bicubic) before super-resolving')
    logging.warning(msg)
    warnings.append(msg)
    lr = resize.pil_bicubic(lr, images.LR_SIZE)
  return lr


def run(model: str, input_dir: str, output_dir: str, batch_size: int = 16,
        overwrite: bool = False, quantize: str = 'round') -> Dict[str, Any]:
  """Writes output_dir/<name>.png for every readable input; returns written/skipped/warnings.

  output_dir must be new or empty unless overwrite (then same-named files are replaced).
  """
  if quantize not in ('round', 'floor'):
    raise InferError(f'--quantize must be round or floor, got {quantize!r}')
  if batch_size <= 0:
    raise InferError(f'--batch_size must be positive, got {batch_size}')
  if not os.path.isdir(input_dir):
    raise InferError(f'input directory {input_dir} does not exist')
  try:
    outputs.check_dir(output_dir, '--output', overwrite=overwrite)
  except outputs.OutputPathError as e:
    raise InferError(str(e)) from e
  if os.path.abspath(output_dir) == os.path.abspath(input_dir):
    raise InferError('--output must not be the --input folder')
  try:
    generator, params, _ = predict.load_model(model)
  except predict.ModelError as e:
    raise InferError(str(e)) from e
  if generator is None:
    raise InferError('--model must be a generator export directory')
  sr_fn = jax.jit(lambda p, x: predict.super_resolve(generator, p, x, quantize))
  files = sorted(f for f in os.listdir(input_dir)
                 if not f.startswith('.') and os.path.isfile(os.path.join(input_dir, f)))
  written, skipped, warnings, taken = [], [], [], {}
  batch: List[tuple] = []

  def flush():
    pixels = degradations.upsample_lr_batch(np.stack([lr for _, lr in batch])).astype(np.uint8)
    # Pad the last batch to full size: one compiled shape for the whole folder.
    pad = np.zeros((batch_size - len(batch),) + pixels.shape[1:], np.uint8)
    sr = np.asarray(sr_fn(params, np.concatenate([pixels, pad]))).astype(np.uint8)
    for (out_name, _), image in zip(batch, sr):
      visualize.save_png(os.path.join(output_dir, out_name), image)
      written.append(out_name)
    batch.clear()

  for fname in files:
    out_name = os.path.splitext(fname)[0] + '.png'
    if out_name in taken:
      skipped.append({'name': fname, 'reason': f'same output name {out_name} as {taken[out_name]}'})
      continue
    try:
      lr = _read_lr(os.path.join(input_dir, fname), warnings)
    except bad_files.BadImageError as e:
      logging.warning('skipping %s: %s', fname, e)
      skipped.append({'name': fname, 'reason': str(e)})
      continue
    taken[out_name] = fname
    batch.append((out_name, lr))
    if len(batch) == batch_size:
      flush()
  if batch:
    flush()
  if not written:
    raise InferError(f'nothing written from {input_dir}: ' + (
        '; '.join(f'{s["name"]}: {s["reason"]}' for s in skipped[:5]) or 'no files'))
  return {'written': written, 'skipped': skipped, 'warnings': warnings}


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> flags.FlagValues:
  """Declares the CLI flags on `fv` (called, not imported, so CLIs can share a process)."""
  flags.DEFINE_string('model', None, 'Generator export directory.', flag_values=fv)
  flags.DEFINE_string('input', None, 'Folder of 16x16 LR face images.', flag_values=fv)
  flags.DEFINE_string('output', None, 'Folder for the 128x128 PNG results.', flag_values=fv)
  flags.DEFINE_integer('batch_size', 16, 'Images per generator call.', flag_values=fv)
  flags.DEFINE_enum('quantize', 'round', ['round', 'floor'], 'How SR becomes 8-bit pixels: '
                    'round (as evaluate scores them) or floor (as the authors\' code saves '
                    'PNGs, uint8 truncation).', flag_values=fv)
  cli.define_overwrite_flag(fv)
  return fv


def main(argv: Sequence[str], fv: flags.FlagValues = flags.FLAGS) -> None:
  """The CLI: reports what was written and skipped; non-zero exit when nothing was written."""
  cli.check_args(argv, fv, ('model', 'input', 'output'))
  cli.enable_compilation_cache()
  try:
    result = run(fv.model, fv.input, fv.output, fv.batch_size, fv.overwrite, fv.quantize)
  except InferError as e:
    sys.exit(f'error: {e}')
  print(f'wrote {len(result["written"])} image(s) to {fv.output}')
  for s in result['skipped']:
    print(f'skipped {s["name"]}: {s["reason"]}')


if __name__ == '__main__':
  define_flags()
  cli.run(main)
