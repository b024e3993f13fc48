r"""Table 1, CelebA x8, MRRGAN (phase 2: L1 + 0.01 RaHinge + 0.01 VGG19 perceptual).

Also Table 3's k{1,3,5,7} (MRRGAN) column and Table 4's MRRGAN column (their
figures equal this row's).

G starts from the celeba_mrrnet recipe's run (D fresh); data as there. Needs
ImageNet VGG19 weights (torchvision's vgg19-dcbb9e9d.pth, README "Models and
weights").
  python -m mrr_jax.main --config configs/recipes/celeba_mrrgan.py --workdir runs/celeba_mrrgan \
      --config.init_from=runs/celeba_mrrnet --config.vgg_weights=/data/vgg19-dcbb9e9d.pth \
      --config.data.manual_dir=/data/celeba_manual \
      --config.data.eval_hr_dir=/data/CelebA_test_DIC/HR \
      --config.data.eval_lr_dir=/data/CelebA_test_DIC/LR
  python -m mrr_jax.export --workdir runs/celeba_mrrgan --output exports/celeba_mrrgan
  python -m mrr_jax.evaluate --model exports/celeba_mrrgan \
      --hr_dir /data/CelebA_test_DIC/HR --lr_dir /data/CelebA_test_DIC/LR \
      --lpips_backbone /data/alexnet-owt-7be5be79.pth --lpips_linear /data/lpips/alex.pth \
      --save_dir outputs/celeba_mrrgan --json outputs/celeba_mrrgan.json

Steps: 271,300 (20 epochs at batch 12, as phase 1). Hardware: one accelerator
VM; a GAN step costs several L1 steps (VGG19 at 224x224 is most of it; see
BENCHMARKS.md). GAN models score lower PSNR than MRRNet by design: compare
LPIPS too (AlexNet, as in celeba_mrrnet).

Paper (Table 1): 26.64 dB / 0.7632, LPIPS 0.0930; bicubic 23.73 / 0.6261,
LPIPS 0.5329.
"""
from configs.recipes import _common

DATASET = 'celeba_face_sr'
PHASE1 = 'celeba_mrrnet'  # the recipe whose run G starts from
PAPER = {'psnr': 26.64, 'ssim': 0.7632, 'lpips': 0.0930,
         'bicubic_psnr': 23.73, 'bicubic_ssim': 0.6261, 'bicubic_lpips': 0.5329}


def get_config():
  return _common.recipe_config('gan', DATASET)
