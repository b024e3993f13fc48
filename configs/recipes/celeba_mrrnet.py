r"""Table 1, CelebA x8, MRRNet (phase 1, L1 only).

Data: `celeba_face_sr` built once (README "Data"); the DIC test pairs
(CelebA_test_DIC/{HR,LR}, 1,000 pairs, in the authors' repository) for eval.
  python -m mrr_jax.main --config configs/recipes/celeba_mrrnet.py --workdir runs/celeba_mrrnet \
      --config.data.manual_dir=/data/celeba_manual \
      --config.data.eval_hr_dir=/data/CelebA_test_DIC/HR --config.data.eval_lr_dir=/data/CelebA_test_DIC/LR
  python -m mrr_jax.export --workdir runs/celeba_mrrnet --output exports/celeba_mrrnet
  python -m mrr_jax.evaluate --model exports/celeba_mrrnet \
      --hr_dir /data/CelebA_test_DIC/HR --lr_dir /data/CelebA_test_DIC/LR

Steps: 20 epochs of 162,770 images at batch 12 = 271,300 steps (G lr x0.7 every
54,260). Hardware: one accelerator VM (any device count dividing 12); the step
cost per device is in BENCHMARKS.md. Paper (Table 1, PSNR/SSIM on Y, 8-pixel
border): 27.27 dB / 0.7873; bicubic 23.73 / 0.6261.
"""
from configs import default
from configs.recipes import _common

PAPER = {'psnr': 27.27, 'ssim': 0.7873, 'bicubic_psnr': 23.73, 'bicubic_ssim': 0.6261}


def get_config():
  config = default.get_config()
  config.phase = 'l1'
  return _common.apply_schedule(config, 'celeba_face_sr')
