r"""Table 1, Helen x8, MRRNet (phase 1, L1 only).

Data: `helen_face_sr` built once from Helen's official downloads (README
"Data"); for evaluation the 50 Helen test pairs that DIC ships
(Helen_test_DIC/{HR,LR}), read as a paired folder.
  python -m mrr_jax.main --config configs/recipes/helen_mrrnet.py --workdir runs/helen_mrrnet \
      --config.data.manual_dir=/data/helen_manual \
      --config.data.eval_hr_dir=/data/Helen_test_DIC/HR \
      --config.data.eval_lr_dir=/data/Helen_test_DIC/LR
  python -m mrr_jax.export --workdir runs/helen_mrrnet --output exports/helen_mrrnet
  python -m mrr_jax.evaluate --model exports/helen_mrrnet \
      --hr_dir /data/Helen_test_DIC/HR --lr_dir /data/Helen_test_DIC/LR \
      --lpips_backbone /data/alexnet-owt-7be5be79.pth --lpips_linear /data/lpips/alex.pth \
      --save_dir outputs/helen_mrrnet --json outputs/helen_mrrnet.json
The bicubic row of the same table:
  python -m mrr_jax.evaluate --model bicubic \
      --hr_dir /data/Helen_test_DIC/HR --lr_dir /data/Helen_test_DIC/LR \
      --lpips_backbone /data/alexnet-owt-7be5be79.pth --lpips_linear /data/lpips/alex.pth

Steps: 20 epochs of 2,000 images at batch 12 = 3,340 steps (G lr x0.7 every
668): the authors' epoch count; the paper does not say how long Helen was
trained, so raise --config.num_train_steps if the curve is still falling.
Hardware: one accelerator VM (minutes) or a CPU host (hours). LPIPS: AlexNet,
as in celeba_mrrnet (the paper does not name its backbone).

Paper (Table 1; PSNR/SSIM on Y with an 8-pixel border): 26.86 dB / 0.7912,
LPIPS 0.2038; bicubic 24.04 / 0.6743, LPIPS 0.5253.
"""
from configs.recipes import _common

DATASET = 'helen_face_sr'
PAPER = {'psnr': 26.86, 'ssim': 0.7912, 'lpips': 0.2038,
         'bicubic_psnr': 24.04, 'bicubic_ssim': 0.6743, 'bicubic_lpips': 0.5253}


def get_config():
  return _common.recipe_config('l1', DATASET)
