r"""Fig. 4, MRR-CBAM: MRRNet (phase 1, L1) with CBAM in place of the multiscale attention.

Qualitative only: the paper shows this model's attention maps beside MRRNet's
and reports no figures for it, so PAPER is empty. The paper names neither the
phase nor the data set of Fig. 4's models; we train phase 1 on CelebA, the
setting of celeba_mrrnet, whose attention maps are the comparison
(configs/ablation.py:cbam's model; data and test pairs as celeba_mrrnet).
  python -m mrr_jax.main --config configs/recipes/celeba_cbam_mrrnet.py \
      --workdir runs/celeba_cbam_mrrnet \
      --config.data.manual_dir=/data/celeba_manual \
      --config.data.eval_hr_dir=/data/CelebA_test_DIC/HR \
      --config.data.eval_lr_dir=/data/CelebA_test_DIC/LR
  python -m mrr_jax.export --workdir runs/celeba_cbam_mrrnet --output exports/celeba_cbam_mrrnet
The figure: evaluate writes attention.png into --save_dir (for each of the
first --num_pictures test faces: the bicubic input, SR, and SR overlaid with
each block's attention map); the same command on exports/celeba_mrrnet (recipe
celeba_mrrnet) gives the MRRNet side of the comparison.
  python -m mrr_jax.evaluate --model exports/celeba_cbam_mrrnet \
      --hr_dir /data/CelebA_test_DIC/HR --lr_dir /data/CelebA_test_DIC/LR \
      --save_dir outputs/celeba_cbam_mrrnet --num_pictures 8
  python -m mrr_jax.evaluate --model exports/celeba_mrrnet \
      --hr_dir /data/CelebA_test_DIC/HR --lr_dir /data/CelebA_test_DIC/LR \
      --save_dir outputs/celeba_mrrnet_fig4 --num_pictures 8

Steps: 271,300 (20 epochs of 162,770 images at batch 12), as celeba_mrrnet.
Hardware: one accelerator VM.
"""
from configs.recipes import _common

DATASET = 'celeba_face_sr'
VARIANT = 'cbam'  # configs/ablation.py: attention='cbam'
PAPER = {}  # Fig. 4 is qualitative: the paper gives no figures for MRR-CBAM.


def get_config():
  return _common.recipe_config('l1', DATASET, VARIANT)
