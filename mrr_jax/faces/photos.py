"""Reading a user's photo as the camera meant it, and writing it back in its own format.

A phone photo is stored sideways with an EXIF orientation tag; a scan may be
CMYK or 16-bit; a PNG may carry transparency. `read_photo` turns any of them
into upright 8-bit RGB plus what is needed to write the result back the same
way (format, alpha, grey or not), and says what it had to change. JPEG's
quantisation tables tell how hard a photo was compressed: blocky 16x16 faces
give the network artifacts to enlarge, so a low estimate earns a warning.
"""
import dataclasses
import io
import os
from typing import List, Optional

import numpy as np
from PIL import Image, ImageOps

from mrr_jax import outputs
from mrr_jax.data import images
from mrr_jax.data.bad_files import BadImageError

# The IJG standard luminance quantisation table (quality 50), row by row;
# libjpeg scales it by 5000/q (q < 50) or 200 - 2q (q >= 50).
_IJG_LUMINANCE = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], np.float64)
LOW_JPEG_QUALITY = 60
_FORMATS = {'JPEG': '.jpg', 'PNG': '.png', 'WEBP': '.webp', 'BMP': '.bmp', 'TIFF': '.tif'}


@dataclasses.dataclass
class Photo:
  rgb: np.ndarray                 # (H, W, 3) uint8, upright
  format: str                     # PIL's format name of the file ('JPEG', 'PNG', ...)
  alpha: Optional[np.ndarray]     # (H, W) uint8 transparency, or None
  grey: bool                      # stored as one channel: written back as one
  jpeg_quality: Optional[int]     # the estimated IJG quality of a JPEG
  notes: List[str]                # what was changed to read it (one line each)


def _ijg_table(quality: int) -> np.ndarray:
  """libjpeg's luminance table for a quality setting (jpeg_quality_scaling, baseline)."""
  scale = 5000 // quality if quality < 50 else 200 - 2 * quality
  return np.clip((_IJG_LUMINANCE * scale + 50) // 100, 1, 255)


def jpeg_quality(quantization) -> Optional[int]:
  """The IJG quality (1-100) whose luminance table is closest to a JPEG's first table.

  Exact for files libjpeg wrote (cameras and editors mostly scale the same
  table); the nearest setting for others.
  """
  if not quantization:
    return None
  table = np.asarray(quantization[min(quantization)], np.float64)
  if table.size != 64:
    return None
  # PIL gives the table in zig-zag order, as stored; compare as sorted values, which
  # the order does not change.
  table = np.sort(table)
  errors = [np.abs(np.sort(_ijg_table(q)) - table).sum() for q in range(1, 101)]
  return int(np.argmin(errors)) + 1


def read_photo(path: str) -> Photo:
  """The photo at path, upright and as 8-bit RGB; BadImageError naming the file otherwise."""
  try:
    with open(path, 'rb') as f:
      data = f.read()
  except OSError as e:
    raise BadImageError(f'cannot read {path}: {e.strerror or e}') from e
  return read_photo_bytes(data, path)


def read_photo_bytes(data: bytes, path: str) -> Photo:
  """read_photo of a file's bytes; path names it in messages."""
  if not data:
    raise BadImageError(f'cannot read {path}: empty file (0 bytes)')
  notes = []
  try:
    with Image.open(io.BytesIO(data)) as img:
      img.load()
      fmt = img.format or 'PNG'
      quality = jpeg_quality(getattr(img, 'quantization', None)) if fmt == 'JPEG' else None
      orientation = img.getexif().get(0x0112, 1)
      upright = ImageOps.exif_transpose(img)
      if orientation not in (None, 1):
        notes.append(f'turned upright (EXIF orientation {orientation})')
      rgb, alpha, grey = _to_rgb8(upright, notes)
  except Image.UnidentifiedImageError as e:
    raise BadImageError(f'cannot read {path}: not a recognised image file') from e
  except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
    raise BadImageError(f'cannot read {path}: {type(e).__name__}: {e}') from e
  return Photo(rgb, fmt, alpha, grey, quality, notes)


def _to_rgb8(img: Image.Image, notes: List[str]):
  """(uint8 RGB, alpha or None, grey?) of any PIL mode."""
  mode = img.mode
  alpha = None
  if mode in images.WIDE_GREY_MODES:
    notes.append(f'{mode} pixels scaled to 8 bits (written back as 8-bit)')
    img = images.to_8bit_grey(img)
    mode = 'L'
  if mode == 'CMYK':
    notes.append('CMYK converted to RGB (written back as RGB)')
  if mode == 'P':
    img = img.convert('RGBA' if 'transparency' in img.info else 'RGB')
  if img.mode in ('RGBA', 'LA', 'PA'):
    alpha = np.asarray(img.getchannel('A'))
  grey = img.mode in ('L', 'LA', '1')
  return np.asarray(img.convert('RGB'), np.uint8), alpha, grey


def output_name(name: str, fmt: str) -> str:
  """The restored photo's file name: the input's, unless its format cannot be written."""
  stem, ext = os.path.splitext(name)
  return name if fmt in _FORMATS else stem + '.png'


def write_photo(path: str, rgb: np.ndarray, photo: Photo) -> str:
  """Writes rgb as photo was stored (format, alpha, grey), atomically; returns path."""
  img = Image.fromarray(rgb)
  if photo.grey:
    img = img.convert('L')
  if photo.alpha is not None:
    img.putalpha(Image.fromarray(photo.alpha))
  fmt = photo.format if photo.format in _FORMATS else 'PNG'
  if fmt == 'JPEG':
    img = img.convert('L' if photo.grey else 'RGB')  # JPEG has no alpha
    options = {'quality': 95, 'subsampling': 0}
  else:
    options = {}

  def write(f):
    img.save(f, format=fmt, **options)

  return outputs.write_atomically(path, write)
