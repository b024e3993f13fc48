"""What the face-SR TFDS builders share: raw uint8 features and the bad-file accounting.

Every builder stores `hr` as raw uint8 (128, 128, 3) rather than PNG: decoding a
128x128 PNG costs more than the whole training augmentation, and the input
pipeline must feed >= 1,000 images/s per core. The price is disk space
(49,152 bytes per image; CelebA's 202,599 images take about 10 GB).

Bad inputs never abort a build on their own (mrr_jax.data.bad_files): each is
skipped, listed in the build log and in `builder.info.metadata['bad_files']
[split]`; other modes (L, LA, P, RGBA, CMYK, I;16) are converted to RGB. What
the user must fix is a DataError, raised as itself from `download_and_prepare`
even where TFDS wraps it. A failed build leaves no prepared data set: TFDS
writes into a temporary directory that it removes.
"""
import abc
import os
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Tuple

import numpy as np
import tensorflow_datasets as tfds

from mrr_jax.data import bad_files, files, images


def raw_image_feature(size: int) -> tfds.features.Tensor:
  """uint8 (size, size, 3) stored as one bytes value (not 49,152 int64s)."""
  return tfds.features.Tensor(shape=(size, size, 3), dtype=np.uint8,
                              encoding=tfds.features.Encoding.BYTES)


def hr_features(extra: Optional[Dict[str, tfds.features.FeatureConnector]] = None):
  """The feature dict of every builder: raw uint8 HR and a name (+ extras)."""
  feats = {
      'hr': raw_image_feature(images.HR_SIZE),
      'name': tfds.features.Text(),
  }
  feats.update(extra or {})
  return tfds.features.FeaturesDict(feats)


class FaceSrBuilder(tfds.core.GeneratorBasedBuilder, abc.ABC):
  """Base of the face-SR builders: array_record output, bad-file accounting.

  Subclasses generate (name, example thunk) pairs through `_filtered`; a thunk
  raises bad_files.BadImageError (the reason) for a file to skip.
  """

  # What the manual dir holds and the config key that names it, for messages.
  MANUAL_DIR_HOLDS = 'the source files'
  MANUAL_DIR_KEY = 'data.manual_dir'

  def __init__(self, *, file_format=None,
               max_bad_fraction: float = bad_files.DEFAULT_MAX_BAD_FRACTION, **kwargs):
    # array_record is what tfds.data_source / grain read by random access.
    super().__init__(file_format=file_format or 'array_record', **kwargs)
    self.max_bad_fraction = max_bad_fraction

  def _face_info(self, features: tfds.features.FeaturesDict, description: str,
                 homepage: Optional[str] = None) -> tfds.core.DatasetInfo:
    """DatasetInfo kept in generation order (sorted names) with a bad-file report."""
    return self.dataset_info_from_configs(
        features=features, description=description, homepage=homepage,
        disable_shuffling=True, metadata=tfds.core.MetadataDict(bad_files={}))

  def download_and_prepare(self, *args, **kwargs):
    """TFDS's download_and_prepare; a DataError from inside it is raised as itself.

    TFDS builds into a temporary directory and removes it when the build
    fails, so a failed build never counts as prepared.
    """
    try:
      return super().download_and_prepare(*args, **kwargs)
    except Exception as e:  # pylint: disable=broad-except
      error = bad_files.find_data_error(e)
      if error is None or error is e:
        raise
      raise error from None

  def _manual_folder(self, dl_manager: tfds.download.DownloadManager) -> str:
    """dl_manager.manual_dir as a path; ManualDirError if it is missing or empty.

    TFDS itself raises an AssertionError carrying the whole
    MANUAL_DOWNLOAD_INSTRUCTIONS.
    """
    try:
      return os.fspath(dl_manager.manual_dir)
    except (AssertionError, OSError) as e:
      # TFDS keeps the path private, in DownloadManager._manual_dir.
      path = os.fspath(getattr(dl_manager, '_manual_dir', None) or 'the manual dir')
      if isinstance(e, OSError):
        state = f'cannot be listed ({files.os_error_reason(path, e)})'
      else:
        state = 'is empty' if os.path.isdir(path) else 'does not exist'
      raise bad_files.ManualDirError(
          f'{self.name}: the folder {path} {state}; it should hold {self.MANUAL_DIR_HOLDS} '
          f'(--config.{self.MANUAL_DIR_KEY}=DIR for training, --manual_dir for tfds build)'
      ) from e

  def _filtered(self, split: str,
                items: Iterable[Tuple[str, Callable[[], Dict[str, np.ndarray]]]],
                where: str = '', bad: Optional[List[Dict[str, str]]] = None
                ) -> Iterator[Tuple[str, Dict[str, np.ndarray]]]:
    """Yields (key, example) for the good items; skips, logs and counts the bad.

    `where` names the folder or zip, for the messages; `bad` holds entries
    found bad before any was read (e.g. unpaired files).
    """
    bad = list(bad or [])
    total = len(bad)
    for name, make in items:
      total += 1
      example, bad_one = bad_files.try_example(name, make)
      if bad_one is not None:
        bad.append(bad_one)
        continue
      yield name, example
    self.info.metadata['bad_files'][split] = bad
    bad_files.check_bad_fraction(split, bad, total, self.max_bad_fraction, where)

  @abc.abstractmethod
  def _generate_examples(self, *args, **kwargs):
    """Subclasses generate through `_filtered`."""
