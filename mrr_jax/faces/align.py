"""The crop the network expects, from a face's eyes and mouth, as a 2x3 affine.

The training crops (CelebA, as the MRRNet authors made them) follow one rule:
e = mid-point of the eyes, m = mid-point of the mouth, d = |m - e|; the crop is
the square of side 3.5 d centred 0.1 d above (e + m) / 2, resized to 128x128,
so the eyes land at 1.35 / 3.5 = 38.6% and the mouth at 2.35 / 3.5 = 67.1% of
the crop's height. For a tilted face in a real photo the same square is taken
in the face's own frame: rotated so that the eye line is horizontal.

Coordinates are continuous pixel coordinates, x right and y down, with (0, 0)
at the top-left corner of the top-left pixel: pixel (i, j) covers
[i, i + 1) x [j, j + 1), its centre is (i + 0.5, j + 0.5). This is what PIL's
resampling uses, and under it resizing an image by f maps every point p to
f * p exactly.

A matrix is a (2, 3) float64 array A mapping a point p to A[:, :2] @ p + A[:, 2].
Everything here is a pure function of numpy arrays (PIL only resamples).
"""
from typing import Sequence, Tuple

import numpy as np
from PIL import Image

CROP_SIZE = 128
# The training rule in units of d = |mouth - eye mid-point|.
CROP_SIDE_D = 3.5
CENTRE_ABOVE_D = 0.1
# Where the rule puts the eyes and mouth, as fractions of the crop's height.
EYE_ROW = (CROP_SIDE_D / 2 - 0.5 + CENTRE_ABOVE_D) / CROP_SIDE_D
MOUTH_ROW = (CROP_SIDE_D / 2 + 0.5 + CENTRE_ABOVE_D) / CROP_SIDE_D

Point = Sequence[float]


def crop_matrix(left_eye: Point, right_eye: Point, mouth: Point,
                size: int = CROP_SIZE) -> np.ndarray:
  """The (2, 3) affine from photo coordinates to the size x size face crop.

  Args:
    left_eye: the eye on the image's left of an upright face (x, y). More
      exactly, the eye the crop should show on its left: the crop's x axis
      runs from left_eye to right_eye, so a face tilted past 90 degrees still
      comes out upright when its eyes are given in the face's own order.
    right_eye: the other eye (x, y).
    mouth: the mid-point of the mouth (x, y).
    size: the crop's side in pixels.

  Returns:
    A similarity transform (rotation, uniform scale, translation).

  Raises:
    ValueError: if the eyes coincide or the mouth sits on the eye mid-point.
  """
  left_eye, right_eye, mouth = (np.asarray(p, np.float64) for p in (left_eye, right_eye, mouth))
  eye_line = right_eye - left_eye
  eyes = (left_eye + right_eye) / 2
  d = np.linalg.norm(mouth - eyes)
  if np.linalg.norm(eye_line) < 1e-6 or d < 1e-6:
    raise ValueError(f'degenerate face: eyes {left_eye.tolist()}, {right_eye.tolist()}, '
                     f'mouth {mouth.tolist()}')
  x_axis = eye_line / np.linalg.norm(eye_line)
  # The face's "down" in image coordinates (y down): x_axis turned by +90 degrees.
  y_axis = np.array([-x_axis[1], x_axis[0]])
  centre = (eyes + mouth) / 2 - CENTRE_ABOVE_D * d * y_axis
  k = size / (CROP_SIDE_D * d)
  linear = k * np.stack([x_axis, y_axis])
  return np.concatenate([linear, (size / 2 - linear @ centre)[:, None]], axis=1)


def invert(matrix: np.ndarray) -> np.ndarray:
  """The inverse of a (2, 3) affine (crop -> photo for a crop matrix)."""
  linear = np.linalg.inv(matrix[:, :2])
  return np.concatenate([linear, (-linear @ matrix[:, 2])[:, None]], axis=1)


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
  """The affine p -> outer(inner(p))."""
  linear = outer[:, :2] @ inner[:, :2]
  return np.concatenate([linear, (outer[:, :2] @ inner[:, 2] + outer[:, 2])[:, None]], axis=1)


