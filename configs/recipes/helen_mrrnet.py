r"""Table 1, Helen x8, MRRNet (phase 1, L1 only).

Data: `helen_face_sr` built once from Helen's official downloads (README
"Data"); eval on the 50-image Helen test crops that DIC ships (Helen_test_DIC
/{HR,LR}), read as a paired folder.
  python -m mrr_jax.main --config configs/recipes/helen_mrrnet.py --workdir runs/helen_mrrnet \
      --config.data.manual_dir=/data/helen_manual \
      --config.data.eval_hr_dir=/data/Helen_test_DIC/HR --config.data.eval_lr_dir=/data/Helen_test_DIC/LR
  python -m mrr_jax.export --workdir runs/helen_mrrnet --output exports/helen_mrrnet
  python -m mrr_jax.evaluate --model exports/helen_mrrnet \
      --hr_dir /data/Helen_test_DIC/HR --lr_dir /data/Helen_test_DIC/LR

Steps: 20 epochs of 2,000 images at batch 12 = 3,340 steps (G lr x0.7 every
668): the authors' epoch count; the paper does not say how long Helen was
trained, so raise --config.num_train_steps if the curve is still falling.
Hardware: one accelerator VM (minutes) or a CPU host (hours). Paper: the Helen
rows of Table 1 are not transcribed in this repository's references; fill PAPER
from the paper before comparing.
"""
from configs import default
from configs.recipes import _common

PAPER = {'psnr': None, 'ssim': None}  # not transcribed: read the paper's Table 1.


def get_config():
  config = default.get_config()
  config.phase = 'l1'
  return _common.apply_schedule(config, 'helen_face_sr')
