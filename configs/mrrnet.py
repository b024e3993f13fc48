r"""Phase 1, MRRNet: the generator trained with L1 only (the PSNR model).

Run (CelebA, after `tfds build` of celeba_face_sr, see README "Data"):
  python -m mrr_jax.main --config configs/mrrnet.py --workdir runs/mrrnet

Variants (config argument after ':'), combinable with '+':
  tiny   a small model and short run for CPU tests and smoke runs
         python -m mrr_jax.main --config configs/mrrnet.py:tiny --workdir /tmp/tiny \
             --config.data.train_dir=/path/to/faces
  helen  Helen instead of CelebA (builder helen_face_sr)
"""
from configs import default, variants


def get_config(arg: str = ''):
  config = default.get_config()
  config.phase = 'l1'
  return variants.apply(config, arg)
