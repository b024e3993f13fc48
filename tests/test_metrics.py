"""Metric tests: hand-computed values, the protocol's pieces, and scikit-image agreement."""
import math

import numpy as np
import pytest

from mrr_jax.evaluation import metrics


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


# ---------------------------------------------------------------- LPIPS

ALEX_CONVS = ((0, 64, 3, 11), (3, 192, 64, 5), (6, 384, 192, 3), (8, 256, 384, 3),
              (10, 256, 256, 3))


def _write_alex_weights(tmp_path, seed=0):
  rng = np.random.default_rng(seed)
  backbone = {}
  for i, o, c, k in ALEX_CONVS:
    backbone[f'features.{i}.weight'] = rng.normal(0, (2 / (c * k * k)) ** 0.5, (o, c, k, k))
    backbone[f'features.{i}.bias'] = rng.normal(0, 0.1, (o,))
  backbone['classifier.1.weight'] = np.zeros((4, 4))     # ignored, as in torchvision files.
  linear = {f'lin{j}.model.1.weight': rng.uniform(0, 1, (1, o, 1, 1))
            for j, (_, o, _, _) in enumerate(ALEX_CONVS)}
  np.savez(tmp_path / 'alex_backbone.npz', **backbone)
  np.savez(tmp_path / 'alex_lin.npz', **linear)
  return backbone, linear


def _np_conv_relu(x, w, b, stride, pad):
  """Reference NCHW conv (cross-correlation, as torch) + ReLU in float64."""
  x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
  k = w.shape[-1]
  win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
  return np.maximum(np.einsum('nchwij,ocij->nohw', win, w) + b[None, :, None, None], 0)


def _np_pool(x, k, s):
  return np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::s, ::s].max(
      axis=(-1, -2))


def _np_lpips_alex(backbone, linear, x, y):
  """LPIPS v0.1 alex written from the lpips package's forward, NCHW numpy."""
  shift = np.array([-.030, -.088, -.188])[None, :, None, None]
  scale = np.array([.458, .448, .450])[None, :, None, None]

  def taps(v):
    v = (np.transpose(v, (0, 3, 1, 2)) - shift) / scale
    out = []
    for n, (i, _, _, k) in enumerate(ALEX_CONVS):
      if n in (1, 2):
        v = _np_pool(v, 3, 2)
      stride, pad = (4, 2) if i == 0 else (1, k // 2)
      v = _np_conv_relu(v, backbone[f'features.{i}.weight'], backbone[f'features.{i}.bias'],
                        stride, pad)
      out.append(v)
    return out

  total = 0
  for j, (a, b) in enumerate(zip(taps(x), taps(y))):
    a = a / (np.sqrt((a ** 2).sum(1, keepdims=True)) + 1e-10)
    b = b / (np.sqrt((b ** 2).sum(1, keepdims=True)) + 1e-10)
    lin = linear[f'lin{j}.model.1.weight'].reshape(1, -1, 1, 1)
    total = total + ((a - b) ** 2 * lin).sum(1).mean(axis=(1, 2))
  return total


def test_lpips_alex_matches_numpy_reference(tmp_path):
  from mrr_jax.evaluation import lpips
  backbone, linear = _write_alex_weights(tmp_path)
  net, params = lpips.load(str(tmp_path / 'alex_backbone.npz'), str(tmp_path / 'alex_lin.npz'))
  assert net == 'alex'
  rng = np.random.default_rng(5)
  x = rng.uniform(-1, 1, (2, 64, 64, 3))
  y = np.clip(x + rng.normal(0, 0.2, x.shape), -1, 1)
  got = np.asarray(lpips.distance(net, params, x.astype(np.float32), y.astype(np.float32)))
  want = _np_lpips_alex(backbone, linear, x, y)
  np.testing.assert_allclose(got, want, rtol=1e-4)
  assert np.all(want > 0)
  np.testing.assert_allclose(lpips.distance(net, params, x, x), [0, 0], atol=1e-6)


def test_lpips_missing_and_mismatched_files(tmp_path):
  from mrr_jax.evaluation import lpips
  _write_alex_weights(tmp_path)
  with pytest.raises(lpips.LpipsWeightsError, match='nope.pth does not exist'):
    lpips.load(str(tmp_path / 'nope.pth'), str(tmp_path / 'alex_lin.npz'))
  np.savez(tmp_path / 'vgg_lin.npz', **{f'lin{j}.model.1.weight': np.ones((1, c, 1, 1))
                                         for j, c in enumerate((64, 128, 256, 512, 512))})
  with pytest.raises(lpips.LpipsWeightsError, match='lin1 has 128 channels but the alex'):
    lpips.load(str(tmp_path / 'alex_backbone.npz'), str(tmp_path / 'vgg_lin.npz'))
  with pytest.raises(lpips.LpipsWeightsError, match='not a torchvision AlexNet or VGG16'):
    lpips.load(str(tmp_path / 'alex_lin.npz'), str(tmp_path / 'alex_lin.npz'))


def test_corrupt_pth_without_torch_names_the_file(tmp_path, monkeypatch):
  import builtins
  from mrr_jax.weights import torch_io
  (tmp_path / 'w.pth').write_bytes(b'not really')
  real_import = builtins.__import__

  def no_torch(name, *args, **kwargs):
    if name == 'torch':
      raise ImportError('No module named torch')
    return real_import(name, *args, **kwargs)

  monkeypatch.setattr(builtins, '__import__', no_torch)
  # Without torch the restricted reader takes over; garbage is named, not crashed on.
  with pytest.raises(torch_io.StateDictError, match='w.pth could not be read as a PyTorch'):
    torch_io.load_state_dict(str(tmp_path / 'w.pth'))
