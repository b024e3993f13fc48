"""End-to-end training on a folder of generated faces, on 4 CPU devices.

Phase 1 then phase 2 from its checkpoint; exact resume after SIGTERM;
shell overrides and their errors; two processes through jax.distributed.
"""
import glob
import os
import signal
import socket
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from configs import mrrgan, mrrnet
from mrr_jax.train import parallel
from mrr_jax.train import loop
from mrr_jax.train import state as state_lib
from tests import face_fakes

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.skipif(jax.local_device_count() != 4,
                                reason='needs the 4 CPU devices tests/conftest.py sets up')


@pytest.fixture(scope='module')
def data(tmp_path_factory):
  """16 smooth 'photos' in a folder, and a TFDS data dir of our own."""
  root = tmp_path_factory.mktemp('e2e')
  for i in range(16):
    face_fakes.write(str(root / 'faces' / f'{i:02d}.png'),
                     face_fakes.encode(face_fakes.smooth_photo(i, 96, 112), 'PNG'))
  return {'train_dir': str(root / 'faces'), 'data_dir': str(root / 'tfds')}


def _config(module, data, **overrides):
  config = module.get_config('tiny')
  config.data.train_dir = data['train_dir']
  config.data.data_dir = data['data_dir']
  config.log_every_steps = 1
  config.image_every_steps = 0
  config.checkpoint_every_steps = 100
  for key, value in overrides.items():
    target = config
    *parents, leaf = key.split('.')
    for p in parents:
      target = target[p]
    target[leaf] = value
  return config


def _scalars(workdir):
  """{tag: {step: value}} from every TensorBoard event file in workdir."""
  from tensorboard.backend.event_processing import event_file_loader  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  out = {}
  for path in glob.glob(os.path.join(workdir, 'events.out.tfevents.*')):
    for event in event_file_loader.EventFileLoader(path).Load():
      for v in event.summary.value:
        if v.metadata.plugin_data.plugin_name in ('scalars', ''):
          out.setdefault(v.tag, {})[event.step] = float(tf.make_ndarray(v.tensor))
        else:
          out.setdefault(v.tag, {})[event.step] = v.metadata.plugin_data.plugin_name
  return out


def _checkpoint_params(workdir, step=None):
  mngr = ocp.CheckpointManager(os.path.join(workdir, 'checkpoints'), item_names=('state',))
  step = mngr.latest_step() if step is None else step
  restored = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
  return step, restored['state']


def _max_diff(a, b):
  return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
             for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


@pytest.fixture(scope='module')
def phase1(data, tmp_path_factory):
  """A tiny MRRNet trained 8 steps: (workdir, final replicated state)."""
  p1 = str(tmp_path_factory.mktemp('phase1') / 'mrrnet')
  config = _config(mrrnet, data, num_train_steps=8, g_lr=1e-3, image_every_steps=4,
                   checkpoint_every_steps=4)
  return p1, loop.train_and_evaluate(config, p1)


def test_phase1_then_phase2(data, phase1, tmp_path):
  p1, state = phase1
  assert int(parallel.unreplicate(state.step)) == 8
  logged = _scalars(p1)
  l1 = [logged['train_l1'][s] for s in range(1, 9)]
  assert all(np.isfinite(l1))
  assert np.mean(l1[-3:]) < np.mean(l1[:3]), l1  # L1 falls
  assert logged['train_g_lr'][1] == pytest.approx(1e-3)
  assert logged['samples'][4] == 'images' and logged['attention'][8] == 'images'
  assert sorted(os.listdir(os.path.join(p1, 'checkpoints'))) == ['4', '8']

  p2 = str(tmp_path / 'mrrgan')
  gan = _config(mrrgan, data, num_train_steps=2, init_from=p1)
  gan_state = loop.train_and_evaluate(gan, p2)
  logged = _scalars(p2)
  for tag in ('train_l1', 'train_g_gan', 'train_g_pcp', 'train_d_loss', 'train_d_real'):
    assert set(logged[tag]) == {1, 2} and all(np.isfinite(list(logged[tag].values()))), tag
  # Phase 2's first L1 is phase 1's last model on the same kind of data.
  assert logged['train_l1'][1] < l1[0]
  _, p1_final = _checkpoint_params(p1)
  g2 = parallel.unreplicate(gan_state.g_params)
  assert 0 < _max_diff(g2, p1_final['g_params']) < 0.05


