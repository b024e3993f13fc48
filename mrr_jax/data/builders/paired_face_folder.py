"""A ready-made paired test set, HR/ + LR/ (`paired_face_folder`).

How the published test sets come in: CelebA_test_DIC/{HR,LR} (1,000 pairs, in
the MRRNet repository's test_dirs), Helen's 50-image DIC/FSRNet test set, or
any folder laid out as
  DIR/HR/<name>.png   128x128 RGB
  DIR/LR/<name>.png   16x16 RGB, the same <name>
  tfds build --imports mrr_jax.data.builders paired_face_folder --manual_dir DIR --data_dir OUT
or, without building, data.eval_hr_dir=DIR/HR data.eval_lr_dir=DIR/LR.
HR and LR pair by the rule every evaluation uses (mrr_jax.data.pairs); pairs
are kept exactly as given. A pair whose HR is not 128x128 or LR not 16x16, or
that has no partner, is skipped and reported like any bad file. One split,
test, sorted by name.

Features: hr uint8 (128, 128, 3) raw, lr uint8 (16, 16, 3) raw, name (the HR file name).
"""
import os

import tensorflow_datasets as tfds

from mrr_jax.data import images, pairs
from mrr_jax.data.builders import common


class PairedFaceFolder(common.FaceSrBuilder):
  """HR/ + LR/ test pairs, kept as given."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Pairs kept as given, raw uint8.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = __doc__
  MANUAL_DIR_HOLDS = 'a paired test set: HR/ (128x128) and LR/ (16x16) images, same names'

  def _info(self) -> tfds.core.DatasetInfo:
    lr = common.raw_image_feature(images.LR_SIZE)
    return self._face_info(
        features=common.hr_features({'lr': lr}),
        description='Paired HR 128x128 / LR 16x16 face test images, as given.')

  def _split_generators(self, dl_manager):
    root = self._manual_folder(dl_manager)
    return {'test': self._generate_examples(os.path.join(root, 'HR'), os.path.join(root, 'LR'))}

  def _generate_examples(self, hr_dir: str, lr_dir: str):
    found, bad = pairs.find_pairs(hr_dir, lr_dir)
    yield from self._filtered('test', ((p.hr_file, lambda p=p: _example(p)) for p in found),
                              where=hr_dir, bad=bad)


def _example(pair: pairs.Pair):
  example = pairs.load_pair(pair)
  return {'hr': example.hr, 'lr': example.lr, 'name': pair.hr_file}
