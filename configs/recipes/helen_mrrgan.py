r"""Table 1, Helen x8, MRRGAN (phase 2), G from the helen_mrrnet recipe's run.

  python -m mrr_jax.main --config configs/recipes/helen_mrrgan.py --workdir runs/helen_mrrgan \
      --config.init_from=runs/helen_mrrnet --config.vgg_weights=/data/vgg19-dcbb9e9d.pth \
      --config.data.manual_dir=/data/helen_manual \
      --config.data.eval_hr_dir=/data/Helen_test_DIC/HR --config.data.eval_lr_dir=/data/Helen_test_DIC/LR
  python -m mrr_jax.export --workdir runs/helen_mrrgan --output exports/helen_mrrgan
  python -m mrr_jax.evaluate --model exports/helen_mrrgan \
      --hr_dir /data/Helen_test_DIC/HR --lr_dir /data/Helen_test_DIC/LR

Steps: 3,340 (20 epochs at batch 12). Hardware: one accelerator VM. Paper: not
transcribed here; fill PAPER from the paper's Table 1 before comparing
(add --lpips_backbone and --lpips_linear to score LPIPS).
"""
from configs import default
from configs.recipes import _common

PAPER = {'psnr': None, 'ssim': None}  # not transcribed: read the paper's Table 1.


def get_config():
  config = default.get_config()
  config.phase = 'gan'
  return _common.apply_schedule(config, 'helen_face_sr')
