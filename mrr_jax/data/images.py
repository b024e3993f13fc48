"""Decoding image files to uint8 RGB, whatever their mode, with one error type.

Sizes of the task: HR faces are 128x128, LR faces 16x16 (x8).
"""
import io
import os
from typing import Sequence

import numpy as np
from PIL import Image

from mrr_jax.data import bad_files, files
from mrr_jax.data.bad_files import BadImageError, MissingDataError

HR_SIZE = 128
LR_SIZE = 16
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.webp', '.tif', '.tiff', '.ppm')


def is_image_name(name: str) -> bool:
  return name.lower().endswith(IMAGE_EXTENSIONS)


def load_rgb(data: bytes) -> np.ndarray:
  """Decodes image bytes to uint8 HxWx3 RGB, converting other modes.

  Raises BadImageError (with the reason) for empty, corrupt or truncated files.
  """
  if not data:
    raise BadImageError('empty file (0 bytes)')
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


WIDE_GREY_MODES = ('I;16', 'I;16B', 'I;16L', 'I', 'F')


def _to_rgb(img: Image.Image) -> Image.Image:
  """RGB view of any PIL mode; 16/32-bit greys are scaled to 8 bits first."""
  return to_8bit_grey(img).convert('RGB')


def to_8bit_grey(img: Image.Image) -> Image.Image:
  """A 16/32-bit or float grey image scaled to 8-bit 'L'; other modes unchanged."""
  if img.mode in ('I;16', 'I;16B', 'I;16L', 'I'):
    arr = np.asarray(img, dtype=np.float64)
    top = 65535.0 if img.mode.startswith('I;16') or arr.max() > 255 else 255.0
    img = Image.fromarray(np.clip(arr * (255.0 / top) + 0.5, 0, 255).astype(np.uint8))
  elif img.mode == 'F':
    img = Image.fromarray(np.clip(np.asarray(img) + 0.5, 0, 255).astype(np.uint8))
  return img


def read_rgb(path: str) -> np.ndarray:
  """HxWx3 uint8 RGB of an image file; BadImageError (naming the file and why) otherwise."""
  try:
    return load_rgb(files.read_file(path))
  except BadImageError as e:
    raise BadImageError(f'cannot read image {bad_files.display_name(path)}: {e}') from e


def no_images_error(what: str, folder: str, num_files: int) -> MissingDataError:
  """'no <what> in <folder>: ...' for a folder without a single image file."""
  if not num_files:
    return MissingDataError(f'no {what} in {folder}: the folder is empty')
  count = '1 file has' if num_files == 1 else f'{num_files} files has'
  return MissingDataError(f'no {what} in {folder}: none of its {count} an image extension '
                          f'({", ".join(IMAGE_EXTENSIONS)})')
