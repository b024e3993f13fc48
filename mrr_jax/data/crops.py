"""Face boxes: the eye/mouth rule of the CelebA and Helen crops, fixed boxes, crop-and-resize."""
import math
from typing import Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from mrr_jax.data.bad_files import BadImageError
from mrr_jax.data.images import HR_SIZE

MIN_CROP_SIDE = 32          # a face crop under 32 px is no 128x128 ground truth.
# CelebA and Helen share one box rule (see landmark_box).
BOX_SIDE_PER_EYE_MOUTH = 3.5
BOX_CENTRE_UP_PER_EYE_MOUTH = 0.1

Box = Tuple[int, int, int, int]


def parse_box(text: str) -> Optional[Box]:
  """'x0,y0,x1,y1' -> (x0, y0, x1, y1); '' -> None."""
  if not text or not text.strip():
    return None
  try:
    box = tuple(int(v) for v in text.split(','))
  except ValueError as e:
    raise ValueError(f"crop_box must be 'x0,y0,x1,y1' integers, got {text!r}") from e
  if len(box) != 4 or box[2] <= box[0] or box[3] <= box[1]:
    raise ValueError(f"crop_box must be 'x0,y0,x1,y1' with x1 > x0 and y1 > y0, got {text!r}")
  return box


def _round_half_up(x: float) -> int:
  return int(math.floor(x + 0.5))


def square_box(cx: float, cy: float, side: float, width: int, height: int) -> Box:
  """A square of `side` centred at (cx, cy), moved (not cut) to lie inside the image.

  A square wider than the image shrinks to the image's shorter side. Side and
  corner round half up.
  """
  s = _round_half_up(min(side, width, height))
  x0 = _round_half_up(cx - s / 2)
  y0 = _round_half_up(cy - s / 2)
  x0 = min(max(x0, 0), width - s)
  y0 = min(max(y0, 0), height - s)
  return x0, y0, x0 + s, y0 + s


def landmark_box(eye_centre: Sequence[float], mouth_centre: Sequence[float],
                 width: int, height: int) -> Box:
  """The face box of CelebA and Helen crops.

  With e the mid-point of the eyes, m that of the mouth corners and
  d = |m - e|: a square of side 3.5 d centred at ((e + m) / 2) moved up by
  0.1 d, then moved inside the image (see square_box). In the 128x128 crop the
  eyes then sit at 38.6% of the height and the mouth at 67%, as in the DIC
  CelebA test crops.
  """
  e = np.asarray(eye_centre, np.float64)
  m = np.asarray(mouth_centre, np.float64)
  d = float(np.linalg.norm(m - e))
  if not d > 0:
    raise BadImageError('eyes and mouth landmarks coincide')
  cx, cy = (e + m) / 2
  return square_box(cx, cy - BOX_CENTRE_UP_PER_EYE_MOUTH * d,
                    BOX_SIDE_PER_EYE_MOUTH * d, width, height)


def crop_resize(image: np.ndarray, box: Optional[Box], size: int = HR_SIZE) -> np.ndarray:
  """Crops `box` (None = centred square) and resizes to size x size, PIL bicubic.

  A non-square box is first cut to its centred square so faces keep their shape.
  """
  h, w = image.shape[:2]
  if box is None:
    box = (0, 0, w, h)
  x0, y0, x1, y1 = box
  if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
    raise BadImageError(f'crop box {box} lies outside the {w}x{h} image')
  bw, bh = x1 - x0, y1 - y0
  s = min(bw, bh)
  if s < MIN_CROP_SIDE:
    raise BadImageError(f'crop {bw}x{bh} is smaller than {MIN_CROP_SIDE} px')
  x0 += (bw - s) // 2
  y0 += (bh - s) // 2
  img = Image.fromarray(image).crop((x0, y0, x0 + s, y0 + s))
  if s != size:
    img = img.resize((size, size), Image.BICUBIC)
  return np.asarray(img, dtype=np.uint8)
