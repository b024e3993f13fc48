r"""Try it: a small MRRNet (L1) trained for about 15 minutes on a 2-core CPU.

On any folder of face photos; LFW's layout (250x250, face centred) needs the
crop box below. For a folder of ready 128x128 crops pass --config.data.crop_box=''.
  python -m mrr_jax.main --config configs/tryit.py --workdir runs/tryit \
      --config.data.train_dir=/path/to/lfw_dev
  python -m mrr_jax.export --workdir runs/tryit --output exports/tryit
  python -m mrr_jax.evaluate --model exports/tryit --hr_dir CelebA_test/HR \
      --lr_dir CelebA_test/LR --save_dir runs/tryit/eval
With internet, TFDS can fetch LFW itself: --config.data.name=lfw instead of
--config.data.train_dir. The full-size model is configs/mrrnet.py.
"""
from configs import default


def get_config():
  config = default.get_config()
  config.phase = 'l1'
  # A quarter of the widths and 4 middle blocks: about 1/10 of the full G's work.
  config.model.base_channels = 16
  config.model.max_channels = 64
  config.model.num_res = 4
  config.data.crop_box = '50,50,200,200'
  config.batch_size = 8
  config.num_train_steps = 600
  config.g_lr = 5e-4   # a short run: larger than the paper's 1e-4, no decay within it.
  config.lr_decay_every_steps = 100_000
  config.log_every_steps = 50
  config.eval_every_steps = 0
  config.checkpoint_every_steps = 200
  config.image_every_steps = 200
  return config