def scaling(factor: float) -> np.ndarray:
  """The affine that a resize of the whole image by `factor` applies to points."""
  return np.array([[factor, 0.0, 0.0], [0.0, factor, 0.0]])


def apply(matrix: np.ndarray, points) -> np.ndarray:
  """Maps points of shape (..., 2) through a (2, 3) affine."""
  points = np.asarray(points, np.float64)
  return points @ matrix[:, :2].T + matrix[:, 2]


def _covered_box(inverse: np.ndarray, size: Tuple[int, int], image_size: Tuple[int, int],
                 pad: float) -> Tuple[int, int, int, int]:
  """The integer box of the image that an output of `size` (w, h) samples, padded, clipped."""
  w, h = size
  corners = apply(inverse, [[0, 0], [w, 0], [0, h], [w, h]])
  x0, y0 = np.floor(corners.min(0) - pad)
  x1, y1 = np.ceil(corners.max(0) + pad)
  return (int(max(x0, 0)), int(max(y0, 0)),
          int(min(x1, image_size[0])), int(min(y1, image_size[1])))


def warp(image: np.ndarray, matrix: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
  """Resamples `image` into an output of `size` (w, h): out(q) = image(matrix^-1 q), bicubic.

  Where the matrix shrinks (scale < 1), the part of the image the output
  covers is first reduced with PIL's antialiased bicubic resize to about the
  output's scale, so fine detail is averaged rather than aliased, as when the
  training crops were resized; the small residual transform is then
  resampled bicubically. Outside the image the output is 0.

  Args:
    image: (H, W) or (H, W, C) uint8, or (H, W) float32.
    matrix: (2, 3) affine from image to output coordinates.
    size: the output's (width, height).

  Returns:
    An array of the image's dtype and channels, of shape (height, width[, C]).
  """
  matrix = np.asarray(matrix, np.float64)
  w, h = size
  if image.ndim == 3 and image.dtype != np.uint8:
    return np.stack([warp(image[..., c], matrix, size) for c in range(image.shape[-1])], -1)
  pil = Image.fromarray(image)
  scale = np.sqrt(abs(np.linalg.det(matrix[:, :2])))
  if scale < 1:
    # Bicubic's support spans 2 / scale source pixels either side at this scale.
    x0, y0, x1, y1 = _covered_box(invert(matrix), size, pil.size, pad=2 / scale + 2)
    if x1 <= x0 or y1 <= y0:
      return np.zeros((h, w) + image.shape[2:], image.dtype)
    rw, rh = max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))
    pil = pil.resize((rw, rh), Image.BICUBIC, box=(x0, y0, x1, y1))
    to_region = np.array([[rw / (x1 - x0), 0, -x0 * rw / (x1 - x0)],
                          [0, rh / (y1 - y0), -y0 * rh / (y1 - y0)]])
    matrix = compose(matrix, invert(to_region))
  inverse = invert(matrix)
  out = pil.transform((w, h), Image.AFFINE, tuple(inverse.reshape(-1)), resample=Image.BICUBIC)
  return np.asarray(out)


def crop_face(rgb: np.ndarray, left_eye: Point, right_eye: Point, mouth: Point,
              size: int = CROP_SIZE) -> Tuple[np.ndarray, np.ndarray]:
  """The size x size crop of a face as the training data were cropped, and its matrix.

  Args:
    rgb: (H, W, 3) uint8 photo.
    left_eye, right_eye, mouth: see crop_matrix.
    size: the crop's side.

  Returns:
    (crop, matrix): the (size, size, 3) uint8 crop, and the (2, 3) affine from
    photo to crop coordinates (invert it to paste back).
  """
  matrix = crop_matrix(left_eye, right_eye, mouth, size)
  return warp(rgb, matrix, (size, size)), matrix
