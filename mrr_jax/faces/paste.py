"""Pasting a (super-resolved) face crop back where align took it from."""
from typing import Optional

import numpy as np

from mrr_jax.faces import align


def feather_mask(width: int, height: int, feather: float) -> np.ndarray:
  """A (height, width) float32 mask: 1 inside, falling linearly to 0 over `feather` of each side.

  The crop (3.5 d wide) holds hair, ears and background around the face, so a
  soft edge well outside the face hides the seam between crop and photo.
  """
  def ramp(n):
    t = (np.arange(n) + 0.5) / n
    edge = np.minimum(t, 1 - t)
    return np.clip(edge / feather, 0, 1) if feather > 0 else np.ones(n)
  return np.outer(ramp(height), ramp(width)).astype(np.float32)


def paste_face(photo: np.ndarray, face: np.ndarray, matrix: np.ndarray, *,
               crop_size: Optional[int] = None, feather: float = 0.1) -> np.ndarray:
  """`photo` with `face` blended in where `matrix` cropped it from.

  Args:
    photo: (H, W, 3) uint8, the photo to paste into (not modified).
    face: (S, S, 3) uint8, the crop or what became of it (the network's
      128x128 output for a 128x128 crop), any size S.
    matrix: the (2, 3) affine from photo to crop coordinates that align's
      crop_face returned. To paste into a resized copy of the photo (resized by
      f), pass align.compose(matrix, align.scaling(1 / f)).
    crop_size: the side of the crop `matrix` was made for (default: S).
    feather: the soft edge, as a fraction of the crop's side.

  Returns:
    A new (H, W, 3) uint8 photo.
  """
  size = face.shape[0]
  matrix = align.compose(align.scaling(size / (crop_size or size)), np.asarray(matrix))
  to_photo = align.invert(matrix)
  height, width = photo.shape[:2]
  corners = align.apply(to_photo, [[0, 0], [size, 0], [0, size], [size, size]])
  x0, y0 = np.maximum(np.floor(corners.min(0)).astype(int), 0)
  x1, y1 = np.minimum(np.ceil(corners.max(0)).astype(int), [width, height])
  out = photo.copy()
  if x1 <= x0 or y1 <= y0:
    return out
  # Resample only the box of the photo the crop covers.
  to_box = align.compose(np.array([[1.0, 0, -x0], [0, 1.0, -y0]]), to_photo)
  box = (int(x1 - x0), int(y1 - y0))
  pixels = align.warp(face, to_box, box).astype(np.float32)
  alpha = np.clip(align.warp(feather_mask(size, size, feather), to_box, box), 0, 1)[..., None]
  region = out[y0:y1, x0:x1].astype(np.float32)
  out[y0:y1, x0:x1] = np.clip(np.round(region * (1 - alpha) + pixels * alpha), 0, 255)
  return out


def match_colour(face: np.ndarray, reference: np.ndarray, feather: float = 0.1) -> np.ndarray:
  """`face` with each channel's mean moved to `reference`'s, weighted by the paste mask.

  The network's output can drift a few levels in colour from the photo (a
  tint over the whole crop shows as a halo once pasted). reference is the
  photo's own pixels for the same crop (the bicubic-upsampled LR): matching
  the means under the mask removes the tint and keeps the detail.
  """
  mask = feather_mask(face.shape[1], face.shape[0], feather)[..., None]
  weight = mask.sum()
  shift = ((reference.astype(np.float64) - face.astype(np.float64)) * mask).sum((0, 1)) / weight
  return np.clip(np.round(face.astype(np.float64) + shift), 0, 255).astype(np.uint8)
