"""The one rule that pairs HR and LR test images, used by every evaluation and the builder.

A paired test set is a folder of 128x128 HR images and, optionally, a folder
of 16x16 LR images: an LR image belongs to the HR image whose file name
without extension is the same (a.png pairs with a.png or a.jpg). Without an
LR folder the LR is made from the HR as training makes it. Names that two
files share within one folder, LR images with no HR partner, and HR images
with no LR partner are reported as bad entries, never paired by guesswork.
Pairs are kept exactly as given: no re-cropping, no resizing.
"""
import dataclasses
import os
from typing import Dict, List, Optional, Tuple

import numpy as np

from mrr_jax.data import bad_files, degradations, files, images
from mrr_jax.data.bad_files import BadImageError, DataError, MissingDataError


@dataclasses.dataclass(frozen=True)
class Pair:
  """An HR file and its LR file (None: LR made from HR, or missing from lr_dir)."""
  name: str          # the HR file name without extension
  hr_path: str
  lr_path: Optional[str]
  lr_dir: Optional[str] = None

  @property
  def hr_file(self) -> str:
    return os.path.basename(self.hr_path)


@dataclasses.dataclass
class Example:
  """One pair, loaded: HR 128x128x3 and LR 16x16x3 uint8."""
  name: str
  hr: np.ndarray
  lr: np.ndarray


def _require_folder(folder: str, which: str, holds: str) -> None:
  if not os.path.isdir(folder):
    state = 'is not a folder' if os.path.lexists(folder) else 'does not exist'
    key = f'eval_{which.lower()}_dir'
    raise MissingDataError(
        f'the {which} folder of the paired test set {folder} {state}; it should hold {holds} '
        f'(--config.data.{key}=DIR for training, --{which.lower()}_dir for evaluate, or '
        f'{which}/ in --manual_dir for tfds build)')


def _list(folder: str) -> List[str]:
  try:
    return sorted(os.listdir(folder))
  except OSError as e:
    raise DataError(f'cannot list the folder {folder}: {files.os_error_reason(folder, e)}') from e


def images_by_stem(folder: str, which: str) -> Tuple[Dict[str, str], List[Dict[str, str]]]:
  """({name without extension: path}, bad entries for names two files share) of a folder."""
  found, clashes = {}, []
  for fname in _list(folder):
    if fname.startswith('.') or not images.is_image_name(fname):
      continue
    stem = os.path.splitext(fname)[0]
    if stem in found:
      clashes.append(bad_files.bad_entry(
          fname, f'{which} {fname} has the same name as {os.path.basename(found[stem])}'))
      continue
    found[stem] = os.path.join(folder, fname)
  return found, clashes


def find_pairs(hr_dir: str, lr_dir: Optional[str] = None
               ) -> Tuple[List[Pair], List[Dict[str, str]]]:
  """(pairs sorted by name, bad entries) of a paired test set; DataError if there is none."""
  _require_folder(hr_dir, 'HR', 'the 128x128 ground-truth images')
  if lr_dir:
    _require_folder(lr_dir, 'LR', 'the 16x16 inputs named like the HR images')
  hr_files, bad = images_by_stem(hr_dir, 'HR')
  lr_files = {}
  if lr_dir:
    lr_files, lr_clashes = images_by_stem(lr_dir, 'LR')
    bad += lr_clashes
    bad += [bad_files.bad_entry(os.path.basename(lr_files[n]),
                                f'LR image has no HR image named '
                                f'{bad_files.display_name(n)}.* in {hr_dir}')
            for n in sorted(set(lr_files) - set(hr_files))]
  if not hr_files:
    raise images.no_images_error('HR images', hr_dir, len(_list(hr_dir)))
  # An HR image without its LR stays a pair: load_pair reports the HR's own
  # problem first, if it has one, else the missing LR.
  found = [Pair(name, hr_files[name], lr_files.get(name), lr_dir or None)
           for name in sorted(hr_files)]
  return found, bad


def _read_exact(path: str, size: int, what: str) -> np.ndarray:
  image = images.load_rgb(files.read_file(path))
  if image.shape[:2] != (size, size):
    raise BadImageError(f'{what} is {image.shape[1]}x{image.shape[0]}, not {size}x{size}')
  return image


def load_pair(pair: Pair, lr_resize: str = 'pil') -> Example:
  """The pair's images; BadImageError (the reason) when one is unreadable or of the wrong size."""
  hr = _read_exact(pair.hr_path, images.HR_SIZE, 'HR')
  if pair.lr_path is None and pair.lr_dir:
    raise BadImageError(f'no LR image named {bad_files.display_name(pair.name)}.* in '
                        f'{pair.lr_dir}')
  if pair.lr_path is None:
    return Example(pair.name, hr, degradations.make_lr(hr, lr_resize))
  try:
    lr = _read_exact(pair.lr_path, images.LR_SIZE, 'LR')
  except BadImageError as e:
    raise BadImageError(f'LR {os.path.basename(pair.lr_path)}: {e}') from e
  return Example(pair.name, hr, lr)


def load_pairs(hr_dir: str, lr_dir: Optional[str] = None,
               max_bad_fraction: float = bad_files.DEFAULT_MAX_BAD_FRACTION,
               lr_resize: str = 'pil') -> Tuple[List[Example], List[Dict[str, str]]]:
  """Every usable pair, loaded, and the bad entries; too many bad is a TooManyBadFilesError."""
  pairs, bad = find_pairs(hr_dir, lr_dir)
  examples = []
  for pair in pairs:
    example, bad_one = bad_files.try_example(pair.hr_file, lambda p=pair: load_pair(p, lr_resize))
    if bad_one is None:
      examples.append(example)
    else:
      bad.append(bad_one)
  bad_files.check_bad_fraction('eval', bad, len(pairs) + len(bad), max_bad_fraction,
                               where=hr_dir)
  return examples, bad
