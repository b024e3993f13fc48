"""What the recipes share: the authors' schedule in steps, and the ablations' model settings.

The authors' README trains `--batch_size 12 --total_epochs 20`; the paper does
not state the length. The recipes set num_epochs = 20 (and the G learning-rate
decay x0.7 every 4 epochs); the trainer turns them into steps from the split's
size and the global batch (mrr_jax.train.state.epoch_steps: ceil, as the
authors' DataLoader), so another --config.batch_size keeps 20 epochs.
"""

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
  config.num_epochs = EPOCHS              # steps from the split's size at run time:
  config.num_train_steps = 0              # schedule_steps() says how many
  config.lr_decay_every_epochs = 4
  config.lr_decay_every_steps = 0
  return config


def schedule_steps(config) -> tuple:
  """(train steps, lr decay steps) the trainer will derive for a recipe on its data set."""
  from mrr_jax.train import state  # pylint: disable=g-import-not-at-top
  per_epoch = state.epoch_steps(TRAIN_EXAMPLES[config.data.name], config.batch_size)
  return state.train_steps(config, per_epoch), state.lr_decay_steps(config, per_epoch)


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
