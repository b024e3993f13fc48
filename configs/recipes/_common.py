"""What the four recipes share: the authors' schedule expressed in steps.

The authors' README trains `--batch_size 12 --total_epochs 20`; the paper does
not state the length. We count steps: 20 epochs of the training split at the
global batch size (the G learning-rate decay stays x0.7 every 4 epochs).
"""
import math

EPOCHS = 20
BATCH_SIZE = 12
TRAIN_EXAMPLES = {'celeba_face_sr': 162_770,   # CelebA official train partition
                  'helen_face_sr': 2_000}      # Helen trainnames.txt


def apply_schedule(config, dataset: str):
  config.data.name = dataset
  config.batch_size = BATCH_SIZE
  steps_per_epoch = math.ceil(TRAIN_EXAMPLES[dataset] / BATCH_SIZE)
  config.num_train_steps = EPOCHS * steps_per_epoch
  config.lr_decay_every_steps = 4 * steps_per_epoch
  return config
