"""mrr_jax.data.matlab_resize against MATLAB: published outputs, hand-computed weights, invariants.

Published MATLAB outputs come from MATLAB's imresize.m of 2013 and earlier,
which clamped out-of-image taps to the edge pixel (border='replicate'); current
MATLAB mirrors them (border='symmetric', the default). Away from the edges the
two agree, so the published values pin the kernel, its stretching when
shrinking, the coordinate mapping, the dimension order and the uint8 rounding
for both modes, and the hand-computed cases pin the mirrored border.
"""
import numpy as np
import pytest

from mrr_jax.data import matlab_resize

# A 7x10 uint8 image and MATLAB's imresize(uint8(IN), 0.5) and imresize(uint8(IN), 1.5)
# (bicubic, the default), as quoted with the label "the matlab results" in the
# test block of GNU Octave's image package (inst/imresize.m).
IN = np.array([
    [116, 227, 153, 69, 146, 194, 59, 130, 139, 106],
    [2, 47, 137, 249, 90, 75, 16, 24, 158, 44],
    [155, 68, 46, 84, 166, 156, 69, 204, 32, 152],
    [71, 221, 137, 230, 210, 153, 192, 115, 30, 118],
    [107, 143, 108, 52, 51, 73, 101, 21, 175, 90],
    [54, 158, 143, 77, 26, 168, 113, 229, 165, 225],
    [9, 47, 133, 135, 130, 207, 236, 43, 19, 73]], np.uint8)
MATLAB_HALF = np.array([
    [103, 141, 124, 78, 110],
    [111, 134, 153, 114, 91],
    [115, 108, 93, 128, 146],
    [38, 124, 175, 143, 54]], np.uint8)
MATLAB_ONE_AND_HALF = np.array([
    [116, 185, 235, 171, 96, 64, 134, 189, 186, 74, 90, 141, 140, 124, 108],
    [44, 92, 143, 149, 164, 163, 119, 123, 118, 44, 38, 80, 151, 118, 63],
    [14, 21, 47, 107, 195, 228, 115, 81, 70, 24, 19, 56, 137, 105, 49],
    [145, 98, 49, 49, 71, 107, 148, 159, 132, 58, 124, 176, 61, 85, 145],
    [118, 139, 144, 92, 116, 168, 201, 188, 159, 140, 167, 158, 27, 69, 152],
    [62, 151, 218, 145, 174, 219, 201, 164, 146, 187, 148, 84, 48, 76, 115],
    [102, 132, 151, 119, 90, 72, 72, 72, 83, 114, 60, 31, 144, 130, 81],
    [82, 121, 154, 133, 87, 41, 19, 67, 116, 95, 108, 140, 183, 180, 164],
    [40, 96, 152, 149, 117, 74, 34, 108, 179, 131, 175, 215, 153, 177, 219],
    [11, 33, 73, 127, 137, 125, 113, 158, 212, 229, 148, 55, 35, 63, 96],
    [4, 17, 53, 121, 141, 138, 133, 171, 220, 253, 141, 16, 7, 36, 67]], np.uint8)
# MATLAB's imresize([0 0 1 1 0], [1 10]) (double, bicubic) as printed (4 decimals) in
# the Stack Overflow question "Why does imresize produce values greater than maximal?"
# (2013). The last value is -0.0703 = -9/128: the clamped border (symmetric gives -12/128).
MATLAB_ROW_X2 = [0, -0.0234, -0.0703, 0.2031, 0.7969, 1.0938, 1.0938, 0.7969, 0.2031, -0.0703]


@pytest.mark.parametrize('size, want', [(0.5, MATLAB_HALF), (1.5, MATLAB_ONE_AND_HALF)])
def test_published_matlab_uint8_outputs(size, want):
  got = matlab_resize.imresize(IN, size, border='replicate')
  assert got.dtype == np.uint8 and got.shape == want.shape  # ceil(0.5 * 7) = 4 rows
  np.testing.assert_array_equal(got, want)


def test_published_matlab_double_output():
  got = matlab_resize.imresize(np.array([[0, 0, 1, 1, 0]], np.float64), (1, 10),
                               border='replicate')
  assert got.dtype == np.float64
  np.testing.assert_allclose(got[0], MATLAB_ROW_X2, atol=5e-5)  # printed to 4 decimals


