r"""Restores the faces in real photos: find, crop as in training, super-resolve, paste back.

  python -m mrr_jax.restore --model EXPORT --input PHOTO_OR_FOLDER --output DIR

For each face (libfacedetection, mrr_jax.faces.detect): the crop the training
data were made with (eyes and mouth, mrr_jax.faces.align) at 128x128, shrunk
to the 16x16 LR as training makes it (PIL bicubic); a face whose crop is 16 px
or smaller in the photo is taken as it is. The generator's 128x128 output is
colour-matched to the photo and pasted back at the face's size and angle with
a feathered edge (mrr_jax.faces.paste); outside the faces the photo is
untouched. Writes DIR/<photo's name> (same format and size), DIR/strips/
<stem>_<i>.png (LR | bicubic | SR per face) and DIR/faces.json:
{photo: [{"box", "score", "landmarks": {"left_eye", "right_eye", "mouth"},
"crop_side", "taken_as_lr"}]} in the photo's pixel coordinates (upright).
"""
import json
import os
import sys
from typing import Any, Dict, List, Optional, Sequence

from absl import flags
from absl import logging
import numpy as np
from PIL import Image

from mrr_jax import cli, outputs, visualize
from mrr_jax.data import images
from mrr_jax.data.bad_files import BadImageError
from mrr_jax.faces import align, detect, paste, photos

FACES_JSON = 'faces.json'
STRIPS = 'strips'
# Faces per generator call: one compiled shape for every photo (padded).
FACE_BATCH = 8


class RestoreError(ValueError):
  """Bad arguments, or inputs from which nothing could be written."""


def _face_record(face: detect.Face, crop_side: float, taken_as_lr: bool) -> Dict[str, Any]:
  point = lambda p: [round(float(v), 2) for v in p]
  return {'box': point(face.box), 'score': round(float(face.score), 4),
          'landmarks': {'left_eye': point(face.left_eye), 'right_eye': point(face.right_eye),
                        'mouth': point(face.mouth)},
          'crop_side': round(float(crop_side), 2), 'taken_as_lr': taken_as_lr}


def face_lr(rgb: np.ndarray, face: detect.Face):
  """(16x16 LR, 128-crop matrix, crop side in photo px, taken as LR?) for one face."""
  matrix = align.crop_matrix(face.left_eye, face.right_eye, face.mouth, images.HR_SIZE)
  crop_side = images.HR_SIZE / np.linalg.norm(matrix[:, :2], axis=1).mean()
  if crop_side <= images.LR_SIZE:
    small = align.crop_matrix(face.left_eye, face.right_eye, face.mouth, images.LR_SIZE)
    return align.warp(rgb, small, (images.LR_SIZE, images.LR_SIZE)), matrix, crop_side, True
  hr = align.warp(rgb, matrix, (images.HR_SIZE, images.HR_SIZE))
  lr = np.asarray(Image.fromarray(hr).resize((images.LR_SIZE, images.LR_SIZE), Image.BICUBIC))
  return lr, matrix, crop_side, False


class Restorer:
  """An export loaded once, run on the faces of many photos."""

  def __init__(self, model: str):
    # jax and the export load here, after the arguments were checked.
    import jax  # pylint: disable=g-import-not-at-top
    from mrr_jax.data import degradations  # pylint: disable=g-import-not-at-top
    from mrr_jax.evaluation import predict  # pylint: disable=g-import-not-at-top
    try:
      generator, params, _ = predict.load_model(model)
    except predict.ModelError as e:
      raise RestoreError(str(e)) from e
    if generator is None:
      raise RestoreError('--model must be a generator export directory')
    self._params = params
    self._upsample = degradations.upsample_lr_batch
    self._sr = jax.jit(lambda p, x: predict.super_resolve(generator, p, x, 'round'))
    self.has_attention = generator.attention != 'none'
    self._maps = jax.jit(lambda p, x: predict.attention_maps(generator, p, x))
    self._order = predict.forward_order

  def attention(self, lrs: np.ndarray):
    """(bicubic, SR, [per block (N, h, w, 1) map, in forward order]) of LR faces."""
    bicubic, sr = self.super_resolve(lrs)
    maps = self._maps(self._params, bicubic)
    return bicubic, sr, [np.asarray(maps[name]) for name in self._order(maps)]

  def super_resolve(self, lrs: np.ndarray):
    """(bicubic, SR) uint8 128x128 of (N, 16, 16, 3) uint8 LR faces."""
    bicubic = self._upsample(lrs).astype(np.uint8)
    out = []
    for i in range(0, len(bicubic), FACE_BATCH):
      chunk = bicubic[i:i + FACE_BATCH]
      pad = np.zeros((FACE_BATCH - len(chunk),) + chunk.shape[1:], np.uint8)
      out.append(np.asarray(self._sr(self._params, np.concatenate([chunk, pad])))[:len(chunk)])
    return bicubic, np.concatenate(out).astype(np.uint8)


