"""evaluate: export round trip, bicubic on the dev set, LPIPS wiring, bad input."""
import json
import os

from absl import flags
import flax
import numpy as np
import pytest
from PIL import Image

from mrr_jax import evaluate
from mrr_jax.weights import export_format
from mrr_jax.evaluation import lpips
from mrr_jax.evaluation import metrics
from mrr_jax.data import degradations, resize
from mrr_jax.evaluation import predict
from mrr_jax.models import MRRNet

SHARED_DATA = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', 'shared', 'data'))


def _face(rng):
  """A smooth 128x128 test image (bicubic does reasonably on it, like on faces)."""
  small = rng.integers(0, 256, (16, 16, 3)).astype(np.uint8)
  return np.asarray(Image.fromarray(small).resize((128, 128), Image.BILINEAR))


def _write_pairs(root, names, lr_names=None, seed=0):
  rng = np.random.default_rng(seed)
  hr_dir, lr_dir = root / 'HR', root / 'LR'
  hr_dir.mkdir()
  lr_dir.mkdir()
  images = {}
  for name, lr_name in zip(names, lr_names or names):
    hr = _face(rng)
    images[name] = hr
    Image.fromarray(hr).save(hr_dir / f'{name}.png')
    Image.fromarray(resize.pil_bicubic(hr, 16)).save(lr_dir / f'{lr_name}.png')
  return str(hr_dir), str(lr_dir), images


def _cli_flags(**values):
  """A fresh FlagValues with the CLI's flags, as if parsed from the command line."""
  fv = evaluate.define_flags(flags.FlagValues())
  fv(['evaluate'] + [f'--{k}={v}' for k, v in values.items()])
  return fv


def _random_params(model, seed):
  """Random params of the right shapes, drawn in numpy (model.init compiles for ~40 s on CPU)."""
  rng = np.random.default_rng(seed)
  flat = {}
  for path, shape in export_format.param_shapes(model).items():
    if path[-1] == 'kernel':
      value = rng.normal(0, 0.5 * (2 / np.prod(shape[:-1])) ** 0.5, shape)
    else:  # conv biases, InstanceNorm scale/bias.
      value = (1.0 if path[-1] == 'scale' else 0.0) + 0.1 * rng.normal(size=shape)
    flat[path] = value.astype(np.float32)
  return flax.traverse_util.unflatten_dict(flat)


@pytest.fixture(scope='module')
def tiny_export(tmp_path_factory):
  model = MRRNet(base_channels=8, max_channels=16, num_down=3, num_res=1)
  params = _random_params(model, seed=0)
  path = str(tmp_path_factory.mktemp('export') / 'tiny')
  export_format.save_generator(path, model, params, {'note': 'random'})
  return path, model, params


def _assert_pixels_from_generator(saved, model, params, lr):
  """Saved pixels == the generator run directly on the LR, then clip/map/round.

  Compiled and op-by-op float32 runs differ by ~1e-5, which can flip a value
  lying within a hair of a .5 rounding boundary; only those pixels may differ,
  and by one level.
  """
  x = predict.to_model_input(degradations.upsample_lr(lr)[None])
  value = np.asarray(metrics.quantize(model.apply({'params': params}, x), 'none'))[0]
  direct = np.round(value)
  on_boundary = np.abs(value - np.floor(value) - 0.5) < 1e-2
  assert on_boundary.mean() < 0.05
  np.testing.assert_array_equal(saved[~on_boundary], direct[~on_boundary])
  assert np.all(np.abs(saved.astype(np.float64) - direct) <= 1)


def test_export_evaluate_round_trip(tiny_export, tmp_path):
  path, model, params = tiny_export
  hr_dir, lr_dir, images = _write_pairs(tmp_path, ['a', 'b', 'c'])
  save_dir, json_path = tmp_path / 'out', tmp_path / 'r.json'
  # batch_size 2 over 3 images: the last batch is padded and its pad dropped.
  result = evaluate.run(path, hr_dir, lr_dir, save_dir=str(save_dir), json_path=str(json_path),
                        batch_size=2)
  assert result['num_images'] == 3 and result['num_skipped'] == 0 and result['complete']
  psnrs = []
  for row in result['per_image']:
    lr = np.asarray(Image.open(os.path.join(lr_dir, row['name'] + '.png')))
    saved = np.asarray(Image.open(save_dir / 'sr' / f'{row["name"]}.png'))
    _assert_pixels_from_generator(saved, model, params, lr)
    p, s = metrics.psnr_ssim(saved[None].astype(np.float32), images[row['name']][None])
    np.testing.assert_allclose([row['psnr'], row['ssim']], [p[0], s[0]], rtol=1e-5)
    psnrs.append(row['psnr'])
  assert [r['name'] for r in result['per_image']] == ['a', 'b', 'c']
  on_disk = json.loads(json_path.read_text())
  assert on_disk['num_images'] == 3 and on_disk['complete'] is True
  np.testing.assert_allclose(on_disk['psnr'], np.mean(psnrs), rtol=1e-9)
  assert on_disk['model_metadata'] == {'note': 'random'}
  # bicubic | SR | HR rows; attention: bicubic, SR + 3 encoder + 1 res + 3 decoder maps.
  comparison = np.asarray(Image.open(save_dir / 'comparison.png'))
  assert comparison.shape == (14 + 2 + 3 * 130, 2 + 3 * 130, 3)
  attention = np.asarray(Image.open(save_dir / 'attention.png'))
  assert attention.shape == (14 + 2 + 3 * 130, 2 + 9 * 130, 3)


