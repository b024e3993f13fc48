r"""Table 1, Helen x8, MRRGAN (phase 2), G from the helen_mrrnet recipe's run.

Data as helen_mrrnet; VGG19 weights as celeba_mrrgan.
  python -m mrr_jax.main --config configs/recipes/helen_mrrgan.py --workdir runs/helen_mrrgan \
      --config.init_from=runs/helen_mrrnet --config.vgg_weights=/data/vgg19-dcbb9e9d.pth \
      --config.data.manual_dir=/data/helen_manual \
      --config.data.eval_hr_dir=/data/Helen_test_DIC/HR \
      --config.data.eval_lr_dir=/data/Helen_test_DIC/LR
  python -m mrr_jax.export --workdir runs/helen_mrrgan --output exports/helen_mrrgan
  python -m mrr_jax.evaluate --model exports/helen_mrrgan \
      --hr_dir /data/Helen_test_DIC/HR --lr_dir /data/Helen_test_DIC/LR \
      --lpips_backbone /data/alexnet-owt-7be5be79.pth --lpips_linear /data/lpips/alex.pth \
      --save_dir outputs/helen_mrrgan --json outputs/helen_mrrgan.json

Steps: 3,340 (20 epochs at batch 12, as phase 1). Hardware: one accelerator VM.

Paper (Table 1): 26.15 dB / 0.7614, LPIPS 0.0941; bicubic 24.04 / 0.6743,
LPIPS 0.5253.
"""
from configs.recipes import _common

DATASET = 'helen_face_sr'
PHASE1 = 'helen_mrrnet'  # the recipe whose run G starts from
PAPER = {'psnr': 26.15, 'ssim': 0.7614, 'lpips': 0.0941,
         'bicubic_psnr': 24.04, 'bicubic_ssim': 0.6743, 'bicubic_lpips': 0.5253}


def get_config():
  return _common.recipe_config('gan', DATASET)
