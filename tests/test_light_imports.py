"""Commands that only run an export, and the benchmark, need no data stack: no TensorFlow, TFDS or grain.

The blocked packages are shadowed by modules that raise ImportError, first on
PYTHONPATH, so any import of them anywhere in the command fails it.
"""
import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from mrr_jax.models import init as model_init
from mrr_jax.weights import export_format
from tests import face_fakes

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOCKED = ('tensorflow', 'tensorflow_datasets', 'grain')


@pytest.fixture(scope='module')
def blocked_env(tmp_path_factory):
  root = tmp_path_factory.mktemp('blocked')
  for name in BLOCKED:
    (root / name).mkdir()
    (root / name / '__init__.py').write_text(
        f'raise ImportError("{name} is blocked in this test: the command must not need it")\n')
  env = dict(os.environ)
  env['PYTHONPATH'] = os.pathsep.join([str(root), REPO] + [p for p in [env.get('PYTHONPATH')] if p])
  return env


def _run(env, *args, timeout=300):
  return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=timeout)


def test_help_imports_no_data_stack(blocked_env):
  code = ('import sys; import mrr_jax.infer, mrr_jax.evaluate, mrr_jax.evaluation.loop; '
          f'bad = [m for m in sys.modules if m.split(".")[0] in {BLOCKED!r}]; '
          'print(bad); sys.exit(1 if bad else 0)')
  result = _run(dict(os.environ), '-c', code)  # the real packages importable: none imported
  assert result.returncode == 0 and result.stdout.strip() == '[]', result.stdout + result.stderr
  for module in ('mrr_jax.infer', 'mrr_jax.evaluate'):
    result = _run(blocked_env, '-m', module, '--help')
    # absl exits 1 after printing the help; an import of a blocked package would be a traceback.
    assert result.returncode in (0, 1) and 'Traceback' not in result.stderr, result.stderr[-2000:]
    assert '--model' in result.stdout


@pytest.fixture(scope='module')
def export_and_pairs(tmp_path_factory):
  root = tmp_path_factory.mktemp('light')
  model = export_format.build_generator({'base_channels': 4, 'max_channels': 8, 'num_res': 1})
  path = export_format.save_generator(str(root / 'export'), model,
                                      model_init.init_generator(model, 0))
  for i in range(3):
    hr = face_fakes.smooth_photo(40 + i, 128, 128)
    (root / 'HR').mkdir(exist_ok=True), (root / 'LR').mkdir(exist_ok=True)
    Image.fromarray(hr).save(root / 'HR' / f'{i}.png')
    Image.fromarray(np.asarray(Image.fromarray(hr).resize((16, 16), Image.BICUBIC))).save(
        root / 'LR' / f'{i}.png')
  return root, path


def test_infer_and_evaluate_run_without_the_data_stack(blocked_env, export_and_pairs):
  root, model = export_and_pairs
  result = _run(blocked_env, '-m', 'mrr_jax.infer', '--model', model, '--input',
                str(root / 'LR'), '--output', str(root / 'sr'))
  assert result.returncode == 0, result.stderr[-3000:]
  assert sorted(os.listdir(root / 'sr')) == ['0.png', '1.png', '2.png']
  result = _run(blocked_env, '-m', 'mrr_jax.evaluate', '--model', model, '--hr_dir',
                str(root / 'HR'), '--lr_dir', str(root / 'LR'), '--json', str(root / 'r.json'))
  assert result.returncode == 0, result.stderr[-3000:]
  assert '| 3 ' in result.stdout and (root / 'r.json').exists()


def test_bench_times_both_phases_without_the_data_stack(blocked_env, tmp_path):
  jsonl, table = tmp_path / 'bench.jsonl', tmp_path / 'bench.md'
  result = _run(blocked_env, '-m', 'mrr_jax.bench', '--config', 'configs/mrrnet.py:tiny',
                '--phases=l1,gan', '--batch_sizes=1', '--steps=1', '--windows=2', '--warmup=1',
                f'--json={jsonl}', f'--markdown={table}', timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
  assert [(r['mode'], r['phase']) for r in rows] == [('train', 'l1'), ('train', 'gan')]
  for row in rows:
    # The tests' four CPU devices (conftest), one image each, placed per device.
    assert (row['devices'], row['per_device_batch'], row['global_batch']) == (4, 1, 4)
    assert len(row['window_step_ms']) == 2
    assert row['step_ms'] == pytest.approx(float(np.median(row['window_step_ms'])))
    assert row['images_per_s'] == pytest.approx(4 / (row['step_ms'] / 1e3))
    # The CPU has no entry in the peak table and a tiny model no model FLOPs: no MFU, said so.
    assert row['mfu_executed'] is None and row['model_tflop_per_step'] is None
    assert 'no peak known' in row['peak']
    # XLA's bytes accessed per device, over the step time and beside the FLOPs.
    flop_per_device = row['executed_tflop_per_step'] * 1e12 / row['devices']
    bytes_per_device = row['accessed_gb_per_device_step'] * 1e9
    assert row['flop_per_byte'] == pytest.approx(flop_per_device / bytes_per_device)
    assert row['accessed_gb_per_s_per_device'] == pytest.approx(
        row['accessed_gb_per_device_step'] / (row['step_ms'] / 1e3))
  l1, gan = rows
  # The GAN step runs D twice and VGG19 on top of the L1 step's G forward and backward.
  assert gan['executed_tflop_per_step'] > 1.5 * l1['executed_tflop_per_step'] > 0
  assert table.read_text().count('| train |') == 2
