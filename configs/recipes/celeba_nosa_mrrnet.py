r"""Table 4, MRRNet w/o SA: phase 1 (L1) without the spatial attention, CelebA x8.

Every residual block keeps its branch ungated (configs/ablation.py:nosa's model).

Data set: CelebA, although Table 4's text says Helen: the table's MRRNet and
MRRGAN columns (27.27 / 0.7873, 26.64 / 0.7632) are Table 1's CelebA rows, and
the w/o SA columns are compared with them. (Read as Helen, this row would sit
0.03 dB under Helen's MRRNet, 26.86; the table cannot tell the two apart, so
we follow its reference columns.) Data and test pairs as celeba_mrrnet.
  python -m mrr_jax.main --config configs/recipes/celeba_nosa_mrrnet.py \
      --workdir runs/celeba_nosa_mrrnet \
      --config.data.manual_dir=/data/celeba_manual \
      --config.data.eval_hr_dir=/data/CelebA_test_DIC/HR \
      --config.data.eval_lr_dir=/data/CelebA_test_DIC/LR
  python -m mrr_jax.export --workdir runs/celeba_nosa_mrrnet --output exports/celeba_nosa_mrrnet
  python -m mrr_jax.evaluate --model exports/celeba_nosa_mrrnet \
      --hr_dir /data/CelebA_test_DIC/HR --lr_dir /data/CelebA_test_DIC/LR \
      --save_dir outputs/celeba_nosa_mrrnet --json outputs/celeba_nosa_mrrnet.json

Steps: 271,300 (20 epochs of 162,770 images at batch 12), as celeba_mrrnet.
Hardware: one accelerator VM.

Paper (Table 4, PSNR/SSIM on Y; no LPIPS): 26.83 dB / 0.7585; with the attention
(celeba_mrrnet) 27.27 / 0.7873.
"""
from configs.recipes import _common

DATASET = 'celeba_face_sr'
VARIANT = 'nosa'  # configs/ablation.py: attention='none'
PAPER = {'psnr': 26.83, 'ssim': 0.7585}


def get_config():
  return _common.recipe_config('l1', DATASET, VARIANT)
