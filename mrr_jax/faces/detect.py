"""Faces in a photo, with their eyes and mouth, for cropping as the training data were.

The detector is libfacedetection (the `yuface` package): a small CNN compiled
into the wheel together with its weights, so nothing is downloaded at run time
and no TensorFlow is imported. It gives a box, a score and five points (the
eyes, the nose tip, the mouth corners) as whole pixels. benchmarks/
faces_detect.py measures it against OpenCV's Haar cascades, dlib and MTCNN.

Two passes. The photo, reduced to at most `max_side` pixels (the detector's
time grows with the pixel count), finds the faces. Then each face is detected
again in a window of the full-resolution photo resized so that the face is
`refine_size` pixels wide, and in that window's mirror image, and the two
results are averaged. libfacedetection gives whole pixels of its input, and
its points scatter less on a face about 224 px wide than on the 30-200 px
faces of a photo. On the benchmark's LFW group photos the second pass takes
the median eye error from 0.12 to 0.06 of the inter-ocular distance (90th
percentile 0.22 to 0.12; mouth 0.11 to 0.08), as close as MTCNN's, for two to
three times the time of one pass (about 0.1 s for a 1000x800 photo).

Coordinates are continuous pixel coordinates as in align.py: (0, 0) is the
top-left corner of the top-left pixel.
"""
import dataclasses
from typing import List, Optional, Tuple

import numpy as np
from PIL import Image
import threadpoolctl

# libfacedetection reports points as whole pixels about 0.3 px left of where
# they are in continuous coordinates: detecting a photo and its mirror image
# gives x + x_mirrored = width - 0.58 on average (313 LFW faces). The same
# offset is assumed in y (a whole pixel index, like x).
_POINT_OFFSET = 0.29
# libfacedetection scores are percentages.
_SCORE_SCALE = 100.0
# Two faces whose boxes overlap more than this are one face.
_DUPLICATE_IOU = 0.5
# The second pass's window: this many times the box's longer side, around its centre.
_REFINE_WINDOW = 1.5


@dataclasses.dataclass(frozen=True)
class Face:
  """One detected face, in the photo's continuous pixel coordinates.

  Attributes:
    box: (x0, y0, x1, y1), the detector's box (it spans forehead to chin).
    score: the detector's confidence in [0, 1].
    left_eye: the eye on the image's left, (x, y); for a face tilted past 90
      degrees, the face's own right eye, so left_eye -> right_eye always runs
      along the face's eye line from its right to its left (see align).
    right_eye: the other eye, (x, y).
    mouth: the mid-point of the mouth corners, (x, y).
  """
  box: Tuple[float, float, float, float]
  score: float
  left_eye: Tuple[float, float]
  right_eye: Tuple[float, float]
  mouth: Tuple[float, float]

  @property
  def width(self) -> float:
    return self.box[2] - self.box[0]


def _detector():
  """libfacedetection's binding, imported on first use: importing mrr_jax.faces needs none."""
  from yuface import yuface as binding  # pylint: disable=g-import-not-at-top
  return binding


def _raw_detect(rgb: np.ndarray) -> np.ndarray:
  """libfacedetection's rows on an RGB image: (N, 15) float, score, x, y, w, h, 5 (x, y) points."""
  bgr = np.ascontiguousarray(rgb[..., ::-1])
  rows = np.asarray(_detector().detect(bgr), np.float64).reshape(-1, 16)
  return rows[:, :15]


def _faces_in(rgb: np.ndarray) -> List[Face]:
  """The detector's faces in an image, in that image's coordinates."""
  faces = []
  for row in _raw_detect(rgb):
    x, y, w, h = row[1:5]
    points = row[5:15].reshape(5, 2) + _POINT_OFFSET
    faces.append(Face(box=(float(x), float(y), float(x + w), float(y + h)),
                      score=float(row[0]) / _SCORE_SCALE,
                      left_eye=tuple(points[0].tolist()), right_eye=tuple(points[1].tolist()),
                      mouth=tuple(((points[3] + points[4]) / 2).tolist())))
  return faces


def _mapped(face: Face, scale_x: float, scale_y: float, offset=(0.0, 0.0)) -> Face:
  """`face`, found in the photo's window at `offset` resized by scale, in photo coordinates."""
  def to_photo(x, y):
    return (x / scale_x + offset[0], y / scale_y + offset[1])
  return Face(box=to_photo(*face.box[:2]) + to_photo(*face.box[2:]), score=face.score,
              left_eye=to_photo(*face.left_eye), right_eye=to_photo(*face.right_eye),
              mouth=to_photo(*face.mouth))


def _mirrored(face: Face, width: float) -> Face:
  """A face found in the left-right mirror of an image `width` wide, in the image's coordinates."""
  def back(x, y):
    return (width - x, y)
  x0, y0, x1, y1 = face.box
  return Face(box=(width - x1, y0, width - x0, y1), score=face.score,
              left_eye=back(*face.right_eye), right_eye=back(*face.left_eye),
              mouth=back(*face.mouth))


def _mean(faces: List[Face]) -> Face:
  """The face whose box, score and points are the means of `faces`'."""
  def mean(attr):
    return tuple(np.mean([getattr(f, attr) for f in faces], axis=0).tolist())
  return Face(box=mean('box'), score=float(np.mean([f.score for f in faces])),
              left_eye=mean('left_eye'), right_eye=mean('right_eye'), mouth=mean('mouth'))


