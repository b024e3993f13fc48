"""Grid layout, colour map, overlay and PNG writing, pixel by pixel."""
import os

import numpy as np
import pytest
from PIL import Image

from mrr_jax import visualize


def test_tile_grid_places_and_enlarges_tiles():
  a = np.full((32, 32, 3), 10, np.uint8)
  b = np.full((32, 32, 3), 20, np.uint8)
  lr = np.zeros((16, 16, 3), np.uint8)
  lr[0, 0] = 200                               # one LR pixel becomes a 2x2 block.
  grid = visualize.tile_grid([[a, b], [lr, a]], pad=2)
  assert grid.shape == (2 + 2 * 34, 2 + 2 * 34, 3) and grid.dtype == np.uint8
  assert np.all(grid[:2] == 255) and np.all(grid[2:34, 34:36] == 255)
  assert np.all(grid[2:34, 2:34] == 10) and np.all(grid[2:34, 36:68] == 20)
  np.testing.assert_array_equal(grid[36:38, 2:4], 200)
  assert np.all(grid[38:68, 4:34] == 0) and np.all(grid[36:68, 36:68] == 10)


def test_comparison_grid_rows_and_labels():
  cols = [np.full((3, 8, 8, 3), v, np.uint8) for v in (1, 2, 3)]
  grid = visualize.comparison_grid(cols, pad=1)
  assert grid.shape == (1 + 3 * 9, 1 + 3 * 9, 3)
  assert [grid[1 + 9 * r, 1 + 9 * c, 0] for r in range(3) for c in range(3)] == [1, 2, 3] * 3
  labelled = visualize.comparison_grid(cols, ['bicubic', 'SR', 'HR'], pad=1)
  assert labelled.shape[0] == grid.shape[0] + visualize.LABEL_HEIGHT
  np.testing.assert_array_equal(labelled[visualize.LABEL_HEIGHT:], grid)
  assert np.any(labelled[:visualize.LABEL_HEIGHT] < 255)  # the text was drawn.
  with pytest.raises(ValueError, match='same number of images'):
    visualize.comparison_grid([cols[0], cols[1][:2]])


def test_colormap_anchors_and_overlay():
  np.testing.assert_array_equal(visualize.colormap(np.array([0.0, 1.0, 0.5, -3.0])),
                                [[0, 0, 128], [128, 0, 0], [128, 255, 128], [0, 0, 128]])
  image = np.zeros((8, 8, 3), np.uint8)
  att = np.zeros((4, 4, 1), np.float32)
  att[0, 0] = 1.0
  out = visualize.attention_overlay(image, att, alpha=0.5)
  np.testing.assert_array_equal(out[:2, :2], np.broadcast_to([64, 0, 0], (2, 2, 3)))
  np.testing.assert_array_equal(out[2:, 2:], np.broadcast_to([0, 0, 64], (6, 6, 3)))
  rows = visualize.attention_rows(image[None], image[None] + 1, [att[None]])
  assert len(rows) == 1 and len(rows[0]) == 3
  np.testing.assert_array_equal(rows[0][1], 1)


def test_to_uint8_rounds_like_saved_sr():
  np.testing.assert_array_equal(visualize.to_uint8(np.array([-2.0, -1.0, 0.0, 0.999, 1.0])),
                                [0, 0, 128, 255, 255])


def test_save_png_roundtrip_and_rejects_float(tmp_path):
  img = np.random.default_rng(0).integers(0, 256, (5, 7, 3)).astype(np.uint8)
  path = visualize.save_png(str(tmp_path / 'sub' / 'x.png'), img)
  np.testing.assert_array_equal(np.asarray(Image.open(path)), img)
  with pytest.raises(ValueError, match='uint8'):
    visualize.save_png(str(tmp_path / 'y.png'), img.astype(np.float32))
  assert sorted(os.listdir(tmp_path)) == ['sub'] and os.listdir(tmp_path / 'sub') == ['x.png']
