"""A ready-made paired test set, HR/ + LR/ with matching file names (`paired_face_folder`).

How the published test sets come in: CelebA_test_DIC/{HR,LR} (1,000 pairs, in
the MRRNet repository's test_dirs), Helen's 50-image DIC/FSRNet test set, or
any folder laid out as
  DIR/HR/<name>.png   128x128 RGB
  DIR/LR/<name>.png   16x16 RGB, the same <name>
  tfds build --imports mrr_jax.datasets paired_face_folder --manual_dir DIR --data_dir OUT
or, without building, data.eval_hr_dir=DIR/HR data.eval_lr_dir=DIR/LR.
Pairs are kept exactly as given: no re-cropping, no resizing, the LR used as is.
A pair whose HR is not 128x128 or LR not 16x16, or whose LR is missing, is
skipped and reported like any bad file (unreadable, special, empty, corrupt,
a name that is not UTF-8; see common). One split, test, sorted by name.

Features: hr uint8 (128, 128, 3) raw, lr uint8 (16, 16, 3) raw, name.
"""
import os
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np
import tensorflow_datasets as tfds

from mrr_jax.datasets import common


def read_pair(hr_dir: str, lr_dir: Optional[str], name: str) -> Dict[str, np.ndarray]:
  """One example {'hr', 'lr' (if lr_dir), 'name'}; BadImageError when unusable."""
  hr = _read_exact(os.path.join(hr_dir, name), common.HR_SIZE, 'HR')
  example = {'hr': hr, 'name': name}
  if lr_dir:
    lr_path = os.path.join(lr_dir, name)
    if not os.path.lexists(lr_path):
      raise common.BadImageError(f'no LR image {common.display_name(lr_path)}')
    example['lr'] = _read_exact(lr_path, common.LR_SIZE, 'LR')
  return example


def iter_pairs(hr_dir: str, lr_dir: Optional[str]
               ) -> Iterator[Tuple[str, Callable[[], Dict[str, np.ndarray]]]]:
  """(name, example thunk) for each HR image in sorted order.

  A missing or unlistable folder, or an HR folder without images, is a DataError.
  """
  _require_folder(hr_dir, 'HR', '128x128 ground-truth images', 'data.eval_hr_dir')
  if lr_dir:
    _require_folder(lr_dir, 'LR', '16x16 inputs named like the HR images', 'data.eval_lr_dir')
  files = _list(hr_dir)
  names = [n for n in files if common.is_image_name(n)]
  if not names:
    raise common.no_images_error('HR images', hr_dir, len(files))
  for name in names:
    yield name, lambda name=name: read_pair(hr_dir, lr_dir, name)


def _require_folder(folder: str, which: str, holds: str, key: str) -> None:
  if not os.path.isdir(folder):
    state = 'is not a folder' if os.path.lexists(folder) else 'does not exist'
    raise common.MissingDataError(
        f'the {which} folder of the paired test set {folder} {state}; it should hold the '
        f'{holds} (--config.{key}=DIR, or {which}/ in --manual_dir for tfds build)')


def _list(folder: str) -> List[str]:
  """The sorted entries of folder; a DataError if it cannot be listed."""
  try:
    return sorted(os.listdir(folder))
  except OSError as e:
    raise common.DataError(
        f'cannot list the folder {folder}: {common.os_error_reason(folder, e)}') from e


def _read_exact(path: str, size: int, what: str) -> np.ndarray:
  image = common.load_rgb(common.read_file(path))
  if image.shape[:2] != (size, size):
    raise common.BadImageError(f'{what} is {image.shape[1]}x{image.shape[0]}, not {size}x{size}')
  return image


class PairedFaceFolder(common.FaceSrBuilder):
  """HR/ + LR/ test pairs, kept as given."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Pairs kept as given, raw uint8.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = __doc__
  MANUAL_DIR_HOLDS = 'a paired test set: HR/ (128x128) and LR/ (16x16) images, same names'

  def _info(self) -> tfds.core.DatasetInfo:
    lr = common.raw_image_feature(common.LR_SIZE)
    return self._face_info(
        features=common.hr_features({'lr': lr}),
        description='Paired HR 128x128 / LR 16x16 face test images, as given.')

  def _split_generators(self, dl_manager):
    root = self._manual_folder(dl_manager)
    return {'test': self._generate_examples(os.path.join(root, 'HR'), os.path.join(root, 'LR'))}

  def _generate_examples(self, hr_dir: str, lr_dir: str):
    yield from self._filtered('test', iter_pairs(hr_dir, lr_dir), where=hr_dir)