def test_export_then_evaluate_and_infer_give_the_generator_pixels(data, phase1, tmp_path):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from mrr_jax import evaluate, export, infer  # pylint: disable=g-import-not-at-top
  from mrr_jax.weights import export_format  # pylint: disable=g-import-not-at-top
  from mrr_jax.data import degradations  # pylint: disable=g-import-not-at-top
  from tests.test_evaluate import _assert_pixels_from_generator  # pylint: disable=g-import-not-at-top
  p1, _ = phase1
  out = str(tmp_path / 'export')
  export.export_checkpoint(p1, out)
  model, params, meta = export_format.load_generator(out)
  assert meta['step'] == 8 and meta['phase'] == 'l1'
  _, ckpt = _checkpoint_params(p1)
  assert _max_diff(params, ckpt['g_params']) == 0
  with pytest.raises(export.ExportCheckpointError, match='no checkpoint for step 5'):
    export.export_checkpoint(p1, str(tmp_path / 'x'), step=5)
  with pytest.raises(export.ExportCheckpointError, match='no EMA generator'):
    export.export_checkpoint(p1, str(tmp_path / 'y'), ema=True)

  hr_dir, lr_dir = tmp_path / 'HR', tmp_path / 'LR'
  hr_dir.mkdir(), lr_dir.mkdir()
  lrs = {}
  for i in range(3):
    hr = face_fakes.smooth_photo(100 + i, 128, 128)
    lrs[f'{i}'] = degradations.make_lr(hr)
    Image.fromarray(hr).save(hr_dir / f'{i}.png')
    Image.fromarray(lrs[f'{i}']).save(lr_dir / f'{i}.png')
  result = evaluate.run(out, str(hr_dir), str(lr_dir), save_dir=str(tmp_path / 'eval'))
  assert result['num_images'] == 3 and result['complete']
  infer.run(out, str(lr_dir), str(tmp_path / 'sr'))
  for name, lr in lrs.items():
    for folder in (tmp_path / 'eval' / 'sr', tmp_path / 'sr'):
      saved = np.asarray(Image.open(folder / f'{name}.png'))
      _assert_pixels_from_generator(saved, model, params, lr)


def test_phase2_refuses_missing_or_incompatible_init(data, tmp_path):
  with pytest.raises(state_lib.TrainingError, match='init_from'):
    loop.train_and_evaluate(_config(mrrgan, data, num_train_steps=1), str(tmp_path / 'a'))
  with pytest.raises(state_lib.TrainingError, match='does not exist'):
    loop.train_and_evaluate(_config(mrrgan, data, init_from=str(tmp_path / 'nope')),
                             str(tmp_path / 'b'))


def test_gan_refuses_without_vgg_weights(data, tmp_path):
  config = _config(mrrgan, data, allow_random_vgg=False)
  with pytest.raises(state_lib.TrainingError, match='vgg19-dcbb9e9d.pth'):
    loop.train_and_evaluate(config, str(tmp_path / 'w'))


def test_sigterm_then_resume_equals_uninterrupted(data, tmp_path):
  config = _config(mrrnet, data, num_train_steps=5)
  straight = str(tmp_path / 'straight')
  loop.train_and_evaluate(config, straight)

  resumed = str(tmp_path / 'resumed')

  def preempt_at_2(step):
    if step == 2:
      os.kill(os.getpid(), signal.SIGTERM)

  loop.train_and_evaluate(config, resumed, extra_hooks=[preempt_at_2])
  assert os.listdir(os.path.join(resumed, 'checkpoints')) == ['2']
  loop.train_and_evaluate(config, resumed)

  step_a, a = _checkpoint_params(straight)
  step_b, b = _checkpoint_params(resumed)
  assert step_a == step_b == 5
  assert _max_diff(a['g_params'], b['g_params']) <= 1e-6
  assert _max_diff(a['g_opt_state'], b['g_opt_state']) <= 1e-6
  la, lb = _scalars(straight)['train_l1'], _scalars(resumed)['train_l1']
  assert sorted(la) == sorted(lb) == [1, 2, 3, 4, 5]
  np.testing.assert_allclose([lb[s] for s in la], [la[s] for s in la], rtol=1e-6)


