"""Helen face crops for 8x face super-resolution (`helen_face_sr`).

Manual download (Helen's terms: research use). From the Helen page
(www.ifp.illinois.edu/~vuongle2/helen/) put into one folder, the manual dir:
  helen_1.zip ... helen_5.zip   the images (any *.zip besides annotation.zip, or
                                unzipped folders, is searched for .jpg files)
  annotation.zip                the 194-point annotations (or folder annotation/):
                                one .txt per image, line 1 the image name, then
                                194 lines 'x , y'
  trainnames.txt, testnames.txt the official lists, one image name per line
Build:  tfds build --imports mrr_jax.data.builders helen_face_sr --manual_dir DIR --data_dir OUT
Splits: train (2,000 images, trainnames.txt) and test (330, testnames.txt).
The 50-image Helen test set that DIC/FSRNet report on is distributed as
ready-made crops: use `paired_face_folder` or data.eval_hr_dir for it. To keep
those faces out of training, put its HR crops in the manual dir as
exclude/*.png (any image names): every train face whose 128x128 crop matches
one of them by content (mrr_jax.data.dedup: a perceptual hash, so renamed and
re-encoded copies count) is left out, and the info's metadata lists them
under 'excluded'. The match needs crops made by a rule close to this
builder's (the same faces, roughly the same framing).

Box rule: CelebA's (see mrr_jax.data.crops.landmark_box) with e = mean of
the two eye contours (points 114-153) and m = mean of the outer and inner lip
contours (points 58-113): a square of side 3.5 |m - e| centred 0.1 |m - e| above
(e + m) / 2, moved inside the image (shrunk to its shorter side if wider),
resized to 128x128 with PIL bicubic.

Features: hr uint8 (128, 128, 3) raw, name (image name, e.g. '100032540_1').
"""
import os
from typing import Dict, List, Tuple

from absl import logging
import numpy as np
import tensorflow_datasets as tfds

from mrr_jax.data import bad_files, crops, dedup, files, images
from mrr_jax.data.builders import common

_SOURCE = 'Download it from the Helen page (www.ifp.illinois.edu/~vuongle2/helen/).'
_NUM_POINTS = 194
_EYES = slice(114, 154)
_MOUTH = slice(58, 114)


def parse_annotation(text: str) -> Tuple[str, np.ndarray]:
  """One Helen annotation file -> (image name, (194, 2) float array)."""
  lines = [l.strip() for l in text.splitlines() if l.strip()]
  points = np.asarray([[float(v) for v in l.split(',')] for l in lines[1:]], np.float64)
  if points.shape != (_NUM_POINTS, 2):
    raise ValueError(f'expected {_NUM_POINTS} points, got {points.shape[0]}')
  return lines[0], points


def face_box(points: np.ndarray, width: int, height: int) -> crops.Box:
  """The crop box from Helen's 194 landmarks."""
  return crops.landmark_box(points[_EYES].mean(0), points[_MOUTH].mean(0), width, height)


