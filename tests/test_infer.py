"""infer: export round trip, resizing of other sizes, bad files, exit status."""
import os

from absl import flags
import numpy as np
import pytest
from PIL import Image

from mrr_jax.weights import export_format
from mrr_jax import infer
from mrr_jax.evaluation import metrics
from mrr_jax.data import degradations, resize
from mrr_jax.evaluation import predict
from mrr_jax.models import MRRNet
from tests.test_evaluate import _random_params


def _cli_flags(**values):
  """A fresh FlagValues with the CLI's flags, as if parsed from the command line."""
  fv = infer.define_flags(flags.FlagValues())
  fv(['infer'] + [f'--{k}={v}' for k, v in values.items()])
  return fv


@pytest.fixture(scope='module')
def tiny_export(tmp_path_factory):
  model = MRRNet(base_channels=8, max_channels=16, num_down=3, num_res=1)
  params = _random_params(model, seed=1)
  path = str(tmp_path_factory.mktemp('export') / 'tiny')
  export_format.save_generator(path, model, params)
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


def test_export_infer_round_trip(tiny_export, tmp_path, capsys):
  path, model, params = tiny_export
  rng = np.random.default_rng(0)
  src, out = tmp_path / 'in', tmp_path / 'out'
  src.mkdir()
  lrs = {f'f{i}': rng.integers(0, 256, (16, 16, 3)).astype(np.uint8) for i in range(3)}
  for name, lr in lrs.items():
    Image.fromarray(lr).save(src / f'{name}.png')
  big = rng.integers(0, 256, (40, 32, 3)).astype(np.uint8)
  Image.fromarray(big).save(src / 'big.bmp')
  (src / 'broken.jpg').write_bytes(b'\xff\xd8 truncated')
  fv = _cli_flags(model=path, input=str(src), output=str(out), batch_size=2)
  infer.main(['infer'], fv)
  printed = capsys.readouterr().out
  assert 'wrote 4 image(s)' in printed and 'skipped broken.jpg: cannot read image' in printed
  assert sorted(os.listdir(out)) == ['big.png', 'f0.png', 'f1.png', 'f2.png']
  for name, lr in lrs.items():
    _assert_pixels_from_generator(np.asarray(Image.open(out / f'{name}.png')), model, params, lr)
  _assert_pixels_from_generator(np.asarray(Image.open(out / 'big.png')), model, params,
                                resize.pil_bicubic(big, 16))


def test_warnings_and_name_clash(tiny_export, tmp_path):
  path, _, _ = tiny_export
  src = tmp_path / 'in'
  src.mkdir()
  Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(src / 'a.png')
  Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(src / 'a.jpg')
  result = infer.run(path, str(src), str(tmp_path / 'out'))
  assert result['written'] == ['a.png']
  assert result['skipped'] == [{'name': 'a.png', 'reason': 'same output name a.png as a.jpg'}]
  assert len(result['warnings']) == 1 and 'is 64x64; resized to 16x16' in result['warnings'][0]


def test_bad_model_and_nothing_written_exit_non_zero(tiny_export, tmp_path):
  path, _, _ = tiny_export
  src = tmp_path / 'in'
  src.mkdir()
  (src / 'x.png').write_bytes(b'junk')
  fv = _cli_flags(model=str(tmp_path / 'nope'), input=str(src), output=str(tmp_path / 'o'))
  with pytest.raises(SystemExit, match='nope does not exist'):
    infer.main(['infer'], fv)
  fv = _cli_flags(model=path, input=str(src), output=str(tmp_path / 'o'))
  with pytest.raises(SystemExit, match='nothing written .* x.png: cannot read image'):
    infer.main(['infer'], fv)
  assert not (tmp_path / 'o').exists()
  with pytest.raises(infer.InferError, match='export directory'):
    infer.run('bicubic', str(src), str(tmp_path / 'o'))


def test_quantize_floor_truncates_where_round_rounds(tiny_export, tmp_path):
  path, _, _ = tiny_export
  rng = np.random.default_rng(4)
  (tmp_path / 'in').mkdir()
  for i in range(2):
    Image.fromarray(rng.integers(0, 256, (16, 16, 3)).astype(np.uint8)).save(
        tmp_path / 'in' / f'{i}.png')
  infer.run(path, str(tmp_path / 'in'), str(tmp_path / 'round'))
  infer.run(path, str(tmp_path / 'in'), str(tmp_path / 'floor'), quantize='floor')
  for i in range(2):
    r = np.asarray(Image.open(tmp_path / 'round' / f'{i}.png')).astype(int)
    f = np.asarray(Image.open(tmp_path / 'floor' / f'{i}.png')).astype(int)
    # floor(v) is round(v) or one below it; about half the values have fraction >= .5.
    assert set(np.unique(r - f)) <= {0, 1}
    assert 0.3 < (r - f).mean() < 0.7
  with pytest.raises(infer.InferError, match='--quantize must be round or floor'):
    infer.run(path, str(tmp_path / 'in'), str(tmp_path / 'x'), quantize='ceil')
