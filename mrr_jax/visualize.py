"""Pictures for papers and TensorBoard: comparison grids and attention overlays.

Everything here maps numpy arrays to HxWx3 uint8 arrays (what TensorBoard's
image summaries and PNG files take); `save_png` writes one atomically.
"""
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mrr_jax import outputs

LABEL_HEIGHT = 14
# Anchor colours of a jet-like map: blue (0) -> cyan -> green -> yellow -> red (1).
_JET = np.array([[0, 0, 128], [0, 0, 255], [0, 255, 255], [255, 255, 0], [255, 0, 0],
                 [128, 0, 0]], np.float64)


def to_uint8(images: np.ndarray) -> np.ndarray:
  """Images in [-1, 1] -> uint8 the way SR outputs are saved (clip, map, round)."""
  x = (np.clip(np.asarray(images, np.float32), -1.0, 1.0) + 1.0) / 2.0 * 255.0
  return np.round(x).astype(np.uint8)


def _fit(tile: np.ndarray, height: int, width: int) -> np.ndarray:
  """Tile as HxWx3 uint8 of the cell size; smaller tiles grow by an integer nearest factor."""
  tile = np.asarray(tile)
  if tile.ndim == 2 or tile.shape[-1] == 1:
    tile = np.repeat(tile.reshape(tile.shape[0], tile.shape[1], 1), 3, axis=-1)
  h, w = tile.shape[:2]
  if (height % h) or (width % w) or height // h != width // w:
    raise ValueError(f'a {h}x{w} tile does not scale by one integer factor to {height}x{width}')
  f = height // h
  return np.repeat(np.repeat(tile, f, axis=0), f, axis=1).astype(np.uint8)


def _draw_labels(header: np.ndarray, labels: Sequence[str], cell: int, pad: int) -> np.ndarray:
  image = Image.fromarray(header)
  draw = ImageDraw.Draw(image)
  font = ImageFont.load_default()
  for c, text in enumerate(labels):
    draw.text((pad + c * (cell + pad) + 2, 1), text, fill=(0, 0, 0), font=font)
  return np.asarray(image)


def caption(tile: np.ndarray, text: str) -> np.ndarray:
  """A copy of an HxWx3 uint8 tile with `text` on a white strip along its bottom edge."""
  out = np.array(tile, np.uint8)
  out[-LABEL_HEIGHT:] = 255
  image = Image.fromarray(out)
  ImageDraw.Draw(image).text((2, out.shape[0] - LABEL_HEIGHT + 1), text, fill=(0, 0, 0),
                             font=ImageFont.load_default())
  return np.asarray(image)


def tile_grid(rows: Sequence[Sequence[np.ndarray]], labels: Optional[Sequence[str]] = None,
              pad: int = 2, background: int = 255) -> np.ndarray:
  """Rows of HxWx3 (or HxW) uint8 tiles -> one uint8 image, `pad` pixels between cells.

  Cells take the largest tile's size; smaller tiles (a 16x16 LR beside 128x128
  outputs) are enlarged by nearest-neighbour repetition so pixels stay visible.
  Optional column labels go in a strip above the first row.
  """
  if not rows or not rows[0]:
    raise ValueError('tile_grid needs at least one tile')
  height = max(np.shape(t)[0] for row in rows for t in row)
  width = max(np.shape(t)[1] for row in rows for t in row)
  cols = max(len(row) for row in rows)
  top = LABEL_HEIGHT if labels else 0
  out = np.full((top + pad + len(rows) * (height + pad), pad + cols * (width + pad), 3),
                background, np.uint8)
  for r, row in enumerate(rows):
    for c, tile in enumerate(row):
      y, x = top + pad + r * (height + pad), pad + c * (width + pad)
      out[y:y + height, x:x + width] = _fit(tile, height, width)
  if labels:
    out[:top] = _draw_labels(out[:top].copy(), labels, width, pad)
  return out


def comparison_grid(columns: Sequence[np.ndarray], labels: Optional[Sequence[str]] = None,
                    pad: int = 2) -> np.ndarray:
  """Side-by-side rows, one per image: columns[c] is an [N, H, W, 3] uint8 batch.

  E.g. columns (bicubic, SR, HR) or (bicubic, SR model A, SR model B, HR).
  """
  n = len(columns[0])
  if any(len(c) != n for c in columns):
    raise ValueError(f'every column needs the same number of images, got {[len(c) for c in columns]}')
  return tile_grid([[col[i] for col in columns] for i in range(n)], labels, pad)


def colormap(values: np.ndarray) -> np.ndarray:
  """Values in [0, 1] (clipped) -> jet-like RGB uint8, piecewise linear between anchors."""
  v = np.clip(np.asarray(values, np.float64), 0.0, 1.0) * (len(_JET) - 1)
  lo = np.minimum(np.floor(v).astype(int), len(_JET) - 2)
  t = (v - lo)[..., None]
  return np.round(_JET[lo] * (1 - t) + _JET[lo + 1] * t).astype(np.uint8)


def attention_overlay(image: np.ndarray, att_map: np.ndarray, alpha: float = 0.5) -> np.ndarray:
  """Blends a coloured attention map (values in [0, 1], any integer fraction of the image size) over an image."""
  image = np.asarray(image, np.uint8)
  att = np.asarray(att_map, np.float32)
  att = att.reshape(att.shape[0], att.shape[1])
  heat = _fit(colormap(att), image.shape[0], image.shape[1])
  return np.round((1 - alpha) * image + alpha * heat).astype(np.uint8)


def attention_rows(inputs: np.ndarray, outputs: np.ndarray, maps: Sequence[np.ndarray],
                   alpha: float = 0.5) -> list:
  """Per image: [input, output, output overlaid with each block's map] (the paper's Fig. 4).

  inputs/outputs: [N, H, W, 3] uint8; maps: per block, [N, h, w, 1] in [0, 1].
  """
  return [[inputs[i], outputs[i]] + [attention_overlay(outputs[i], m[i], alpha) for m in maps]
          for i in range(len(inputs))]


def save_png(path: str, image: np.ndarray) -> str:
  """Writes an HxWx3 uint8 image as PNG, atomically."""
  image = np.asarray(image)
  if image.dtype != np.uint8:
    raise ValueError(f'save_png takes uint8 images, got {image.dtype}')
  return outputs.write_atomically(path, lambda f: Image.fromarray(image).save(f, format='PNG'))
