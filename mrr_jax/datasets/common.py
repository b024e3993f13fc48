"""What the face-SR TFDS builders share: image loading, the landmark box, bad-file policy.

Every builder stores `hr` as raw uint8 (128, 128, 3) rather than PNG: decoding a
128x128 PNG costs more than the whole training augmentation, and the input
pipeline must feed >= 1,000 images/s per core. The price is disk space
(49,152 bytes per image; CelebA's 202,599 images take about 10 GB).

Bad inputs never abort a build on their own: an image that cannot be decoded,
is truncated, or whose crop is too small is skipped, listed in the build log and
in `builder.info.metadata['bad_files'][split]`; other modes (L, LA, P, RGBA,
CMYK, I;16) are converted to RGB. A split where more than `max_bad_fraction`
(default 1%) of the files are bad raises `TooManyBadFilesError`, naming the count.
"""
import abc
import io
import math
import os
import zipfile
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from absl import logging
import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

HR_SIZE = 128
LR_SIZE = 16
MIN_CROP_SIDE = 32          # a face crop under 32 px is no 128x128 ground truth.
DEFAULT_MAX_BAD_FRACTION = 0.01
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff', '.ppm')

# CelebA and Helen share one box rule (see landmark_box).
BOX_SIDE_PER_EYE_MOUTH = 3.5
BOX_CENTRE_UP_PER_EYE_MOUTH = 0.1

Box = Tuple[int, int, int, int]


class BadImageError(ValueError):
  """One input image that cannot be used; the message is the reason."""


class TooManyBadFilesError(RuntimeError):
  """More bad files in a split than the stated fraction allows."""


def missing_file_error(path: str, what: str, source: str) -> FileNotFoundError:
  """A FileNotFoundError that says which file, where it goes and where to get it."""
  return FileNotFoundError(
      f'Missing {what}: expected at {path}. {source} '
      'Put it there (or point data.manual_dir / --manual_dir at the folder holding it).')


def load_rgb(data: bytes) -> np.ndarray:
  """Decodes image bytes to uint8 HxWx3 RGB, converting other modes.

  Raises BadImageError (with the reason) for corrupt or truncated files.
  """
  try:
    with Image.open(io.BytesIO(data)) as img:
      img.load()
      if img.mode != 'RGB':
        img = _to_rgb(img)
      return np.asarray(img, dtype=np.uint8)
  except Image.UnidentifiedImageError as e:
    raise BadImageError('not a recognised image file') from e
  except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
    # Truncated or corrupt data: PIL raises any of these depending on the format.
    raise BadImageError(f'cannot decode: {type(e).__name__}: {e}') from e


def _to_rgb(img: Image.Image) -> Image.Image:
  """RGB view of any PIL mode; 16/32-bit greys are scaled to 8 bits first."""
  if img.mode in ('I;16', 'I;16B', 'I;16L', 'I'):
    arr = np.asarray(img, dtype=np.float64)
    top = 65535.0 if img.mode.startswith('I;16') or arr.max() > 255 else 255.0
    img = Image.fromarray(np.clip(arr * (255.0 / top) + 0.5, 0, 255).astype(np.uint8))
  elif img.mode == 'F':
    img = Image.fromarray(np.clip(np.asarray(img) + 0.5, 0, 255).astype(np.uint8))
  return img.convert('RGB')


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


class FileSource:
  """Reads members of a zip or files of a folder by relative path."""

  def __init__(self, root: str):
    self.root = root
    self._zip = zipfile.ZipFile(root) if zipfile.is_zipfile(root) else None

  def names(self) -> List[str]:
    """Relative paths of every file, sorted."""
    if self._zip is not None:
      return sorted(n for n in self._zip.namelist() if not n.endswith('/'))
    out = []
    for d, _, files in os.walk(self.root):
      out.extend(os.path.relpath(os.path.join(d, f), self.root) for f in files)
    return sorted(out)

  def read(self, name: str) -> bytes:
    if self._zip is not None:
      return self._zip.read(name)
    with open(os.path.join(self.root, name), 'rb') as f:
      return f.read()

  def close(self):
    if self._zip is not None:
      self._zip.close()


def is_image_name(name: str) -> bool:
  return name.lower().endswith(IMAGE_EXTENSIONS)


def check_bad_fraction(split: str, bad: List[Dict[str, str]], total: int,
                       max_fraction: float) -> None:
  """Logs the skipped files; raises when they exceed max_fraction of the split."""
  if bad:
    logging.warning('%s: skipped %d of %d files:\n%s', split, len(bad), total,
                    '\n'.join(f'  {b["file"]}: {b["reason"]}' for b in bad))
  if total and len(bad) > max_fraction * total:
    raise TooManyBadFilesError(
        f'{split}: {len(bad)} of {total} files are bad ({100.0 * len(bad) / total:.2f}%), '
        f'more than the allowed {100.0 * max_fraction:g}%. First: '
        + '; '.join(f'{b["file"]}: {b["reason"]}' for b in bad[:5]))


def raw_image_feature(size: int) -> tfds.features.Tensor:
  """uint8 (size, size, 3) stored as one bytes value (not 49,152 int64s)."""
  return tfds.features.Tensor(shape=(size, size, 3), dtype=np.uint8,
                              encoding=tfds.features.Encoding.BYTES)


def hr_features(extra: Optional[Dict[str, tfds.features.FeatureConnector]] = None):
  """The feature dict of every builder: raw uint8 HR and a name (+ extras)."""
  feats = {
      'hr': raw_image_feature(HR_SIZE),
      'name': tfds.features.Text(),
  }
  feats.update(extra or {})
  return tfds.features.FeaturesDict(feats)


class FaceSrBuilder(tfds.core.GeneratorBasedBuilder, abc.ABC):
  """Base of the face-SR builders: array_record output, bad-file accounting.

  Subclasses yield (name, example-or-BadImageError-reason thunk) via `_items`.
  """

  def __init__(self, *, file_format=None,
               max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION, **kwargs):
    # array_record is what tfds.data_source / grain read by random access.
    super().__init__(file_format=file_format or 'array_record', **kwargs)
    self.max_bad_fraction = max_bad_fraction

  def _face_info(self, features: tfds.features.FeaturesDict, description: str,
                 homepage: Optional[str] = None) -> tfds.core.DatasetInfo:
    """DatasetInfo kept in generation order (sorted names) with a bad-file report."""
    return self.dataset_info_from_configs(
        features=features, description=description, homepage=homepage,
        disable_shuffling=True, metadata=tfds.core.MetadataDict(bad_files={}))

  def _filtered(self, split: str,
                items: Iterable[Tuple[str, Callable[[], Dict[str, np.ndarray]]]]
                ) -> Iterator[Tuple[str, Dict[str, np.ndarray]]]:
    """Yields (key, example) for the good items; skips, logs and counts the bad."""
    bad, total = [], 0
    for name, make in items:
      total += 1
      try:
        example = make()
      except BadImageError as e:
        bad.append({'file': name, 'reason': str(e)})
        continue
      yield name, example
    self.info.metadata['bad_files'][split] = bad
    check_bad_fraction(split, bad, total, self.max_bad_fraction)

  @abc.abstractmethod
  def _generate_examples(self, *args, **kwargs):
    """Subclasses generate through `_filtered`."""
