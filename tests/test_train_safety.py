"""Users' workdirs and exports are never damaged: locks, resume checks, non-finite runs, bad values.

Each test asserts on the bytes on disk: what must stay identical, what must
not appear, and what must still load.
"""
import hashlib
import json
import logging
import os
import subprocess
import sys
import time

import jax
import numpy as np
from PIL import Image
import orbax.checkpoint as ocp
import pytest

from configs import mrrnet
from mrr_jax import export
from mrr_jax.train import config_checks
from mrr_jax.weights import export_format
from mrr_jax.train import checkpoints, loop
from mrr_jax.train import lock as workdir_lock
from mrr_jax.train import state as state_lib
from tests import face_fakes

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.skipif(jax.local_device_count() != 4,
                                reason='needs the 4 CPU devices tests/conftest.py sets up')


@pytest.fixture(scope='module')
def data(tmp_path_factory):
  root = tmp_path_factory.mktemp('safety')
  for i in range(8):
    face_fakes.write(str(root / 'faces' / f'{i:02d}.png'),
                     face_fakes.encode(face_fakes.smooth_photo(i, 96, 112), 'PNG'))
  return {'train_dir': str(root / 'faces'), 'data_dir': str(root / 'tfds')}


def _config(data, **overrides):
  config = mrrnet.get_config('tiny')
  config.data.train_dir = data['train_dir']
  config.data.data_dir = data['data_dir']
  config.log_every_steps = 1
  config.image_every_steps = 0
  for key, value in overrides.items():
    target = config
    *parents, leaf = key.split('.')
    for p in parents:
      target = target[p]
    target[leaf] = value
  return config


def _tree_digest(folder):
  """{relative path: sha256} of every file under folder."""
  out = {}
  for d, _, files in os.walk(folder):
    for f in files:
      path = os.path.join(d, f)
      with open(path, 'rb') as fh:
        out[os.path.relpath(path, folder)] = hashlib.sha256(fh.read()).hexdigest()
  return out


def _all_checkpoints(workdir):
  mngr = ocp.CheckpointManager(os.path.join(workdir, 'checkpoints'), item_names=('state',))
  for step in mngr.all_steps():
    yield step, mngr.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore()))['state']


def _main(*args, timeout=600):
  return subprocess.run([sys.executable, '-m', 'mrr_jax.main', *args], cwd=REPO,
                        capture_output=True, text=True, timeout=timeout)


def _tiny_args(data, workdir, *extra):
  return ['--config', 'configs/mrrnet.py:tiny', '--workdir', workdir,
          f'--config.data.train_dir={data["train_dir"]}',
          f'--config.data.data_dir={data["data_dir"]}', *extra]


def _last_line(stderr):
  return stderr.strip().splitlines()[-1]


# ------------------------------------------------------------------ --overwrite


def _tiny_export(path, seed=0, overwrite=False):
  model = export_format.build_generator({'base_channels': 4, 'max_channels': 8, 'num_res': 1})
  from mrr_jax.models import init as model_init  # pylint: disable=g-import-not-at-top
  params = model_init.init_generator(model, seed)
  return export_format.save_generator(str(path), model, params, {'seed': seed}, overwrite=overwrite)


def test_overwrite_refuses_a_folder_of_user_files(tmp_path):
  photos = tmp_path / 'photos'
  photos.mkdir()
  for i in range(5):
    (photos / f'{i}.jpg').write_bytes(b'my photo %d' % i)
  before = _tree_digest(photos)
  with pytest.raises(export_format.ExportError, match='not an mrr_jax export .*5 entries: 0.jpg'):
    _tiny_export(photos, overwrite=True)
  assert _tree_digest(photos) == before
  # An export with the user's own file added is not replaced either.
  out = tmp_path / 'export'
  _tiny_export(out)
  (out / 'notes.txt').write_text('mine')
  with pytest.raises(export_format.ExportError, match='notes.txt'):
    _tiny_export(out, seed=1, overwrite=True)
  assert (out / 'notes.txt').read_text() == 'mine'
  # A file is never replaced by an export folder.
  single = tmp_path / 'weights.bin'
  single.write_bytes(b'x')
  with pytest.raises(export_format.ExportError, match='is a file'):
    _tiny_export(single, overwrite=True)
  assert single.read_bytes() == b'x'


