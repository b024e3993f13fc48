"""The authors' training augmentation of a 128x128 HR crop: flip and random zoom.

Every random draw comes from the numpy Generator passed in (grain's
per-element generator in the pipeline), so a seed fixes the augmentation.
"""
import math
from typing import Sequence, Tuple

import numpy as np
from PIL import Image

from mrr_jax.data.images import HR_SIZE

# torchvision RandomResizedCrop's aspect-ratio range, as the authors' Scale uses.
_CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)


def random_resized_crop_box(rng: np.random.Generator, width: int, height: int,
                            area: Tuple[float, float]) -> Tuple[int, int, int, int]:
  """torchvision RandomResizedCrop.get_params as (x0, y0, x1, y1).

  Ten tries at an area fraction in `area` and a log-uniform aspect ratio in
  [3/4, 4/3]; a centred crop if none fits.
  """
  log_lo, log_hi = math.log(_CROP_RATIO[0]), math.log(_CROP_RATIO[1])
  for _ in range(10):
    target = width * height * rng.uniform(area[0], area[1])
    aspect = math.exp(rng.uniform(log_lo, log_hi))
    w = int(round(math.sqrt(target * aspect)))
    h = int(round(math.sqrt(target / aspect)))
    if 0 < w <= width and 0 < h <= height:
      y0 = int(rng.integers(0, height - h + 1))
      x0 = int(rng.integers(0, width - w + 1))
      return x0, y0, x0 + w, y0 + h
  in_ratio = width / height
  if in_ratio < _CROP_RATIO[0]:
    w, h = width, int(round(width / _CROP_RATIO[0]))
  elif in_ratio > _CROP_RATIO[1]:
    w, h = int(round(height * _CROP_RATIO[1])), height
  else:
    w, h = width, height
  x0, y0 = (width - w) // 2, (height - h) // 2
  return x0, y0, x0 + w, y0 + h


def augment(hr_u8: np.ndarray, rng: np.random.Generator,
            scale_range: Sequence[float] = (1.0, 1.3), flip: bool = True) -> np.ndarray:
  """The authors' train augmentation of a 128x128 uint8 HR crop.

  Flip with probability 1/2; draw s uniform in [lo, hi); if int(128 s) > 128, a
  random resized crop (area fraction in [2 - hi, 1], the crop's own scale
  independent of s) resized back with bicubic; if int(128 s) < 128, a bilinear
  shrink to int(128 s) centred on a black 128x128 canvas; else unchanged.
  """
  return np.asarray(augment_image(Image.fromarray(hr_u8), rng, scale_range, flip))


def augment_image(img: Image.Image, rng: np.random.Generator,
                   scale_range: Sequence[float], flip: bool) -> Image.Image:
  if flip and rng.random() < 0.5:
    img = img.transpose(Image.FLIP_LEFT_RIGHT)
  lo, hi = scale_range
  s = rng.random() * (hi - lo) + lo
  w, h = img.size
  sw, sh = int(w * s), int(h * s)
  if sw > w:
    box = random_resized_crop_box(rng, w, h, (max(2.0 - hi, 0.0), 1.0))
    img = img.crop(box).resize((HR_SIZE, HR_SIZE), Image.BICUBIC)
  elif sw < w:
    canvas = Image.new('RGB', (w, h))
    canvas.paste(img.resize((sw, sh), Image.BILINEAR), ((w - sw) // 2, (h - sh) // 2))
    img = canvas
  if img.size != (HR_SIZE, HR_SIZE):
    img = img.resize((HR_SIZE, HR_SIZE), Image.BICUBIC)
  return img