def _main(*args, env=None, timeout=600):
  return subprocess.run([sys.executable, '-m', 'mrr_jax.main', *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=timeout)


def _tiny_args(data, workdir, steps=1):
  return ['--config', 'configs/mrrnet.py:tiny', '--workdir', workdir,
          f'--config.data.train_dir={data["train_dir"]}',
          f'--config.data.data_dir={data["data_dir"]}', f'--config.num_train_steps={steps}']


def test_shell_overrides_and_their_errors(data, tmp_path):
  ok = _main(*_tiny_args(data, str(tmp_path / 'ok')), '--config.log_every_steps=1',
             '--config.model.att_kernels=(1,3)')
  assert ok.returncode == 0, ok.stderr[-3000:]
  _, state = _checkpoint_params(str(tmp_path / 'ok'))
  att = state['g_params']['encoder_1']['att_func']
  assert sorted(k for k in att if k.startswith('feature')) == ['feature_extract_1',
                                                                 'feature_extract_3']

  bad_key = _main(*_tiny_args(data, str(tmp_path / 'k')), '--config.bacth_size=8')
  assert bad_key.returncode != 0 and 'bacth_size' in bad_key.stderr
  assert 'batch_size' in bad_key.stderr  # the valid keys are listed

  bad_type = _main(*_tiny_args(data, str(tmp_path / 't')), '--config.batch_size=eight')
  assert bad_type.returncode != 0 and 'batch_size' in bad_type.stderr

  indivisible = _main(*_tiny_args(data, str(tmp_path / 'i')), '--config.batch_size=6')
  assert indivisible.returncode != 0
  assert 'batch_size=6 is not divisible by the 4 devices' in indivisible.stderr


def _free_port():
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


@pytest.fixture(scope='module')
def single_f64(data, tmp_path_factory):
  """The uninterrupted reference: 1 process x 4 devices, float64, 4 steps."""
  workdir = str(tmp_path_factory.mktemp('single') / 'run')
  with jax.enable_x64(True):
    loop.train_and_evaluate(_config(mrrnet, data, num_train_steps=4, compute_dtype='float64'),
                            workdir)
  return workdir


def _two_processes(data, workdir, steps):
  """Starts 2 processes x 2 CPU devices (jax.distributed, gloo) on a tiny float64 run."""
  env = dict(os.environ, JAX_ENABLE_X64='1')
  env['XLA_FLAGS'] = os.environ['XLA_FLAGS'].replace('device_count=4', 'device_count=2')
  port = _free_port()
  args = _tiny_args(data, workdir, steps=steps) + ['--config.log_every_steps=1',
                                                   '--config.compute_dtype=float64',
                                                   f'--coordinator_address=localhost:{port}',
                                                   '--num_processes=2']
  return [subprocess.Popen([sys.executable, '-m', 'mrr_jax.main', *args, f'--process_id={i}'],
                           cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True) for i in range(2)]


def _finish(procs):
  """Waits for the processes; all must exit 0."""
  outputs = [p.communicate(timeout=900)[0] for p in procs]
  assert [p.returncode for p in procs] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]


def _assert_same_final_state(single, multi):
  """Both workdirs' last checkpoints: step 4, equal G params and G optimiser state (float64)."""
  step_a, a = _checkpoint_params(single)
  step_b, b = _checkpoint_params(multi)
  assert step_a == step_b == 4
  assert _max_diff(a['g_params'], b['g_params']) <= 1e-6
  assert _max_diff(a['g_opt_state'], b['g_opt_state']) <= 1e-6


def test_two_processes_equal_one_through_a_sigterm_and_resume(data, single_f64, tmp_path):
  """2 processes x 2 CPU devices (jax.distributed, gloo) == 1 process x 4 devices.

  SIGTERM to process 1 after the first step: jax's preemption service stops
  both at one step, both save it and exit 0; the resumed run's step-4 state
  equals the uninterrupted single-process run's. In float64 (jax x64): in
  float32 the two topologies sum gradients in another order, and Adam turns
  that rounding noise in near-zero gradients into ~2e-5 parameter differences
  within 3 steps. (One test for both properties: each two-process run costs
  about a minute and a half on a 2-core CI machine.) The processes start on a
  TFDS data_dir not yet built, as a cluster's first run does: process 0 builds
  it, the other waits (both building at once, one failed).
  """
  multi = str(tmp_path / 'multi')
  data = dict(data, data_dir=str(tmp_path / 'tfds_unbuilt'))
  procs = _two_processes(data, multi, 4)
  output = []
  for line in procs[0].stdout:  # process 0 logs every step; stop process 1 after the first
    output.append(line)
    if 'train_l1' in line:
      procs[1].send_signal(signal.SIGTERM)
      break
  rest = [procs[0].communicate(timeout=900)[0], procs[1].communicate(timeout=900)[0]]
  assert [p.returncode for p in procs] == [0, 0], ''.join(output)[-2000:] + rest[0][-2000:] + \
      rest[1][-2000:]
  saved = sorted(int(s) for s in os.listdir(os.path.join(multi, 'checkpoints')))
  assert len(saved) == 1 and 1 <= saved[0] < 4, saved
  assert 'preempted: checkpoint saved at step %d' % saved[0] in ''.join(output) + rest[0]
  _finish(_two_processes(data, multi, 4))  # the resumed run
  _assert_same_final_state(single_f64, multi)
  # Only process 0 writes TensorBoard events (one file per run).
  assert len(glob.glob(os.path.join(multi, 'events.out.tfevents.*'))) == 2


def test_preemption_check_is_local_on_many_processes(monkeypatch):
  """Per step, a multi-process run asks jax's preemption service, never a collective."""
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  asked = []
  monkeypatch.setattr(jax, 'process_count', lambda: 2)
  monkeypatch.setattr(multihost_utils, 'reached_preemption_sync_point',
                      lambda step: asked.append(step) or step == 7)
  def no_collective(*args, **kwargs):
    raise AssertionError('a collective ran for the preemption check')
  monkeypatch.setattr(multihost_utils, 'process_allgather', no_collective)
  monkeypatch.setattr(multihost_utils, 'sync_global_devices', no_collective)
  preemption = loop.Preemption()
  try:
    assert [preemption.reached(s) for s in range(1, 9)] == [False] * 6 + [True, False]
  finally:
    preemption.restore()
  assert asked == list(range(1, 9))