class HelenFaceSr(common.FaceSrBuilder):
  """Helen images cropped by landmarks to 128x128 faces."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Landmark box rule 3.5 d, raw uint8 HR.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = __doc__
  MANUAL_DIR_HOLDS = ("Helen's downloads (helen_1.zip ... helen_5.zip, annotation.zip, "
                      'trainnames.txt, testnames.txt)')

  def _info(self) -> tfds.core.DatasetInfo:
    return self._face_info(
        features=common.hr_features(),
        description='Helen faces cropped by landmarks to 128x128 for face SR.',
        homepage='http://www.ifp.illinois.edu/~vuongle2/helen/')

  def _split_generators(self, dl_manager):
    root = self._manual_folder(dl_manager)
    lists = {split: _read_names(root, f'{split}names.txt') for split in ('train', 'test')}
    annotations = _read_annotations(root)
    for source in _image_sources(root):   # fail early when no image zip is there
      source.close()
    return {split: self._generate_examples(split, names, annotations, root)
            for split, names in lists.items()}

  def _generate_examples(self, split: str, names: List[str],
                         annotations: Dict[str, np.ndarray], root: str):
    sources = _image_sources(root)
    index = {}
    for source in sources:
      for member in source.names():
        if images.is_image_name(member):
          index[os.path.splitext(os.path.basename(member))[0]] = (source, member)
    try:
      examples = self._filtered(split, ((n, _example_fn(index, annotations, n)) for n in names),
                                where=root)
      if split == 'train':
        examples = self._without_excluded(examples, root)
      yield from examples
    finally:
      for source in sources:
        source.close()

  def _without_excluded(self, examples, root: str):
    """The examples, less those whose crop matches a face in ROOT/exclude/."""
    reference = _exclude_hashes(root)
    excluded = []
    for key, example in examples:
      if reference and dedup.matches({key: dedup.perceptual_hash(example['hr'])}, reference):
        excluded.append(key)
        continue
      yield key, example
    self.info.metadata['excluded'] = excluded
    if reference:
      logging.info('helen_face_sr: left %d train faces out as copies of %s/exclude: %s',
                   len(excluded), root, ', '.join(excluded[:10]))


def _exclude_hashes(root: str) -> List[int]:
  folder = os.path.join(root, 'exclude')
  if not os.path.isdir(folder):
    return []
  hashes = []
  for name in sorted(os.listdir(folder)):
    if images.is_image_name(name):
      try:
        hashes.append(dedup.perceptual_hash(images.read_rgb(os.path.join(folder, name))))
      except bad_files.BadImageError as e:
        logging.warning('helen_face_sr: %s', e)
  return hashes


def _read_names(root: str, file_name: str) -> List[str]:
  path = os.path.join(root, file_name)
  if not os.path.isfile(path):
    raise bad_files.missing_file_error(path, f'Helen list {file_name}', _SOURCE)
  with open(path) as f:
    names = [os.path.splitext(l.strip())[0] for l in f if l.strip()]
  return list(dict.fromkeys(names))


def _read_annotations(root: str) -> Dict[str, np.ndarray]:
  """Image name -> (194, 2) points, from annotation.zip or annotation/."""
  path = os.path.join(root, 'annotation.zip')
  if not os.path.exists(path):
    path = os.path.join(root, 'annotation')
  if not os.path.exists(path):
    raise bad_files.missing_file_error(os.path.join(root, 'annotation.zip'),
                                    'Helen annotations (annotation.zip or folder annotation/)',
                                    _SOURCE)
  source = files.FileSource(path)
  out = {}
  try:
    for member in source.names():
      if member.endswith('.txt'):
        try:
          name, points = parse_annotation(source.read(member).decode('utf-8', 'replace'))
        except ValueError as e:
          # A broken annotation leaves its image without landmarks: reported there.
          logging.warning('ignoring annotation %s: %s', os.path.join(path, member), e)
          continue
        out[name] = points
  finally:
    source.close()
  return out


def _image_sources(root: str) -> List[files.FileSource]:
  """Every image zip (and unzipped helen_* folder) in root."""
  sources = []
  for entry in sorted(os.listdir(root)):
    path = os.path.join(root, entry)
    if entry == 'annotation.zip' or entry == 'annotation':
      continue
    if entry.lower().endswith('.zip') or (os.path.isdir(path) and entry.startswith('helen')):
      sources.append(files.FileSource(path))
  if not sources:
    raise bad_files.missing_file_error(os.path.join(root, 'helen_1.zip'),
                                    'Helen images (helen_1.zip ... helen_5.zip)', _SOURCE)
  return sources


def _example_fn(index, annotations: Dict[str, np.ndarray], name: str):
  def make():
    if name not in index:
      raise bad_files.BadImageError('listed but not found in any image zip or folder')
    if name not in annotations:
      raise bad_files.BadImageError('no 194-point annotation')
    source, member = index[name]
    image = images.load_rgb(source.read(member))
    h, w = image.shape[:2]
    return {'hr': crops.crop_resize(image, face_box(annotations[name], w, h)), 'name': name}
  return make
