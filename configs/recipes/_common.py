"""What the recipes share: the authors' schedule in steps, and the ablations' model settings.

The authors' README trains `--batch_size 12 --total_epochs 20`; the paper does
not state the length. We count steps: 20 epochs of the training split at the
global batch size (the G learning-rate decay stays x0.7 every 4 epochs).
"""
import math

import ml_collections

from configs import ablation
from configs import default

EPOCHS = 20
BATCH_SIZE = 12
TRAIN_EXAMPLES = {'celeba_face_sr': 162_770,   # CelebA official train partition
                  'helen_face_sr': 2_000}      # Helen trainnames.txt
# What a two-phase recipe's config argument selects: '' its own (phase 2) model,
# 'phase1' the L1 run that phase 2 starts from.
PHASE_ARGS = {'': 'gan', 'phase1': 'l1'}


def apply_schedule(config, dataset: str):
  config.data.name = dataset
  config.batch_size = BATCH_SIZE
  steps_per_epoch = math.ceil(TRAIN_EXAMPLES[dataset] / BATCH_SIZE)
  config.num_train_steps = EPOCHS * steps_per_epoch
  config.lr_decay_every_steps = 4 * steps_per_epoch
  return config


def recipe_config(phase: str, dataset: str, variant: str = '') -> ml_collections.ConfigDict:
  """The default config in `phase` ('l1' or 'gan') on `dataset` with the schedule.

  `variant` names one of configs/ablation.py's ABLATIONS (k13, k57, k17, nosa,
  cbam), so a recipe and `--config configs/ablation.py:NAME` build the same model.
  """
  config = default.get_config()
  config.phase = phase
  if variant:
    config.model.update(ablation.ABLATIONS[variant])
  return apply_schedule(config, dataset)


def two_phase_config(arg: str, dataset: str, variant: str) -> ml_collections.ConfigDict:
  """A recipe whose row is an MRRGAN ('' ) and whose phase 1 is not a row ('phase1')."""
  if arg not in PHASE_ARGS:
    raise ValueError(f'this recipe takes no argument (its MRRGAN) or :phase1 (the L1 run it '
                     f'starts from), got {arg!r}')
  return recipe_config(PHASE_ARGS[arg], dataset, variant)
