"""Any folder of face images as 128x128 crops (`face_folder`).

How a user brings FFHQ thumbnails, their own crops or LFW: put the images
(.jpg .jpeg .png .bmp .webp .tif .ppm, any depth of sub-folders) in a folder
and pass it as the manual dir:
  tfds build --imports mrr_jax.data.builders face_folder --manual_dir DIR --data_dir OUT
  tfds build --imports mrr_jax.data.builders face_folder/lfw --manual_dir lfw_dev --data_dir OUT
or set data.train_dir=DIR (and data.crop_box) and the training run builds and
caches it in data.data_dir on first use, under a config named after the folder
and box (delete that config's directory to rebuild after changing the folder).

Each image: optional fixed crop box (x0, y0, x1, y1) (config `lfw` uses LFW's
(50, 50, 200, 200), which frames a 250x250 LFW photo like a CelebA crop), a
non-square result is cut to its centred square, then PIL-bicubic resized to
128x128. One split, train, in sorted relative-path order. Files that cannot be
used (unreadable, special, empty, corrupt, a name that is not UTF-8, a crop too
small) and sub-folders that cannot be listed are skipped and reported (common).

Features: hr uint8 (128, 128, 3) raw, name (path relative to the folder).
"""
import dataclasses
import hashlib
import itertools
import os
import re
from typing import Optional

import tensorflow_datasets as tfds

from mrr_jax.data import bad_files, crops, files, images
from mrr_jax.data.builders import common


@dataclasses.dataclass(eq=False)
class FaceFolderConfig(tfds.core.BuilderConfig):
  """crop_box: (x0, y0, x1, y1) applied to every image before resizing, or None."""
  crop_box: Optional[crops.Box] = None


def config_for(folder: str, crop_box: Optional[crops.Box]) -> FaceFolderConfig:
  """A config whose name identifies the folder and box, so caches never mix."""
  key = f'{os.path.abspath(folder)}|{crop_box}'
  slug = re.sub(r'[^a-z0-9]+', '_', os.path.basename(os.path.abspath(folder)).lower()).strip('_')
  digest = hashlib.sha256(key.encode()).hexdigest()[:10]
  return FaceFolderConfig(name=f'{slug or "folder"}_{digest}', crop_box=crop_box,
                          description=f'{folder} with crop box {crop_box}')


class FaceFolder(common.FaceSrBuilder):
  """Face images from a folder, optionally cropped by a fixed box, at 128x128."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Fixed crop box, centred square, raw uint8 HR.'}
  BUILDER_CONFIGS = [
      FaceFolderConfig(name='default', description='Whole images (centred square).'),
      FaceFolderConfig(name='lfw', crop_box=(50, 50, 200, 200),
                       description="LFW photos with the box (50, 50, 200, 200)."),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = __doc__
  MANUAL_DIR_HOLDS = f'face photos ({", ".join(images.IMAGE_EXTENSIONS)})'
  MANUAL_DIR_KEY = 'data.train_dir'

  def _info(self) -> tfds.core.DatasetInfo:
    return self._face_info(
        features=common.hr_features(),
        description='A folder of face images at 128x128 for face SR.')

  def _split_generators(self, dl_manager):
    root = self._manual_folder(dl_manager)
    if not os.path.isdir(root):
      raise bad_files.MissingDataError(
          f'face_folder: {root} is not a folder; set --config.{self.MANUAL_DIR_KEY}=DIR to a '
          f'folder of {self.MANUAL_DIR_HOLDS}')
    return {'train': self._generate_examples(root)}

  def _generate_examples(self, root: str):
    source = files.FileSource(root)
    all_names = source.names()
    names = [n for n in all_names if images.is_image_name(n)]
    if not names and not source.unlisted:
      raise images.no_images_error('face images', root, len(all_names))
    box = self.builder_config.crop_box
    # A sub-folder that cannot be listed counts as one bad file.
    unlisted = ((n, _failing_fn(reason)) for n, reason in source.unlisted)
    examples = ((n, _example_fn(source, n, box)) for n in names)
    yield from self._filtered('train', itertools.chain(unlisted, examples), where=root)


def _example_fn(source: files.FileSource, name: str, box: Optional[crops.Box]):
  def make():
    image = images.load_rgb(source.read(name))
    return {'hr': crops.crop_resize(image, box), 'name': name}
  return make


def _failing_fn(reason: str):
  def make():
    raise bad_files.BadImageError(reason)
  return make