def test_attention_maps_in_forward_order(tiny_export):
  _, model, params = tiny_export
  maps = predict.attention_maps(model, params, np.zeros((2, 128, 128, 3), np.uint8))
  names = predict.forward_order(maps)
  assert names == ['encoder_1', 'encoder_2', 'encoder_3', 'res_layers_0',
                   'decoder_0', 'decoder_1', 'decoder_2']
  assert [maps[n].shape for n in names] == [(2, s, s, 1) for s in (64, 32, 16, 16, 32, 64, 128)]
  assert all(0 < float(maps[n].min()) and float(maps[n].max()) < 1 for n in names)


def test_bicubic_scores_the_network_input(tmp_path):
  hr_dir, _, images = _write_pairs(tmp_path, ['x', 'y'])
  result = evaluate.run('bicubic', hr_dir, crop_border=0, channel='rgb')
  skm = pytest.importorskip('skimage.metrics')
  for row in result['per_image']:
    hr = images[row['name']]
    up = degradations.upsample_lr(resize.pil_bicubic(hr, 16))
    want = skm.peak_signal_noise_ratio(hr, up, data_range=255)
    assert abs(row['psnr'] - want) < 1e-4
  assert result['protocol']['lr_source'].startswith('made from HR')


def test_lpips_through_evaluate(tmp_path):
  rng = np.random.default_rng(0)
  convs = ((0, 64, 3, 11), (3, 192, 64, 5), (6, 384, 192, 3), (8, 256, 384, 3), (10, 256, 256, 3))
  np.savez(tmp_path / 'alex.npz', **{
      f'features.{i}.{p}': rng.normal(0, 0.05, (o, c, k, k) if p == 'weight' else (o,))
      for i, o, c, k in convs for p in ('weight', 'bias')})
  np.savez(tmp_path / 'lin.npz', **{f'lin{j}.model.1.weight': rng.uniform(0, 1, (1, o, 1, 1))
                                    for j, (_, o, _, _) in enumerate(convs)})
  hr_dir, _, images = _write_pairs(tmp_path, ['p', 'q'])
  result = evaluate.run('bicubic', hr_dir, lpips_backbone=str(tmp_path / 'alex.npz'),
                        lpips_linear=str(tmp_path / 'lin.npz'))
  net, params = lpips.load(str(tmp_path / 'alex.npz'), str(tmp_path / 'lin.npz'))
  for row in result['per_image']:
    hr = images[row['name']]
    up = degradations.upsample_lr(resize.pil_bicubic(hr, 16))
    want = lpips.distance(net, params, up[None] / 127.5 - 1, hr[None] / 127.5 - 1)[0]
    np.testing.assert_allclose(row['lpips'], want, rtol=1e-4)
  assert result['lpips'] == pytest.approx(np.mean([r['lpips'] for r in result['per_image']]))
  assert 'LPIPS' in evaluate.format_table(result)
  with pytest.raises(evaluate.EvalError, match='needs both'):
    evaluate.run('bicubic', hr_dir, lpips_backbone=str(tmp_path / 'alex.npz'))


def test_celeba_dev_bicubic_matches_literature():
  root = os.path.join(SHARED_DATA, 'celeba_dic_dev')
  if not os.path.isdir(root):
    pytest.skip(f'{root} is absent (optional development data from ../shared)')
  result = evaluate.run('bicubic', os.path.join(root, 'HR'), os.path.join(root, 'LR'),
                        batch_size=50)
  assert result['num_images'] == 200 and result['complete']
  # Measured with this protocol: 23.6637 dB / 0.6284 (MRRNet Table 1, 1,000 images:
  # 23.73 / 0.6261).
  assert result['psnr'] == pytest.approx(23.6637, abs=1e-3)
  assert result['ssim'] == pytest.approx(0.6284, abs=1e-4)
  assert abs(result['psnr'] - 23.73) < 0.2 and abs(result['ssim'] - 0.6261) < 0.01


