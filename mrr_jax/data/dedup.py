"""Recognising the same face crop after renaming, re-encoding or mild resampling: a DCT hash.

The Helen test set that DIC and FSRNet report on (50 faces) is distributed as
renumbered crops, so a training split that must leave those faces out cannot
go by file name. perceptual_hash is the classic pHash: the 32x32 grey image's
2-D DCT, its 8x8 lowest frequencies, one bit per coefficient (above the
median or not). JPEG re-encoding and small resampling change few of the 64
bits; different faces differ in about half. Two crops count as the same face
within MAX_DISTANCE bits.
"""
import functools
from typing import Dict, Iterable, List

import numpy as np
from PIL import Image

MAX_DISTANCE = 10


@functools.cache
def _dct_matrix(n: int = 32) -> np.ndarray:
  """The orthonormal DCT-II matrix: row k is cos(pi (2i + 1) k / 2n), scaled."""
  k, i = np.meshgrid(np.arange(n), np.arange(n), indexing='ij')
  m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
  m[0] /= np.sqrt(2.0)
  return m


def perceptual_hash(rgb: np.ndarray) -> int:
  """64-bit pHash of an HxWx3 uint8 image (as a Python int)."""
  grey = np.asarray(Image.fromarray(np.asarray(rgb, np.uint8)).convert('L')
                    .resize((32, 32), Image.BICUBIC), np.float64)
  d = _dct_matrix()
  low = (d @ grey @ d.T)[:8, :8].ravel()
  bits = low > np.median(low[1:])  # the DC term left out of the median, as pHash does
  return int(sum(1 << i for i, b in enumerate(bits) if b))


def distance(a: int, b: int) -> int:
  """Bits in which two hashes differ."""
  return bin(a ^ b).count('1')


def matches(hashes: Dict[str, int], reference: Iterable[int],
            max_distance: int = MAX_DISTANCE) -> List[str]:
  """The names in `hashes` within max_distance bits of any reference hash."""
  reference = list(reference)
  return [name for name, h in hashes.items()
          if any(distance(h, r) <= max_distance for r in reference)]
