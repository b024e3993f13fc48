"""CelebA face crops for 8x face super-resolution (`celeba_face_sr`).

Manual download (CelebA's terms: non-commercial research only). From the CelebA
page (mmlab.ie.cuhk.edu.hk/projects/CelebA.html, "Align&Cropped Images" and
"Anno"/"Eval" folders of its Google Drive / Baidu links) put into one folder,
the manual dir:
  img_align_celeba.zip                (or the unzipped folder img_align_celeba/)
  list_landmarks_align_celeba.txt     (Anno/)
  list_eval_partition.txt             (Eval/)
Build:  tfds build --imports mrr_jax.data.builders celeba_face_sr --manual_dir DIR --data_dir OUT
(or just train with --config.data.name=celeba_face_sr --config.data.manual_dir=DIR,
which builds on first use). Splits follow list_eval_partition.txt:
train (0) 162,770, validation (1) 19,867, test (2) 19,962 images.
The 1,000-image DIC test set (CelebA_test_DIC/{HR,LR}) comes in through
`paired_face_folder` or data.eval_hr_dir / data.eval_lr_dir instead.

Box rule (the paper's section 4.1: "crop roughly by the landmarks, trim excess
background, resize to 128"), from the five aligned landmarks: e = mid-point of
the two eyes, m = mid-point of the two mouth corners, d = |m - e|; the crop is
the square of side 3.5 d (rounded half up, as the corner) centred at ((e + m) / 2) moved up by 0.1 d,
shifted to lie inside the 178x218 image (shrunk to 178 px if wider), then
resized to 128x128 with PIL bicubic. On CelebA d is about 42 px, so the square is
about 147 px; eyes land at 38.6% and the mouth at 67% of the crop's height, as
in the DIC test crops.

Features: hr uint8 (128, 128, 3) raw, name (e.g. '000001.jpg').
"""
import os
from typing import Dict, List

import numpy as np
import tensorflow_datasets as tfds

from mrr_jax.data import bad_files, crops, files, images
from mrr_jax.data.builders import common

_SOURCE = ('Download it from the CelebA page '
           '(mmlab.ie.cuhk.edu.hk/projects/CelebA.html, Align&Cropped Images / Anno / Eval).')
_SPLITS = {'train': 0, 'validation': 1, 'test': 2}


def read_landmarks(path: str) -> Dict[str, np.ndarray]:
  """list_landmarks_align_celeba.txt -> {file name: (5, 2) float array}.

  Line 1 is the count, line 2 the column names, then 'name x1 y1 ... x5 y5'.
  """
  out = {}
  with open(path) as f:
    lines = f.read().splitlines()
  for line in lines[2:]:
    parts = line.split()
    if len(parts) == 11:
      out[parts[0]] = np.asarray(parts[1:], np.float64).reshape(5, 2)
  return out


def read_partition(path: str) -> Dict[str, int]:
  """list_eval_partition.txt -> {file name: 0 train / 1 validation / 2 test}."""
  out = {}
  with open(path) as f:
    for line in f:
      parts = line.split()
      if len(parts) == 2:
        out[parts[0]] = int(parts[1])
  return out


def face_box(landmarks: np.ndarray, width: int, height: int) -> crops.Box:
  """The crop box from CelebA's (left eye, right eye, nose, left mouth, right mouth)."""
  return crops.landmark_box(landmarks[0:2].mean(0), landmarks[3:5].mean(0), width, height)


class CelebaFaceSr(common.FaceSrBuilder):
  """CelebA aligned images cropped by landmarks to 128x128 faces."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Landmark box rule 3.5 d, raw uint8 HR.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = __doc__
  MANUAL_DIR_HOLDS = ("CelebA's downloads (img_align_celeba.zip, "
                      'list_landmarks_align_celeba.txt, list_eval_partition.txt)')

  def _info(self) -> tfds.core.DatasetInfo:
    return self._face_info(
        features=common.hr_features(),
        description='CelebA faces cropped by landmarks to 128x128 for face SR.',
        homepage='https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html')

  def _split_generators(self, dl_manager):
    root = self._manual_folder(dl_manager)
    image_root = _find_images(root)
    landmarks = _require(root, 'list_landmarks_align_celeba.txt', 'CelebA landmark file (Anno/)')
    partition = _require(root, 'list_eval_partition.txt', 'CelebA partition file (Eval/)')
    marks, parts = read_landmarks(landmarks), read_partition(partition)
    return {split: self._generate_examples(split, image_root, marks,
                                           sorted(n for n, p in parts.items() if p == code))
            for split, code in _SPLITS.items()}

  def _generate_examples(self, split: str, image_root: str, marks: Dict[str, np.ndarray],
                         names: List[str]):
    source = files.FileSource(image_root)
    index = _member_index(source)
    try:
      yield from self._filtered(split, ((n, _example_fn(source, index, marks, n)) for n in names),
                                where=image_root)
    finally:
      source.close()


def _require(root: str, name: str, what: str) -> str:
  path = os.path.join(root, name)
  if not os.path.isfile(path):
    raise bad_files.missing_file_error(path, what, _SOURCE)
  return path


def _find_images(root: str) -> str:
  """The image zip or folder in root, or a message naming both accepted forms."""
  for name in ('img_align_celeba.zip', 'img_align_celeba'):
    path = os.path.join(root, name)
    if os.path.exists(path):
      return path
  raise bad_files.missing_file_error(
      os.path.join(root, 'img_align_celeba.zip'),
      'CelebA aligned images (img_align_celeba.zip or folder img_align_celeba/)', _SOURCE)


def _member_index(source: files.FileSource) -> Dict[str, str]:
  """Image base name -> path inside the zip/folder (zips nest img_align_celeba/)."""
  return {os.path.basename(n): n for n in source.names() if images.is_image_name(n)}


def _example_fn(source: files.FileSource, index: Dict[str, str],
                marks: Dict[str, np.ndarray], name: str):
  def make():
    if name not in index:
      raise bad_files.BadImageError('listed in list_eval_partition.txt but not among the images')
    if name not in marks:
      raise bad_files.BadImageError('no landmarks in list_landmarks_align_celeba.txt')
    image = images.load_rgb(source.read(index[name]))
    h, w = image.shape[:2]
    return {'hr': crops.crop_resize(image, face_box(marks[name], w, h)), 'name': name}
  return make