def _interior(in_length, out_length, scale):
  """Outputs whose taps read the same pixels in both border modes.

  Tap 0 (one outside) reads pixel 1 either way; from tap -1 on they differ.
  """
  sym = matlab_resize.contributions(in_length, out_length, scale, border='symmetric')[1]
  rep = matlab_resize.contributions(in_length, out_length, scale, border='replicate')[1]
  return np.all(sym == rep, axis=1)


def test_symmetric_border_matches_published_values_away_from_the_edges():
  got = matlab_resize.imresize(IN, 1.5)
  rows, cols = _interior(7, 11, 1.5), _interior(10, 15, 1.5)
  assert rows.sum() == 9 and cols.sum() == 13  # all but the outermost ring of the 11x15
  np.testing.assert_array_equal(got[np.ix_(rows, cols)],
                                MATLAB_ONE_AND_HALF[np.ix_(rows, cols)])
  assert not np.array_equal(got, MATLAB_ONE_AND_HALF)  # the edges do differ
  # The 1 -> 10 row: the first nine values read no mirrored pixel that differs.
  row = matlab_resize.imresize(np.array([[0, 0, 1, 1, 0]], np.float64), (1, 10))[0]
  np.testing.assert_allclose(row[:9], MATLAB_ROW_X2[:9], atol=5e-5)
  assert row[9] == -0.09375


# Hand-computed: a 4 -> 2 shrink (scale s = 0.5) of a row [x1 x2 x3 x4].
#   Antialiasing stretches the kernel: h(d) = s * cubic(s * d), width 4 / s = 8,
#   taps P = ceil(8) + 2 = 10.
#   Output 1 samples u = 1 / s + (1 - 1 / s) / 2 = 2 - 0.5 = 1.5; left = floor(1.5 - 4) = -3,
#   so taps are input positions -3 .. 6, at distances u - j = 4.5, 3.5, ..., -4.5.
#   cubic(s * d) with s * |d| = 2.25, 1.75, 1.25, 0.75, 0.25:
#     cubic(2.25) = 0
#     cubic(1.75) = -0.5 * 1.75^3 + 2.5 * 1.75^2 - 4 * 1.75 + 2 = -0.0234375  (-3/128)
#     cubic(1.25) = -0.5 * 1.25^3 + 2.5 * 1.25^2 - 4 * 1.25 + 2 = -0.0703125  (-9/128)
#     cubic(0.75) =  1.5 * 0.75^3 - 2.5 * 0.75^2 + 1            =  0.2265625 (29/128)
#     cubic(0.25) =  1.5 * 0.25^3 - 2.5 * 0.25^2 + 1            =  0.8671875 (111/128)
#   The ten h values sum to 0.5 * 2 * (-3 - 9 + 29 + 111) / 128 = 1, so normalising
#   changes nothing: in 256ths, taps -3 .. 6 weigh 0, -3, -9, 29, 111, 111, 29, -9, -3, 0.
#   Symmetric border ([1 2 3 4 4 3 2 1] repeated): taps -3, -2, -1, 0 read x4, x3, x2, x1
#   and taps 5, 6 read x4, x3, so
#     y1 = (x1 (29 + 111) + x2 (-9 + 111) + x3 (-3 + 29) + x4 (0 - 9 - 3)) / 256
#        = (140 x1 + 102 x2 + 26 x3 - 12 x4) / 256,
#   and y2 is the mirror image: (-12 x1 + 26 x2 + 102 x3 + 140 x4) / 256.
#   Replicate border (older MATLAB): taps -3 .. 0 read x1, taps 5, 6 read x4:
#     y1 = (x1 (0 - 3 - 9 + 29 + 111) + 111 x2 + 29 x3 + x4 (-9 - 3 + 0)) / 256
#        = (128 x1 + 111 x2 + 29 x3 - 12 x4) / 256.
SYMMETRIC_WEIGHTS = np.array([[140, 102, 26, -12], [-12, 26, 102, 140]]) / 256
REPLICATE_WEIGHTS = np.array([[128, 111, 29, -12], [-12, 29, 111, 128]]) / 256


@pytest.mark.parametrize('border, weights', [('symmetric', SYMMETRIC_WEIGHTS),
                                             ('replicate', REPLICATE_WEIGHTS)])
