"""--config mistakes get one-line errors from the entry points (mrr_jax/cli.py)."""
import os
import subprocess
import sys

import pytest

from configs import mrrnet
from mrr_jax import cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(module, *args):
  return subprocess.run([sys.executable, '-m', module, *args], cwd=REPO, capture_output=True,
                        text=True, timeout=120, check=False)


def test_dotted_keys_lists_every_leaf():
  keys = cli.dotted_keys(mrrnet.get_config('tiny'))
  assert keys == sorted(keys)
  assert {'batch_size', 'model.att_kernels', 'data.train_dir'} <= set(keys)
  assert 'model' not in keys and 'data' not in keys


def test_unknown_key_message_names_only_the_bad_overrides():
  message = cli.unknown_key_message(
      ['--config.batch_size=8', '--config.model.bogus=1', '--config.bacth_size=4'],
      mrrnet.get_config('tiny'))
  head, valid = message.split(' Valid keys: ')
  assert head == ('unknown config key in --config.model.bogus=1, --config.bacth_size=4. '
                  'Did you mean batch_size?')
  assert valid.split(', ') == cli.dotted_keys(mrrnet.get_config('tiny'))


@pytest.mark.parametrize('module, extra', [
    ('mrr_jax.main', ['--workdir', 'unused']),
    ('mrr_jax.bench', ['--mode', 'train']),
])
def test_unknown_key_is_one_line_listing_the_keys(module, extra):
  proc = _run(module, '--config', 'configs/mrrnet.py:tiny', *extra, '--config.model.bogus=3')
  assert proc.returncode == 1
  assert proc.stderr.startswith('error: unknown config key in --config.model.bogus=3. Valid keys: ')
  assert 'model.att_kernels' in proc.stderr and 'Traceback' not in proc.stderr


def test_missing_config_file_is_named():
  proc = _run('mrr_jax.main', '--config', 'configs/no_such_config.py', '--workdir', 'unused')
  assert proc.returncode == 1
  assert proc.stderr.startswith('error: --config configs/no_such_config.py: ')
  assert 'No such file or directory' in proc.stderr and 'Traceback' not in proc.stderr


def test_wrong_value_type_keeps_absls_message():
  proc = _run('mrr_jax.main', '--config', 'configs/mrrnet.py:tiny', '--workdir', 'unused',
              '--config.batch_size=eight')
  assert proc.returncode == 1
  assert 'flag --config.batch_size=eight: invalid literal for int()' in proc.stderr
  assert 'Traceback' not in proc.stderr
