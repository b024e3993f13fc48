r"""Table 1, CelebA x8, MRRGAN (phase 2: L1 + 0.01 RaHinge + 0.01 VGG19 perceptual).

Starts G from the celeba_mrrnet recipe's run (D fresh). Needs ImageNet VGG19
weights (torchvision's vgg19-dcbb9e9d.pth, README "VGG19 weights").
  python -m mrr_jax.main --config configs/recipes/celeba_mrrgan.py --workdir runs/celeba_mrrgan \
      --config.init_from=runs/celeba_mrrnet --config.vgg_weights=/data/vgg19-dcbb9e9d.pth \
      --config.data.manual_dir=/data/celeba_manual \
      --config.data.eval_hr_dir=/data/CelebA_test_DIC/HR --config.data.eval_lr_dir=/data/CelebA_test_DIC/LR
  python -m mrr_jax.export --workdir runs/celeba_mrrgan --output exports/celeba_mrrgan
  python -m mrr_jax.evaluate --model exports/celeba_mrrgan \
      --hr_dir /data/CelebA_test_DIC/HR --lr_dir /data/CelebA_test_DIC/LR

Steps: 271,300 (20 epochs at batch 12, as phase 1). Hardware: one accelerator
VM; the GAN step costs about 4.2x the L1 step (ARCH.md "Cost"). Paper: the
MRRGAN row of Table 1 is not transcribed in this repository's references;
fill PAPER from the paper before comparing (GAN models score lower PSNR than
MRRNet by design; compare LPIPS too: add --lpips_backbone and --lpips_linear).
"""
from configs import default
from configs.recipes import _common

PAPER = {'psnr': None, 'ssim': None}  # not transcribed: read the paper's Table 1.


def get_config():
  config = default.get_config()
  config.phase = 'gan'
  return _common.apply_schedule(config, 'celeba_face_sr')