def test_hand_computed_four_to_two(border, weights):
  x = np.array([1.0, 2.0, 3.0, 4.0])
  got = matlab_resize.imresize(x[None, :], (1, 2), border=border)[0]
  np.testing.assert_array_equal(got, weights @ x)  # every value is a multiple of 1/256
  if border == 'symmetric':
    np.testing.assert_array_equal(got, [374 / 256, 906 / 256])  # 1.4609375, 3.5390625
  # The same weights as a matrix: scatter the taps onto the 4 pixels.
  w, idx = matlab_resize.contributions(4, 2, 0.5, border=border)
  dense = np.zeros((2, 4))
  np.add.at(dense, (np.arange(2)[:, None].repeat(w.shape[1], 1), idx), w)
  np.testing.assert_array_equal(dense, weights)


def test_hand_computed_uint8_rounds_half_away_from_zero():
  # y1 = 102 * 192 / 256 = 76.5 and y2 = 26 * 192 / 256 = 19.5 exactly. MATLAB's
  # uint8() rounds both up (77, 20); round-half-to-even would give 76 for y1.
  got = matlab_resize.imresize(np.array([[0, 192, 0, 0]], np.uint8), (1, 2))
  np.testing.assert_array_equal(got, [[77, 20]])
  # y1 = 242 * 255 / 256 = 241.05 -> 241, y2 = 14 * 255 / 256 = 13.95 -> 14.
  got = matlab_resize.imresize(np.array([[255, 255, 0, 0]], np.uint8), (1, 2))
  np.testing.assert_array_equal(got, [[241, 14]])


def test_uint8_saturates_where_doubles_overshoot():
  # Doubling [0 0 1 1 0 0]: the cubic's lobes reach 1.09375 and -0.0703125 (the same
  # weights as the published row above); times 255 that is 278.9 and -17.9.
  row = np.array([[0, 0, 255, 255, 0, 0]])
  doubles = matlab_resize.imresize(row.astype(np.float64), (1, 12))
  assert doubles.max() == 1.09375 * 255 and doubles.min() == -0.0703125 * 255
  got = matlab_resize.imresize(row.astype(np.uint8), (1, 12))
  np.testing.assert_array_equal(got, np.clip(np.floor(doubles + 0.5), 0, 255))
  assert got.max() == 255 and got.min() == 0


def test_cubic_kernel_values():
  d = np.array([0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2, 2.5])
  want = [1, 111 / 128, 0.5625, 29 / 128, 0, -9 / 128, -0.0625, -3 / 128, 0, 0]
  np.testing.assert_array_equal(matlab_resize.cubic(d), want)
  np.testing.assert_array_equal(matlab_resize.cubic(-d), want)


@pytest.mark.parametrize('dtype', [np.uint8, np.float32, np.float64])
@pytest.mark.parametrize('shape', [(9, 7), (9, 7, 3)])
def test_identity_scale_is_exact(dtype, shape):
  rng = np.random.default_rng(0)
  image = (rng.uniform(0, 255, shape)).astype(dtype)
  for size in (1, 1.0, shape[:2]):
    got = matlab_resize.imresize(image, size)
    assert got.dtype == image.dtype
    np.testing.assert_array_equal(got, image)


@pytest.mark.parametrize('size', [1 / 8, 0.5, 0.3, 1.5, 3, (5, 11), (16, 3)])
def test_constant_image_stays_constant(size):
  for border in matlab_resize.BORDERS:
    for value in (0, 1, 37, 255):
      image = np.full((24, 20, 3), value, np.uint8)
      got = matlab_resize.imresize(image, size, border=border)
      assert np.all(got == value), (size, border, value)
    got = matlab_resize.imresize(np.full((24, 20), 0.3), size, border=border)
    np.testing.assert_allclose(got, 0.3, rtol=1e-14)  # weights sum to 1 up to rounding