def restore_photo(restorer: Restorer, rgb: np.ndarray, *, min_face: float = 0.0,
                  max_faces: int = 0, feather: float = 0.1, max_side: int = 1280):
  """(restored rgb, face records, strips, the faces' 16x16 LR) of one upright RGB photo."""
  faces = detect.detect_faces(rgb, min_size=min_face, max_side=max_side)
  if max_faces:
    faces = faces[:max_faces]
  if not faces:
    return rgb, [], [], np.zeros((0, images.LR_SIZE, images.LR_SIZE, 3), np.uint8)
  crops = [face_lr(rgb, f) for f in faces]
  lrs = np.stack([c[0] for c in crops])
  bicubic, sr = restorer.super_resolve(lrs)
  out, records, strips = rgb, [], []
  for face, (lr, matrix, side, as_lr), up, face_sr in zip(faces, crops, bicubic, sr):
    matched = paste.match_colour(face_sr, up, feather)
    out = paste.paste_face(out, matched, matrix, feather=feather)
    records.append(_face_record(face, side, as_lr))
    big_lr = np.kron(lr, np.ones((8, 8, 1), np.uint8))
    strips.append(visualize.comparison_grid([big_lr[None], up[None], matched[None]],
                                            ['LR', 'bicubic', 'SR']))
  return out, records, strips, lrs


def _inputs(path: str) -> List[str]:
  if os.path.isfile(path):
    return [path]
  if os.path.isdir(path):
    return [os.path.join(path, n) for n in sorted(os.listdir(path))
            if not n.startswith('.') and images.is_image_name(n)
            and os.path.isfile(os.path.join(path, n))]
  raise RestoreError(f'--input {path} does not exist')


def _progress(items, enabled: bool):
  if not enabled:
    return items
  try:
    from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  except ImportError:
    return items
  return tqdm(items, unit='photo', file=sys.stderr)


