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
skipped and reported like a corrupt file. One split, test, sorted by name.

Features: hr uint8 (128, 128, 3) raw, lr uint8 (16, 16, 3) raw, name.
"""
import os
from typing import Callable, Dict, Iterator, Optional, Tuple

import numpy as np
import tensorflow_datasets as tfds

from mrr_jax.datasets import common


def read_pair(hr_dir: str, lr_dir: Optional[str], name: str) -> Dict[str, np.ndarray]:
  """One example {'hr', 'lr' (if lr_dir), 'name'}; BadImageError when unusable."""
  hr = _read_exact(os.path.join(hr_dir, name), common.HR_SIZE, 'HR')
  example = {'hr': hr, 'name': name}
  if lr_dir:
    lr_path = os.path.join(lr_dir, name)
    if not os.path.isfile(lr_path):
      raise common.BadImageError(f'no LR image {lr_path}')
    example['lr'] = _read_exact(lr_path, common.LR_SIZE, 'LR')
  return example


def iter_pairs(hr_dir: str, lr_dir: Optional[str]
               ) -> Iterator[Tuple[str, Callable[[], Dict[str, np.ndarray]]]]:
  """(name, example thunk) for each HR image in sorted order."""
  if not os.path.isdir(hr_dir):
    raise common.missing_file_error(hr_dir, 'HR folder of the paired test set',
                                    'It holds the 128x128 ground-truth images.')
  if lr_dir and not os.path.isdir(lr_dir):
    raise common.missing_file_error(lr_dir, 'LR folder of the paired test set',
                                    'It holds the 16x16 inputs named like the HR images.')
  for name in sorted(os.listdir(hr_dir)):
    if common.is_image_name(name):
      yield name, lambda name=name: read_pair(hr_dir, lr_dir, name)


def _read_exact(path: str, size: int, what: str) -> np.ndarray:
  with open(path, 'rb') as f:
    image = common.load_rgb(f.read())
  if image.shape[:2] != (size, size):
    raise common.BadImageError(f'{what} is {image.shape[1]}x{image.shape[0]}, not {size}x{size}')
  return image


class PairedFaceFolder(common.FaceSrBuilder):
  """HR/ + LR/ test pairs, kept as given."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Pairs kept as given, raw uint8.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = __doc__

  def _info(self) -> tfds.core.DatasetInfo:
    lr = common.raw_image_feature(common.LR_SIZE)
    return self._face_info(
        features=common.hr_features({'lr': lr}),
        description='Paired HR 128x128 / LR 16x16 face test images, as given.')

  def _split_generators(self, dl_manager):
    root = str(dl_manager.manual_dir)
    return {'test': self._generate_examples(os.path.join(root, 'HR'), os.path.join(root, 'LR'))}

  def _generate_examples(self, hr_dir: str, lr_dir: str):
    yield from self._filtered('test', iter_pairs(hr_dir, lr_dir))