def test_channels_are_resized_independently_and_sizes_follow_matlab():
  rng = np.random.default_rng(1)
  image = rng.integers(0, 256, (128, 128, 3)).astype(np.uint8)
  small = matlab_resize.imresize(image, 1 / 8)
  assert small.shape == (16, 16, 3) and small.dtype == np.uint8
  for c in range(3):
    np.testing.assert_array_equal(small[..., c], matlab_resize.imresize(image[..., c], 1 / 8))
  # A scale of 1/8 and the size 16x16 are the same request for a 128x128 image.
  np.testing.assert_array_equal(small, matlab_resize.imresize(image, (16, 16)))
  # A scale gives ceil(scale * n) (7 * 0.5 -> 4); it also sets the weights, so it is not
  # the same as asking for 4x5 (scale 4/7 along the rows).
  assert matlab_resize.imresize(IN, 0.5).shape == (4, 5)
  assert not np.array_equal(matlab_resize.imresize(IN, 0.5), matlab_resize.imresize(IN, (4, 5)))


def test_smaller_scale_is_resized_first():
  # 7 -> 14 rows (x2) and 10 -> 3 columns (x0.3): columns first. With uint8 rounding
  # after each pass the order changes the result, so check it against both orders.
  rng = np.random.default_rng(2)
  image = rng.integers(0, 256, (7, 10)).astype(np.uint8)
  got = matlab_resize.imresize(image, (14, 3))
  def one_axis(x, axis, out):
    w, idx = matlab_resize.contributions(x.shape[axis], out, out / x.shape[axis])
    return matlab_resize._resize_axis(x, axis, w, idx)  # pylint: disable=protected-access
  cols_first = one_axis(one_axis(image, 1, 3), 0, 14)
  rows_first = one_axis(one_axis(image, 0, 14), 1, 3)
  np.testing.assert_array_equal(got, cols_first)
  assert not np.array_equal(cols_first, rows_first)


def test_bad_arguments():
  with pytest.raises(ValueError, match='scale must be > 0'):
    matlab_resize.imresize(IN, 0)
  with pytest.raises(ValueError, match='two positive integers'):
    matlab_resize.imresize(IN, (4, 0))
  with pytest.raises(ValueError, match='two positive integers'):
    matlab_resize.imresize(IN, (4, 5, 3))
  with pytest.raises(ValueError, match='HxW or HxWxC'):
    matlab_resize.imresize(IN[None, :, :, None], 0.5)
  with pytest.raises(ValueError, match='border must be one of'):
    matlab_resize.imresize(IN, 0.5, border='wrap')
  with pytest.raises(ValueError, match='integer or float'):
    matlab_resize.imresize(IN.astype(bool), 0.5)


def test_lr_synthesis_by_matlab_resize_in_training_and_evaluation(tmp_path):
  """data.resize / evaluate --resize make LR with imresize; 'pil' stays PIL's."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from mrr_jax import evaluate  # pylint: disable=g-import-not-at-top
  from mrr_jax.data import degradations, pairs, pipeline  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(8)
  hr = np.clip(rng.normal(128, 50, (128, 128, 3)), 0, 255).astype(np.uint8)
  pil = degradations.make_lr(hr, 'pil')
  mat = degradations.make_lr(hr, 'matlab')
  np.testing.assert_array_equal(pil, np.asarray(Image.fromarray(hr).resize((16, 16),
                                                                         Image.BICUBIC)))
  np.testing.assert_array_equal(mat, matlab_resize.imresize(hr, (16, 16)))
  assert np.abs(pil.astype(int) - mat).max() > 0  # the two kernels differ
  # Training: the pipeline's LR (no flip, no zoom) is imresize of the HR.
  ds = pipeline.train_dataset([{'hr': hr}], 1, seed=0, scale_range=(1.0, 1.0), flip=False,
                              lr_resize='matlab')
  lr = np.round((ds[0]['lr'][0] + 1) * 127.5).astype(np.uint8)
  np.testing.assert_array_equal(lr, mat)
  # Evaluation without LR files: the pair's LR is made the same way.
  (tmp_path / 'HR').mkdir()
  Image.fromarray(hr).save(tmp_path / 'HR' / 'a.png')
  examples, _ = pairs.load_pairs(str(tmp_path / 'HR'), lr_resize='matlab')
  np.testing.assert_array_equal(examples[0].lr, mat)
  result = evaluate.run('bicubic', str(tmp_path / 'HR'), resize='matlab')
  assert result['protocol']['lr_source'] == 'made from HR (matlab bicubic 128->16)'
  with pytest.raises(ValueError, match='LR resize must be one of pil, matlab'):
    degradations.make_lr(hr, 'lanczos')