def run(model: str, input_path: str, output_dir: str, *, min_face: float = 0.0,
        max_faces: int = 0, faces_only: bool = False, no_face: str = 'copy',
        feather: float = 0.1, overwrite: bool = False, progress: bool = False) -> Dict[str, Any]:
  """Restores every photo under input_path into output_dir; returns what was done."""
  if no_face not in ('copy', 'skip'):
    raise RestoreError(f'--no_face must be copy or skip, got {no_face!r}')
  if min_face < 0 or max_faces < 0 or not 0 <= feather <= 0.5:
    raise RestoreError('--min_face and --max_faces must be >= 0 and --feather in [0, 0.5]')
  paths = _inputs(input_path)
  if not paths:
    raise RestoreError(f'no photos in {input_path} (extensions: {", ".join(images.IMAGE_EXTENSIONS)})')
  in_dir = os.path.dirname(os.path.abspath(paths[0]))
  if os.path.abspath(output_dir) == in_dir:
    raise RestoreError('--output must not be the folder the photos are in')
  try:
    outputs.check_dir(output_dir, '--output', overwrite=overwrite)
  except outputs.OutputPathError as e:
    raise RestoreError(str(e)) from e
  restorer = Restorer(model)
  report = {'photos': {}, 'written': [], 'skipped': [], 'warnings': []}
  for path in _progress(paths, progress):
    name = os.path.basename(path)
    try:
      photo = photos.read_photo(path)
    except BadImageError as e:
      report['skipped'].append({'name': name, 'reason': str(e)})
      continue
    warnings = [f'{name}: {n}' for n in photo.notes]
    if photo.jpeg_quality is not None and photo.jpeg_quality < photos.LOW_JPEG_QUALITY:
      warnings.append(f'{name}: JPEG quality about {photo.jpeg_quality}: compression blocks in '
                      'small faces come out as artifacts (use a less compressed original)')
    restored, records, strips, _ = restore_photo(restorer, photo.rgb, min_face=min_face,
                                              max_faces=max_faces, feather=feather)
    report['warnings'].extend(warnings)
    report['photos'][name] = records
    if not records:
      copied = no_face == 'copy' and not faces_only
      report['warnings'].append(f'{name}: no face found, ' +
                                ('copied unchanged' if copied else 'skipped'))
      if not copied:
        continue
    os.makedirs(output_dir, exist_ok=True)
    stem = os.path.splitext(name)[0]
    for i, strip in enumerate(strips):
      visualize.save_png(os.path.join(output_dir, STRIPS, f'{stem}_{i}.png'), strip)
    if not faces_only:
      out_name = photos.output_name(name, photo.format)
      photos.write_photo(os.path.join(output_dir, out_name), restored, photo)
      report['written'].append(out_name)
  if not report['written'] and not any(report['photos'].values()):
    raise RestoreError(f'nothing restored from {input_path}: ' + (
        '; '.join(f'{s["name"]}: {s["reason"]}' for s in report['skipped'][:5])
        or 'no face in any photo'))
  os.makedirs(output_dir, exist_ok=True)
  text = json.dumps(report['photos'], indent=1)
  outputs.write_atomically(os.path.join(output_dir, FACES_JSON), lambda f: f.write(text),
                           binary=False)
  return report


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> flags.FlagValues:
  flags.DEFINE_string('model', None, 'Generator export directory.', flag_values=fv)
  flags.DEFINE_string('input', None, 'A photo, or a folder of photos.', flag_values=fv)
  flags.DEFINE_string('output', None, 'Folder for the restored photos, strips/ and '
                      'faces.json.', flag_values=fv)
  flags.DEFINE_float('min_face', 0.0, 'Ignore faces whose box is narrower (photo px).',
                     flag_values=fv)
  flags.DEFINE_integer('max_faces', 0, 'At most this many faces per photo, the most '
                       'confident (0 = all).', flag_values=fv)
  flags.DEFINE_bool('faces_only', False, 'Write the strips and faces.json only, not the '
                    'photos.', flag_values=fv)
  flags.DEFINE_enum('no_face', 'copy', ['copy', 'skip'], 'A photo without a face: copy it '
                    'unchanged, or skip it.', flag_values=fv)
  flags.DEFINE_float('feather', 0.1, 'Soft edge of the pasted crop, a fraction of its side.',
                     flag_values=fv)
  cli.define_overwrite_flag(fv)
  return fv


def main(argv: Sequence[str], fv: flags.FlagValues = flags.FLAGS) -> None:
  cli.check_args(argv, fv, ('model', 'input', 'output'))
  cli.enable_compilation_cache()
  try:
    report = run(fv.model, fv.input, fv.output, min_face=fv.min_face, max_faces=fv.max_faces,
                 faces_only=fv.faces_only, no_face=fv.no_face, feather=fv.feather,
                 overwrite=fv.overwrite, progress=True)
  except RestoreError as e:
    sys.exit(f'error: {e}')
  for w in report['warnings']:
    logging.warning('%s', w)
    print(f'warning: {w}')
  faces = sum(len(v) for v in report['photos'].values())
  print(f'restored {faces} face(s) in {len(report["photos"])} photo(s); wrote '
        f'{len(report["written"])} photo(s) to {fv.output}')
  for s in report['skipped']:
    print(f'skipped {s["name"]}: {s["reason"]}')


if __name__ == '__main__':
  define_flags()
  cli.run(main)
