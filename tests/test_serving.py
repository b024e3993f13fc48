"""The serving export: one jax.export program that runs without mrr_jax and gives infer's pixels."""
import json
import os
import subprocess
import sys

import jax
import numpy as np
from PIL import Image
import pytest

from mrr_jax.models import init as model_init
from mrr_jax.weights import export_format, serving
from tests import face_fakes

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_in_graph_bicubic_is_pil_bit_for_bit():
  rng = np.random.default_rng(5)
  lr = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
  lr[0] = 0
  lr[1, :, :8] = 255  # hard edges: overshoot clipped as PIL clips
  got = np.asarray(jax.jit(serving.bicubic_upsample)(lr))
  want = np.stack([np.asarray(Image.fromarray(x).resize((128, 128), Image.BICUBIC)) for x in lr])
  np.testing.assert_array_equal(got, want)


def test_the_export_format_knows_the_serving_files():
  assert export_format.SERVING_FILES == serving.SERVING_FILES


@pytest.fixture(scope='module')
def served(tmp_path_factory):
  root = tmp_path_factory.mktemp('serving')
  generator = export_format.build_generator({'base_channels': 4, 'max_channels': 8, 'num_res': 1})
  path = export_format.save_generator(str(root / 'export'), generator,
                                      model_init.init_generator(generator, 3), serving=True)
  (root / 'lr').mkdir()
  for i in range(5):
    lr = np.asarray(Image.fromarray(face_fakes.smooth_photo(60 + i, 128, 128)).resize(
        (16, 16), Image.BICUBIC))
    Image.fromarray(lr).save(root / 'lr' / f'{i}.png')
  return root, path


def test_serving_artifact_runs_without_mrr_jax_and_equals_infer(served):
  root, path = served
  # `infer` as users run it, in a process of its own like the loader's below.
  result = subprocess.run([sys.executable, '-m', 'mrr_jax.infer', '--model', path, '--input',
                           str(root / 'lr'), '--output', str(root / 'sr')], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  # A process that cannot import mrr_jax: the repository is off its path and a
  # stand-in package that raises comes first.
  (root / 'block' / 'mrr_jax').mkdir(parents=True)
  (root / 'block' / 'mrr_jax' / '__init__.py').write_text('raise ImportError("blocked")\n')
  script = (
      'import sys, json, numpy as np\n'
      'from PIL import Image\n'
      f'sys.path.insert(0, {path!r})\n'
      'import load_serving\n'
      'run = load_serving.load()\n'
      f'lr = np.stack([np.asarray(Image.open({str(root / "lr")!r} + f"/{{i}}.png")) '
      'for i in range(5)])\n'
      # infer's batch (16, padded), and another size: one program for both.
      'a = run(np.concatenate([lr, np.zeros((11, 16, 16, 3), np.uint8)]))[:5]; b = run(lr[:2])\n'
      f'np.save({str(root / "served.npy")!r}, np.concatenate([a, b]))\n'
      'assert not [m for m in sys.modules if m.startswith("mrr_jax")]\n'
      'print(a.dtype, a.shape)\n')
  env = dict(os.environ, PYTHONPATH=str(root / 'block'))
  result = subprocess.run([sys.executable, '-c', script], cwd=str(root), env=env,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.strip() == 'uint8 (5, 128, 128, 3)'
  out = np.load(root / 'served.npy')
  want = np.stack([np.asarray(Image.open(root / 'sr' / f'{i}.png')) for i in range(5)])
  np.testing.assert_array_equal(out[:5], want)
  # At another batch size XLA:CPU may split the convolutions over its threads
  # differently: float32 rounding then moves a rare pixel by one level.
  diff = np.abs(out[5:].astype(int) - want[:2])
  assert diff.max() <= 1 and (diff > 0).mean() < 1e-4


def test_serving_records_its_platforms(served):
  _, path = served
  info = json.loads(open(os.path.join(path, serving.SERVING_INFO)).read())
  assert info['platforms'] == ['cpu', 'cuda', 'tpu']
  with open(os.path.join(path, serving.SERVING_FILE), 'rb') as f:
    exported = jax.export.deserialize(bytearray(f.read()))
  assert exported.platforms == ('cpu', 'cuda', 'tpu')
  assert str(exported.in_avals[0].shape[0]) == 'b'  # the batch is symbolic
  assert exported.in_avals[0].dtype == np.uint8 and exported.out_avals[0].dtype == np.uint8
  # An export with serving files can still be replaced by --overwrite (they are ours).
  export_format.check_replaceable(path)