# ------------------------------------------------------------------ bad input


def test_missing_model_dir(tmp_path):
  hr_dir, _, _ = _write_pairs(tmp_path, ['a'])
  with pytest.raises(evaluate.EvalError, match='nope does not exist'):
    evaluate.run(str(tmp_path / 'nope'), hr_dir)


def test_name_mismatch_and_unreadable_are_skipped_and_reported(tmp_path, capsys):
  hr_dir, lr_dir, _ = _write_pairs(tmp_path, ['a', 'b', 'c'], lr_names=['a', 'b', 'z'])
  with open(os.path.join(hr_dir, 'b.png'), 'wb') as f:
    f.write(b'not a png')
  json_path = tmp_path / 'r.json'
  fv = _cli_flags(model='bicubic', hr_dir=hr_dir, lr_dir=lr_dir, json=str(json_path))
  evaluate.main(['evaluate'], fv)
  table = capsys.readouterr().out
  assert table.startswith('INCOMPLETE: 3 image(s) skipped')
  result = json.loads(json_path.read_text())
  assert result['num_images'] == 1 and result['num_skipped'] == 3 and not result['complete']
  assert [r['name'] for r in result['per_image']] == ['a']
  reasons = {s['name']: s['reason'] for s in result['skipped']}
  assert set(reasons) == {'z.png', 'b.png', 'c.png'}
  assert 'no HR image named z' in reasons['z.png']
  assert 'cannot read image' in reasons['b.png'] and 'b.png' in reasons['b.png']
  assert 'no LR image named c' in reasons['c.png']


def test_nothing_scored_exits_non_zero_without_json(tmp_path):
  hr_dir, lr_dir, _ = _write_pairs(tmp_path, ['a', 'b'], lr_names=['x', 'y'])
  json_path = tmp_path / 'r.json'
  fv = _cli_flags(model='bicubic', hr_dir=hr_dir, lr_dir=lr_dir, json=str(json_path))
  with pytest.raises(SystemExit) as e:
    evaluate.main(['evaluate'], fv)
  assert 'nothing could be scored' in str(e.value.code) and e.value.code != 0
  assert not json_path.exists()
  fv = _cli_flags(model=str(tmp_path / 'missing'), hr_dir=hr_dir)
  with pytest.raises(SystemExit, match='does not exist'):
    evaluate.main(['evaluate'], fv)


def test_periodic_evaluation_equals_the_evaluate_command(tmp_path):
  """The trainer's periodic evaluation and `evaluate` score the same pairs alike: one loop."""
  from configs import mrrnet  # pylint: disable=g-import-not-at-top
  from mrr_jax.models import init as model_init  # pylint: disable=g-import-not-at-top
  from mrr_jax.train import loop as train_loop  # pylint: disable=g-import-not-at-top
  from mrr_jax.weights import export_format  # pylint: disable=g-import-not-at-top
  hr_dir, lr_dir, _ = _write_pairs(tmp_path, ['a', 'b', 'c', 'd', 'e'])
  config = mrrnet.get_config('tiny')
  config.eval_every_steps = 1
  config.data.eval_hr_dir, config.data.eval_lr_dir = hr_dir, lr_dir
  generator = export_format.build_generator(config.model.to_dict())
  params = model_init.init_generator(generator, 3)
  model = export_format.save_generator(str(tmp_path / 'export'), generator, params)
  periodic, grid = train_loop.make_evaluate_fn(config, generator)(params)
  command = evaluate.run(model, hr_dir, lr_dir, batch_size=config.batch_size)
  assert command['num_images'] == 5 and command['complete']
  for key in ('psnr', 'ssim'):
    assert periodic[key] == pytest.approx(command[key], rel=1e-12, abs=0), key
  assert 10 < periodic['psnr'] < 40  # a real score, not a default
  # The grid the trainer writes into the workdir: 5 rows of bicubic | SR | HR, with
  # the HR column the pairs' own pixels (row r, third cell).
  cell, pad, top = 128, 2, 14
  assert grid.shape == (top + pad + 5 * (cell + pad), pad + 3 * (cell + pad), 3)
  hr = np.asarray(Image.open(os.path.join(hr_dir, 'c.png')).convert('RGB'))
  y, x = top + pad + 2 * (cell + pad), pad + 2 * (cell + pad)
  np.testing.assert_array_equal(grid[y:y + cell, x:x + cell], hr)
  # The SR cell carries its score on a white strip at the bottom.
  strip = grid[y + cell - 14:y + cell, pad + cell + pad:pad + 2 * cell + pad]
  assert (strip == 255).mean() > 0.7 and (strip < 128).any()
