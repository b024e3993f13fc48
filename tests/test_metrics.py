"""Metric tests: hand-computed values, the protocol's pieces, and scikit-image agreement."""
import math

import numpy as np
import pytest

from mrr_jax import metrics


def _rng_images(seed, n=2, size=40):
  rng = np.random.default_rng(seed)
  hr = rng.integers(0, 256, size=(n, size, size, 3)).astype(np.float32)
  noise = rng.normal(0.0, 12.0, size=hr.shape)
  sr = np.clip(np.round(hr + noise), 0, 255).astype(np.float32)
  return sr, hr


def test_y_of_known_colours():
  colours = np.array([[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]],
                     np.float32)
  y = np.asarray(metrics.rgb_to_y(colours))
  np.testing.assert_allclose(y, [16.0, 235.0, 81.481, 144.553, 40.966], atol=1e-4)


def test_quantize_modes():
  x = np.array([-1.5, -1.0, 0.0, 0.5, 1.0, 2.0, 0.004], np.float32)
  # (x + 1) / 2 * 255: 127.5 rounds half to even (128); 0.004 -> 128.01.
  np.testing.assert_array_equal(metrics.quantize(x), [0, 0, 128, 191, 255, 255, 128])
  np.testing.assert_array_equal(metrics.quantize(x, 'floor'), [0, 0, 127, 191, 255, 255, 128])
  np.testing.assert_allclose(metrics.quantize(x, 'none'),
                             [0, 0, 127.5, 191.25, 255, 255, 128.01], atol=1e-3)
  with pytest.raises(ValueError, match='quantize mode'):
    metrics.quantize(x, 'nearest')


def test_psnr_identical_is_inf():
  sr, _ = _rng_images(0)
  p, s = metrics.psnr_ssim(sr, sr)
  assert np.all(np.isinf(np.asarray(p))) and np.all(np.asarray(p) > 0)
  np.testing.assert_allclose(s, 1.0, atol=1e-6)


def test_psnr_hand_computed():
  a = np.zeros((1, 4, 4, 1), np.float32)
  b = a.copy()
  b[0, 1, 2, 0] = 16.0            # MSE = 16^2 / 16 = 16.
  want = 10 * math.log10(255.0 ** 2 / 16.0)
  np.testing.assert_allclose(metrics.psnr(a, b), [want], rtol=1e-6)


def test_ssim_hand_computed_constant_and_shift():
  c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
  a = np.full((1, 11, 11, 1), 100.0, np.float32)
  b = np.full((1, 11, 11, 1), 110.0, np.float32)
  want = (2 * 100 * 110 + c1) / (100 ** 2 + 110 ** 2 + c1)  # zero variances: contrast term 1.
  np.testing.assert_allclose(metrics.ssim(a, b), [want], rtol=1e-6)

  # One 11x11 window: the map is a single value from Gaussian-weighted statistics.
  rng = np.random.default_rng(1)
  x = rng.uniform(0, 255, (11, 11))
  y = 0.5 * x + 40 + rng.normal(0, 5, (11, 11))
  g = metrics.gaussian_window()
  w = np.outer(g, g)
  mx, my = (w * x).sum(), (w * y).sum()
  vx, vy = (w * x * x).sum() - mx ** 2, (w * y * y).sum() - my ** 2
  cxy = (w * x * y).sum() - mx * my
  want = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
  got = metrics.ssim(x[None, :, :, None].astype(np.float32), y[None, :, :, None].astype(np.float32))
  np.testing.assert_allclose(got, [want], atol=1e-6)


def test_gaussian_window_matches_cv2_formula():
  g = metrics.gaussian_window()
  assert g.shape == (11,) and abs(g.sum() - 1) < 1e-12
  np.testing.assert_allclose(g[5] / g[4], math.exp(1 / (2 * 1.5 ** 2)), rtol=1e-12)


def test_crop_handling():
  hr = np.full((1, 30, 30, 3), 90.0, np.float32)
  sr = hr.copy()
  sr[:, :8] = 200.0                # the top 8 rows differ only.
  p_crop, s_crop = metrics.psnr_ssim(sr, hr, border=8)
  p_full, _ = metrics.psnr_ssim(sr, hr, border=0)
  assert np.isinf(np.asarray(p_crop)[0])
  np.testing.assert_allclose(s_crop, [1.0], atol=1e-6)
  dy = float(metrics.rgb_to_y(np.array([200.0] * 3)) - metrics.rgb_to_y(np.array([90.0] * 3)))
  want = 10 * math.log10(255 ** 2 / (dy ** 2 * 8 / 30))
  np.testing.assert_allclose(p_full, [want], rtol=1e-5)
  assert metrics.prepare(hr, border=8).shape == (1, 14, 14, 1)
  with pytest.raises(ValueError, match='leaves nothing'):
    metrics.prepare(hr, border=15)
  with pytest.raises(ValueError, match='at least 11x11'):
    metrics.psnr_ssim(hr, hr, border=10)


def test_rgb_channel_option():
  sr, hr = _rng_images(2, n=1)
  p, s = metrics.psnr_ssim(sr, hr, channel='rgb', border=0)
  mse = np.mean((sr.astype(np.float64) - hr) ** 2)
  np.testing.assert_allclose(p, [10 * math.log10(255 ** 2 / mse)], rtol=1e-5)
  per_channel = [metrics.ssim(sr[..., c:c + 1], hr[..., c:c + 1]) for c in range(3)]
  np.testing.assert_allclose(s, np.mean(per_channel, axis=0), atol=1e-6)
  with pytest.raises(ValueError, match='channel'):
    metrics.prepare(sr, channel='bgr')


def test_against_scikit_image():
  skm = pytest.importorskip('skimage.metrics')
  sr, hr = _rng_images(3, n=3, size=48)
  # Smooth the HR so SSIM is far from 0 and the float32 path is stressed.
  hr = np.clip(np.cumsum(hr, axis=2) / np.arange(1, 49)[None, None, :, None], 0, 255)
  hr = np.round(hr).astype(np.float32)
  sr = np.clip(np.round(hr + np.random.default_rng(4).normal(0, 6, hr.shape)), 0, 255)
  sr = sr.astype(np.float32)
  border = 8
  psnr_ours, ssim_ours = metrics.psnr_ssim(sr, hr, border=border)
  y_sr = np.asarray(metrics.rgb_to_y(sr), np.float64)[:, border:-border, border:-border]
  y_hr = np.asarray(metrics.rgb_to_y(hr), np.float64)[:, border:-border, border:-border]
  for i in range(3):
    # skimage filters the whole image with reflection and then drops a 5-pixel
    # border before averaging: exactly our 'valid' region of the same planes.
    want_ssim = skm.structural_similarity(
        y_hr[i], y_sr[i], gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        data_range=255)
    want_psnr = skm.peak_signal_noise_ratio(y_hr[i], y_sr[i], data_range=255)
    assert abs(float(ssim_ours[i]) - want_ssim) < 1e-4
    assert abs(float(psnr_ours[i]) - want_psnr) < 1e-4
    assert 0.3 < want_ssim < 0.99
