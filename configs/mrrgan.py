r"""Phase 2, MRRGAN: L1 + 0.01 RaHinge + 0.01 VGG19 perceptual, G from phase 1, D fresh.

Run:
  python -m mrr_jax.main --config configs/mrrgan.py --workdir runs/mrrgan \
      --config.init_from=runs/mrrnet --config.vgg_weights=/path/to/vgg19-dcbb9e9d.pth

Variants as in configs/mrrnet.py (tiny, helen). The tiny variant uses a random
VGG19 so it runs without weight files:
  python -m mrr_jax.main --config configs/mrrgan.py:tiny --workdir /tmp/tiny_gan \
      --config.init_from=/tmp/tiny --config.data.train_dir=/path/to/faces
"""
from configs import default, variants


def get_config(arg: str = ''):
  config = default.get_config()
  config.phase = 'gan'
  return variants.apply(config, arg)
