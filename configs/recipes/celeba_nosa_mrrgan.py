r"""Table 4, MRRGAN w/o SA: phase 2 without the spatial attention, CelebA x8.

G starts from the celeba_nosa_mrrnet recipe's run (the same attention-free
model), D fresh. Data set: CelebA, for the reasons in celeba_nosa_mrrnet
(Table 4's text says Helen; its reference columns are Table 1's CelebA rows).
Data, VGG19 weights and test pairs as celeba_mrrgan.
  python -m mrr_jax.main --config configs/recipes/celeba_nosa_mrrgan.py \
      --workdir runs/celeba_nosa_mrrgan \
      --config.init_from=runs/celeba_nosa_mrrnet --config.vgg_weights=/data/vgg19-dcbb9e9d.pth \
      --config.data.manual_dir=/data/celeba_manual \
      --config.data.eval_hr_dir=/data/CelebA_test_DIC/HR \
      --config.data.eval_lr_dir=/data/CelebA_test_DIC/LR
  python -m mrr_jax.export --workdir runs/celeba_nosa_mrrgan --output exports/celeba_nosa_mrrgan
  python -m mrr_jax.evaluate --model exports/celeba_nosa_mrrgan \
      --hr_dir /data/CelebA_test_DIC/HR --lr_dir /data/CelebA_test_DIC/LR \
      --save_dir outputs/celeba_nosa_mrrgan --json outputs/celeba_nosa_mrrgan.json

Steps: 271,300 (20 epochs at batch 12, as phase 1). Hardware: one accelerator VM.

Paper (Table 4, PSNR/SSIM on Y; no LPIPS): 25.47 dB / 0.7469; with the attention
(celeba_mrrgan) 26.64 / 0.7632.
"""
from configs.recipes import _common

DATASET = 'celeba_face_sr'
VARIANT = 'nosa'  # configs/ablation.py: attention='none'
PHASE1 = 'celeba_nosa_mrrnet'  # the recipe whose run G starts from
PAPER = {'psnr': 25.47, 'ssim': 0.7469}


def get_config():
  return _common.recipe_config('gan', DATASET, VARIANT)
