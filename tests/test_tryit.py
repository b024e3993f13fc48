"""README "Try it": its commands, run as written on a generated LFW-like folder.

Only the paths are substituted and the run is shortened to 3 steps; the
architecture, the export and the evaluation are the real ones. The measured
15-minute run on ../shared/data/lfw_dev is in README and BENCHMARKS.md.
"""
import json
import os
import re
import shlex
import subprocess
import sys

import numpy as np
from PIL import Image

from configs import tryit
from tests import face_fakes

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _readme_tryit_commands():
  readme = open(os.path.join(REPO, 'README.md')).read()
  section = readme[readme.index('## Try it'):readme.index('## Data')]
  block = section[section.index('```bash') + len('```bash'):]
  block = block[:block.index('```')].replace('\\\n', ' ')
  return section, [line.split() for line in block.strip().splitlines()]


def _fake_lfw_and_test_pairs(root):
  """LFW layout (<person>/<name>.jpg, 250x250) and a paired HR/LR test folder."""
  for i in range(8):
    face_fakes.write(os.path.join(root, 'lfw', f'person_{i % 3}', f'person_{i % 3}_{i:04d}.jpg'),
                     face_fakes.encode(face_fakes.smooth_photo(i, 250, 250), 'JPEG'))
  for i in range(4):
    hr = Image.fromarray(face_fakes.smooth_photo(100 + i, 128, 128))
    os.makedirs(os.path.join(root, 'test', 'HR'), exist_ok=True)
    os.makedirs(os.path.join(root, 'test', 'LR'), exist_ok=True)
    hr.save(os.path.join(root, 'test', 'HR', f'{i:06d}.png'))
    hr.resize((16, 16), Image.BICUBIC).save(os.path.join(root, 'test', 'LR', f'{i:06d}.png'))


def test_readme_states_the_tryit_config():
  section, _ = _readme_tryit_commands()
  config = tryit.get_config()
  model = config.model
  assert f'widths {model.base_channels}..{model.max_channels}, {model.num_res} middle blocks' in section
  assert f'{config.num_train_steps} L1 steps at batch {config.batch_size}' in section


def test_readme_tryit_commands_run_as_written(tmp_path):
  root = str(tmp_path)
  _fake_lfw_and_test_pairs(root)
  substitutions = {'/path/to/lfw': f'{root}/lfw', 'runs/tryit': f'{root}/runs/tryit',
                   'exports/tryit': f'{root}/exports/tryit', 'CelebA_test_DIC': f'{root}/test'}
  _, commands = _readme_tryit_commands()
  assert [c[:3] for c in commands] == [['python', '-m', 'mrr_jax.main'],
                                       ['python', '-m', 'mrr_jax.export'],
                                       ['python', '-m', 'mrr_jax.evaluate'],
                                       ['python', '-m', 'mrr_jax.evaluate']]
  shorter = ['--config.num_train_steps=3', '--config.batch_size=4', '--config.log_every_steps=1',
             '--config.checkpoint_every_steps=3', '--config.image_every_steps=3',
             f'--config.data.data_dir={root}/tfds']
  for i, command in enumerate(commands):
    args = [re.sub('|'.join(map(re.escape, substitutions)), lambda m: substitutions[m.group()], a)
            for a in command[1:]]
    args = [sys.executable] + args + (shorter if i == 0 else [])
    proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f'{shlex.join(args)}\n{proc.stderr[-3000:]}'

  # The export carries the try-it architecture, and the evaluation is complete.
  spec = json.load(open(f'{root}/exports/tryit/model.json'))
  config_model = tryit.get_config().model
  text = json.dumps(spec)
  for key in ('base_channels', 'max_channels', 'num_res'):
    assert re.search(rf'"{key}": {config_model[key]}\b', text), (key, spec)
  result = json.load(open(f'{root}/runs/tryit/eval.json'))
  assert (result['num_images'], result['complete']) == (4, True)
  np.testing.assert_allclose(result['psnr'], np.mean([r['psnr'] for r in result['per_image']]),
                             rtol=1e-6)
  for name in ('comparison.png', 'attention.png'):
    assert Image.open(f'{root}/runs/tryit/eval/{name}').size[0] > 128 * 2
