r"""Table 1, CelebA x8, MRRNet (phase 1, L1 only).

Also the MRRNet column of Table 4 (its figures equal this row's).

Data: `celeba_face_sr` built once from CelebA's official downloads (README
"Data"); for evaluation the DIC test pairs (CelebA_test_DIC/{HR,LR}, 1,000
pairs, in the authors' repository), read as a paired folder.
  python -m mrr_jax.main --config configs/recipes/celeba_mrrnet.py --workdir runs/celeba_mrrnet \
      --config.data.manual_dir=/data/celeba_manual \
      --config.data.eval_hr_dir=/data/CelebA_test_DIC/HR \
      --config.data.eval_lr_dir=/data/CelebA_test_DIC/LR
  python -m mrr_jax.export --workdir runs/celeba_mrrnet --output exports/celeba_mrrnet
  python -m mrr_jax.evaluate --model exports/celeba_mrrnet \
      --hr_dir /data/CelebA_test_DIC/HR --lr_dir /data/CelebA_test_DIC/LR \
      --lpips_backbone /data/alexnet-owt-7be5be79.pth --lpips_linear /data/lpips/alex.pth \
      --save_dir outputs/celeba_mrrnet --json outputs/celeba_mrrnet.json
The bicubic row of the same table:
  python -m mrr_jax.evaluate --model bicubic \
      --hr_dir /data/CelebA_test_DIC/HR --lr_dir /data/CelebA_test_DIC/LR \
      --lpips_backbone /data/alexnet-owt-7be5be79.pth --lpips_linear /data/lpips/alex.pth

Steps: 20 epochs of 162,770 images at batch 12 = 271,300 steps (G lr x0.7 every
54,260). Hardware: one accelerator VM (any device count dividing 12); the step
cost per device is in BENCHMARKS.md. LPIPS: the paper does not name its
backbone; AlexNet is the `lpips` package's default (torchvision's
alexnet-owt-7be5be79.pth and the package's v0.1 alex.pth).

Paper (Table 1; PSNR/SSIM on Y with an 8-pixel border): 27.27 dB / 0.7873,
LPIPS 0.1921; bicubic 23.73 / 0.6261, LPIPS 0.5329.
"""
from configs.recipes import _common

DATASET = 'celeba_face_sr'
PAPER = {'psnr': 27.27, 'ssim': 0.7873, 'lpips': 0.1921,
         'bicubic_psnr': 23.73, 'bicubic_ssim': 0.6261, 'bicubic_lpips': 0.5329}


def get_config():
  return _common.recipe_config('l1', DATASET)