def test_overwrite_replaces_an_export_whole(tmp_path):
  out = tmp_path / 'export'
  _tiny_export(out, seed=0)
  with pytest.raises(export_format.ExportError, match='already exists'):
    _tiny_export(out, seed=1)
  _, params0, meta0 = export_format.load_generator(str(out))
  _tiny_export(out, seed=1, overwrite=True)
  _, params1, meta1 = export_format.load_generator(str(out))
  assert meta0['seed'] == 0 and meta1['seed'] == 1
  leaves0, leaves1 = jax.tree_util.tree_leaves(params0), jax.tree_util.tree_leaves(params1)
  assert any(np.any(a != b) for a, b in zip(leaves0, leaves1))
  assert sorted(os.listdir(tmp_path)) == ['export']  # no temporary or old copies left
  assert sorted(os.listdir(out)) == [export_format.MODEL_FILE, export_format.PARAMS_FILE]


def test_overwrite_cli_refuses_user_folder(tmp_path, g_state):
  photos = tmp_path / 'photos'
  photos.mkdir()
  (photos / 'a.jpg').write_bytes(b'photo')
  npz = tmp_path / 'g.npz'
  np.savez(npz, **g_state)
  result = subprocess.run([sys.executable, '-m', 'mrr_jax.convert', '--generator', str(npz),
                           '--output', str(photos), '--overwrite'], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 1
  assert 'refusing to overwrite' in _last_line(result.stderr)
  assert os.listdir(photos) == ['a.jpg'] and (photos / 'a.jpg').read_bytes() == b'photo'


# ------------------------------------------------------------------ one trainer per workdir


def test_second_trainer_on_a_workdir_refuses_at_once(data, tmp_path):
  workdir = str(tmp_path / 'run')
  first = subprocess.Popen(
      [sys.executable, '-m', 'mrr_jax.main',
       *_tiny_args(data, workdir, '--config.num_train_steps=30',
                   '--config.checkpoint_every_steps=10')],
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  lock_file = os.path.join(workdir, workdir_lock.LOCK_FILE)
  deadline = time.time() + 300
  while not os.path.exists(lock_file) and first.poll() is None and time.time() < deadline:
    time.sleep(0.2)
  assert os.path.exists(lock_file), 'the first trainer never took the lock'
  second = _main(*_tiny_args(data, workdir, '--config.num_train_steps=30'))
  assert first.poll() is None, 'the second trainer should have stopped before the first ended'
  assert second.returncode == 1
  message = _last_line(second.stderr)
  assert 'in use by another trainer' in message and f'pid {first.pid}' in message, message
  output = first.communicate(timeout=900)[0]
  assert first.returncode == 0, output[-3000:]
  steps = {step: state for step, state in _all_checkpoints(workdir)}
  assert sorted(steps) == [10, 20, 30]
  assert all(int(s['step']) == step for step, s in steps.items())
  assert not os.path.exists(lock_file)  # released on exit


def test_stale_lock_is_taken_over_with_a_warning(data, tmp_path, caplog):
  workdir = tmp_path / 'run'
  workdir.mkdir()
  gone = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                        capture_output=True, text=True, check=True)
  dead_pid = int(gone.stdout)
  (workdir / workdir_lock.LOCK_FILE).write_text(json.dumps(
      {'host': 'somehost', 'pid': dead_pid, 'started': 0, 'command': 'old trainer'}))
  with caplog.at_level(logging.WARNING):
    loop.train_and_evaluate(_config(data, num_train_steps=1), str(workdir))
  assert any('taking over the lock' in r.getMessage() and str(dead_pid) in r.getMessage()
             for r in caplog.records)
  assert [step for step, _ in _all_checkpoints(str(workdir))] == [1]


def test_lock_holder_is_named_in_process(tmp_path):
  with workdir_lock.WorkdirLock(str(tmp_path)):
    with pytest.raises(workdir_lock.WorkdirLockedError, match=f'pid {os.getpid()}'):
      workdir_lock.WorkdirLock(str(tmp_path)).acquire()
  workdir_lock.WorkdirLock(str(tmp_path)).acquire().release()  # free again


# ------------------------------------------------------------------ resume


@pytest.fixture(scope='module')
def short_run(data, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('short') / 'run')
  loop.train_and_evaluate(_config(data, num_train_steps=2, checkpoint_every_steps=1), workdir)
  return workdir


def test_resume_with_other_widths_is_refused_before_writing(data, short_run, tmp_path):
  before = _tree_digest(short_run)
  config = _config(data, num_train_steps=4, **{'model.base_channels': 4})
  with pytest.raises(state_lib.TrainingError, match=r'model.base_channels: 8 -> 4'):
    loop.train_and_evaluate(config, short_run)
  assert _tree_digest(short_run) == before
  out = export.export_checkpoint(short_run, str(tmp_path / 'export'))
  assert export_format.load_generator(out)[2]['step'] == 2


def test_resume_checks_the_checkpoint_itself(data, short_run, tmp_path):
  """A config.json edited (or lost) does not let a mismatched state through."""
  copy = str(tmp_path / 'copy')
  import shutil  # pylint: disable=g-import-not-at-top
  shutil.copytree(short_run, copy)
  os.remove(os.path.join(copy, export_format.RUN_CONFIG_FILE))
  before = _tree_digest(copy)
  with pytest.raises(state_lib.TrainingError, match='does not fit this config') as err:
    loop.train_and_evaluate(_config(data, num_train_steps=4, **{'model.num_res': 2}), copy)
  assert _tree_digest(copy) == before
  # Only the second middle block's arrays (params, Adam's mu and nu) differ.
  differ = str(err.value).split('arrays differ: ')[1]
  assert 'res_layers_1/' in differ and 'res_layers_0' not in differ, differ


def test_resume_conflicts_name_state_shaping_keys_only():
  saved = mrrnet.get_config().to_dict()
  new = mrrnet.get_config()
  new.num_train_steps, new.g_lr, new.data.train_dir = 7, 3e-4, '/elsewhere'
  assert config_checks.resume_conflicts(saved, new.to_dict()) == []
  new.phase, new.model.att_kernels, new.ema_decay = 'gan', (1, 3), 0.999
  assert config_checks.resume_conflicts(saved, new.to_dict()) == [
      'model.att_kernels: [1, 3, 5, 7] -> [1, 3]', "phase: 'l1' -> 'gan'",
      'ema_decay: 0.0 -> 0.999 (EMA turned on)']


# ------------------------------------------------------------------ non-finite


def test_nan_run_keeps_only_finite_checkpoints(data, short_run, tmp_path):
  import shutil  # pylint: disable=g-import-not-at-top
  workdir = str(tmp_path / 'nan')
  shutil.copytree(short_run, workdir)
  # Learning rates may change on resume; this one makes step 3's update overflow.
  config = _config(data, num_train_steps=6, checkpoint_every_steps=1, g_lr=1e30)
  with pytest.raises(state_lib.TrainingError, match=r'last good checkpoint is step 2') as err:
    loop.train_and_evaluate(config, workdir)
  assert 'step 3' in str(err.value)
  steps = []
  for step, state in _all_checkpoints(workdir):
    steps.append(step)
    assert all(np.all(np.isfinite(x)) for x in jax.tree_util.tree_leaves(state['g_params']))
  assert steps == [1, 2]
  out = export.export_checkpoint(workdir, str(tmp_path / 'export'), step=2)
  model, params, _ = export_format.load_generator(out)
  x = np.random.default_rng(0).uniform(-1, 1, (2, 128, 128, 3)).astype(np.float32)
  assert np.all(np.isfinite(np.asarray(model.apply({'params': params}, x))))


# ------------------------------------------------------------------ init_from


def test_init_from_accepts_a_step_folder(data, short_run):
  generator, _ = state_lib.build_models(_config(data))
  by_step = checkpoints.load_generator_params(os.path.join(short_run, 'checkpoints', '1'), generator)
  latest = checkpoints.load_generator_params(short_run, generator)
  step1 = dict(_all_checkpoints(short_run))[1]['g_params']
  for a, b in zip(jax.tree_util.tree_leaves(by_step), jax.tree_util.tree_leaves(step1)):
    np.testing.assert_array_equal(a, b)
  assert any(np.any(np.asarray(a) != np.asarray(b)) for a, b in
             zip(jax.tree_util.tree_leaves(by_step), jax.tree_util.tree_leaves(latest)))


# ------------------------------------------------------------------ bad values


@pytest.mark.parametrize('override,needle', [
    ('batch_size=0', 'config.batch_size must be >= 1, got 0'),
    ('batch_size=-4', 'config.batch_size must be >= 1, got -4'),
    ('num_train_steps=-3', 'config.num_train_steps must be >= 1, or 0 for num_epochs epochs, '
     'got -3'),
    ('lr_decay_every_epochs=0', 'config.lr_decay_every_epochs must be >= 1, got 0'),
    ('checkpoint_every_steps=-1', 'config.checkpoint_every_steps must be >= 1, or 0 for'),
    ('log_every_steps=0', 'config.log_every_steps must be >= 1, got 0'),
])
def test_bad_config_values_are_one_line_and_write_nothing(data, tmp_path, override, needle):
  workdir = tmp_path / 'never'
  result = _main(*_tiny_args(data, str(workdir), f'--config.{override}'))
  assert result.returncode == 1
  assert _last_line(result.stderr) == f'error: {needle}' or needle in _last_line(result.stderr)
  assert 'Traceback' not in result.stderr
  assert not workdir.exists()


def test_zero_means_off_for_checkpoints_images_and_eval(data, tmp_path):
  workdir = str(tmp_path / 'run')
  loop.train_and_evaluate(_config(data, num_train_steps=3, checkpoint_every_steps=0,
                                   image_every_steps=0, eval_every_steps=0), workdir)
  assert [step for step, _ in _all_checkpoints(workdir)] == [3]  # the end only
  assert not os.path.exists(os.path.join(workdir, 'eval'))


def test_each_evaluation_writes_a_scored_grid(data, tmp_path):
  pairs = tmp_path / 'pairs'
  for i in range(3):
    hr = face_fakes.smooth_photo(30 + i, 128, 128)
    face_fakes.write(str(pairs / 'HR' / f'{i}.png'), face_fakes.encode(hr, 'PNG'))
    lr = np.asarray(Image.fromarray(hr).resize((16, 16), Image.BICUBIC))
    face_fakes.write(str(pairs / 'LR' / f'{i}.png'), face_fakes.encode(lr, 'PNG'))
  workdir = str(tmp_path / 'run')
  loop.train_and_evaluate(_config(data, num_train_steps=4, checkpoint_every_steps=0,
                                   eval_every_steps=2, **{'data.eval_hr_dir': str(pairs / 'HR'),
                                                          'data.eval_lr_dir': str(pairs / 'LR')}),
                          workdir)
  assert sorted(os.listdir(os.path.join(workdir, 'eval'))) == ['step_00000002.png',
                                                               'step_00000004.png']
  grid = np.asarray(Image.open(os.path.join(workdir, 'eval', 'step_00000004.png')))
  assert grid.shape == (14 + 2 + 3 * 130, 2 + 3 * 130, 3)  # 3 faces x (bicubic | SR | HR)
  # mrr_jax.plot reads the same run's curves back from its event files.
  from mrr_jax import plot  # pylint: disable=g-import-not-at-top
  series = plot.read_scalars(workdir)
  assert [s for s, _ in series['train_l1']] == [1, 2, 3, 4]
  assert [s for s, _ in series['eval_psnr']] == [2, 4]
  assert all(0 < v < 2 for _, v in series['train_l1'])  # mean |SR - HR| of [-1, 1] images
  assert all(5 < v < 60 for _, v in series['eval_psnr'])
  path = plot.plot(series, str(tmp_path / 'curves.png'))
  curves = np.asarray(Image.open(path))
  assert curves.shape[1] == 800 and curves.shape[0] == 4 * 260  # losses, lr, PSNR, SSIM panels
  with pytest.raises(plot.PlotError, match='no events.out.tfevents'):
    plot.read_scalars(str(tmp_path))


# ------------------------------------------------------------------ output paths


def _cli(module, *args):
  return subprocess.run([sys.executable, '-m', module, *args], cwd=REPO, capture_output=True,
                        text=True, timeout=300)


@pytest.fixture()
def pairs(tmp_path):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  hr_dir, lr_dir = tmp_path / 'HR', tmp_path / 'LR'
  hr_dir.mkdir(), lr_dir.mkdir()
  hr = face_fakes.smooth_photo(5, 128, 128)
  Image.fromarray(hr).save(hr_dir / 'a.png')
  Image.fromarray(hr[::8, ::8]).save(lr_dir / 'a.png')
  return str(hr_dir), str(lr_dir), _tiny_export(tmp_path / 'export')


def test_bad_output_paths_are_refused_before_any_work(pairs, tmp_path):
  from mrr_jax import evaluate, infer  # pylint: disable=g-import-not-at-top
  hr_dir, lr_dir, model = pairs
  a_file = tmp_path / 'taken.txt'
  a_file.write_text('mine')
  with pytest.raises(evaluate.EvalError, match='--save_dir .*taken.txt is a file'):
    evaluate.run(model, hr_dir, lr_dir, save_dir=str(a_file))
  with pytest.raises(evaluate.EvalError, match='--json .* is a folder'):
    evaluate.run(model, hr_dir, lr_dir, json_path=str(tmp_path))
  with pytest.raises(evaluate.EvalError, match='--json .*taken.txt/out.json: .*taken.txt is a file'):
    evaluate.run(model, hr_dir, lr_dir, json_path=str(a_file / 'out.json'))
  with pytest.raises(infer.InferError, match='--output .*taken.txt is a file'):
    infer.run(model, lr_dir, str(a_file))
  photos = tmp_path / 'photos'
  photos.mkdir()
  (photos / 'a.png').write_bytes(b'my own picture')
  with pytest.raises(infer.InferError, match='already holds 1 entries .*a.png.*--overwrite'):
    infer.run(model, lr_dir, str(photos))
  assert (photos / 'a.png').read_bytes() == b'my own picture'
  with pytest.raises(infer.InferError, match='must not be the --input folder'):
    infer.run(model, lr_dir, lr_dir, overwrite=True)
  assert a_file.read_text() == 'mine'
  # An earlier evaluation's save_dir is reused, and --overwrite lets infer replace its PNGs.
  save = tmp_path / 'eval'
  evaluate.run(model, hr_dir, lr_dir, save_dir=str(save))
  evaluate.run(model, hr_dir, lr_dir, save_dir=str(save))
  assert infer.run(model, lr_dir, str(photos), overwrite=True)['written'] == ['a.png']


def test_bad_output_paths_cli_one_line(pairs, tmp_path):
  hr_dir, lr_dir, model = pairs
  a_file = tmp_path / 'taken.txt'
  a_file.write_text('mine')
  for module, args in (
      ('mrr_jax.evaluate', ['--model', model, '--hr_dir', hr_dir, '--save_dir', str(a_file)]),
      ('mrr_jax.infer', ['--model', model, '--input', lr_dir, '--output', str(a_file)])):
    result = _cli(module, *args)
    assert result.returncode == 1, result.stderr[-2000:]
    assert _last_line(result.stderr).startswith('error: ') and 'is a file' in _last_line(result.stderr)
    assert 'Traceback' not in result.stderr
  assert a_file.read_text() == 'mine'