def _resized(rgb: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
  """rgb resized to size (w, h), antialiased bicubic."""
  return np.asarray(Image.fromarray(rgb).resize(size, Image.BICUBIC))


def _centre(box) -> np.ndarray:
  return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])


def _iou(a, b) -> float:
  ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
  iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
  union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
  return ix * iy / union if union > 0 else 0.0


def _distinct(faces: List[Face]) -> List[Face]:
  """Faces most confident first, less confident ones that overlap one kept (IoU > 0.5) dropped.

  The second pass can move two first-pass boxes (a face and a false box
  beside it) onto the same face.
  """
  kept = []
  for face in sorted(faces, key=lambda f: -f.score):
    if all(_iou(face.box, k.box) <= _DUPLICATE_IOU for k in kept):
      kept.append(face)
  return kept


def _nearest(faces: List[Face], centre: np.ndarray, radius: float) -> Optional[Face]:
  """The face whose box centre is nearest `centre`, if within `radius`."""
  best = min(faces, key=lambda f: np.linalg.norm(_centre(f.box) - centre), default=None)
  if best is None or np.linalg.norm(_centre(best.box) - centre) > radius:
    return None
  return best


def _refine(rgb: np.ndarray, face: Face, refine_size: int) -> Face:
  """The face detected again where it is refine_size px wide, in the window and its mirror.

  The window of the full photo around the face is padded with zeros where it
  passes the photo's edge, so the face keeps its place in it. The mirror
  image's points are mapped back and averaged with the window's: the
  detector's errors on the two are partly independent. Falls back to `face`
  when neither pass finds it again.
  """
  height, width = rgb.shape[:2]
  side = _REFINE_WINDOW * max(face.width, face.box[3] - face.box[1])
  cx, cy = _centre(face.box)
  x0, y0 = int(np.floor(cx - side / 2)), int(np.floor(cy - side / 2))
  n = int(np.ceil(side))
  sx0, sy0 = max(x0, 0), max(y0, 0)
  sx1, sy1 = min(x0 + n, width), min(y0 + n, height)
  if sx1 <= sx0 or sy1 <= sy0:
    return face
  window = np.zeros((n, n, 3), np.uint8)
  window[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = rgb[sy0:sy1, sx0:sx1]
  out = max(16, int(round(n * refine_size / max(face.width, 1.0))))
  scale = out / n
  window = _resized(window, (out, out))
  centre = (np.array([cx, cy]) - [x0, y0]) * scale
  radius = 0.5 * face.width * scale
  found = [_nearest(_faces_in(window), centre, radius),
           _nearest([_mirrored(f, out) for f in _faces_in(window[:, ::-1])], centre, radius)]
  found = [f for f in found if f is not None]
  if not found:
    return face
  return _mapped(_mean(found), scale, scale, (x0, y0))


def detect_faces(rgb: np.ndarray, *, min_size: float = 0.0, score_threshold: float = 0.5,
                 max_side: Optional[int] = 1280, refine_size: Optional[int] = 224,
                 threads: Optional[int] = 1) -> List[Face]:
  """Faces in an RGB photo, most confident first.

  Args:
    rgb: (H, W, 3) uint8 photo.
    min_size: drop faces whose box is narrower than this many photo pixels.
    score_threshold: drop faces the detector scores below this (0 to 1).
    max_side: detect on a copy reduced to at most this many pixels on its
      longer side (None: always full size). The detector's time grows with the
      pixel count, and it finds no face narrower than about 18 px (box width)
      in the copy: a 4000 px photo reduced to 1280 px loses faces under about
      56 px, so pass a larger max_side (or None) for crowds of small faces.
    refine_size: detect each face again at this width in a window of the full
      photo, for sub-pixel points (None: one pass).
    threads: OpenMP threads for libfacedetection during the call (None: its
      default, one per core). One is faster here: the second pass runs on
      small images, where threads cost more than they give, and on a busy
      machine OpenMP's threads wait for each other (on the benchmark's photos
      on 2 busy cores: 0.28 s per photo with one thread, 1.5 s with two).

  Returns:
    A list of Face.

  Raises:
    ValueError: if rgb is not an (H, W, 3) uint8 array.
  """
  rgb = np.asarray(rgb)
  if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
    raise ValueError(f'detect_faces needs an (H, W, 3) uint8 RGB array, got {rgb.dtype} '
                     f'{rgb.shape}')
  _detector()  # loaded (with its OpenMP) before threadpoolctl looks for OpenMP
  if threads is None:
    return _detect_faces(rgb, min_size, score_threshold, max_side, refine_size)
  with threadpoolctl.threadpool_limits(limits=threads, user_api='openmp'):
    return _detect_faces(rgb, min_size, score_threshold, max_side, refine_size)


def _detect_faces(rgb, min_size, score_threshold, max_side, refine_size) -> List[Face]:
  """detect_faces on a checked photo."""
  height, width = rgb.shape[:2]
  scale = 1.0 if max_side is None else min(1.0, max_side / max(height, width))
  if scale < 1.0:
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    faces = [_mapped(f, size[0] / width, size[1] / height) for f in _faces_in(_resized(rgb, size))]
  else:
    faces = _faces_in(rgb)

  def keep(face):
    return face.score >= score_threshold and face.width >= min_size

  faces = [f for f in faces if keep(f)]
  if refine_size:
    # The closer look scores each face again: below the threshold it goes.
    faces = [f for f in (_refine(rgb, f, refine_size) for f in faces) if keep(f)]
  return _distinct(faces)
