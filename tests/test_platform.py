"""Process settings for CPU hosts only: the XLA flag and huge-page malloc (mrr_jax/platform.py)."""
import json
import os
import subprocess
import sys

import pytest

from mrr_jax import platform

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GLIBC = (2, 36)


def test_hugepage_env_appends_the_tunable_to_the_users_own():
  env = platform.hugepage_malloc_env({'GLIBC_TUNABLES': 'glibc.malloc.tcache_count=7', 'A': 'b'},
                                     'madvise', GLIBC)
  assert env == {'GLIBC_TUNABLES': 'glibc.malloc.tcache_count=7:glibc.malloc.hugetlb=1', 'A': 'b'}
  assert platform.hugepage_malloc_env({}, 'madvise', (2, 35)) == {
      'GLIBC_TUNABLES': 'glibc.malloc.hugetlb=1'}


@pytest.mark.parametrize('environ, thp, glibc', [
    ({'GLIBC_TUNABLES': 'glibc.malloc.hugetlb=0'}, 'madvise', GLIBC),  # the user chose
    ({'GLIBC_TUNABLES': 'glibc.malloc.hugetlb=1'}, 'madvise', GLIBC),  # already re-executed
    ({'MRR_JAX_KEEP_GLIBC_TUNABLES': '1'}, 'madvise', GLIBC),          # opted out
    ({}, 'always', GLIBC),                                             # the kernel already does it
    ({}, 'never', GLIBC),                                              # THP is off
    ({}, '', GLIBC),                                                   # no THP file
    ({}, 'madvise', (2, 34)),                                          # no such tunable yet
    ({}, 'madvise', None),                                             # not glibc
])
def test_hugepage_env_leaves_the_process_alone(environ, thp, glibc):
  assert platform.hugepage_malloc_env(environ, thp, glibc) is None


def test_thp_mode_reads_the_bracketed_word(tmp_path, monkeypatch):
  mode_file = tmp_path / 'enabled'
  mode_file.write_text('always [madvise] never\n')
  monkeypatch.setattr(platform, '_THP_MODE_FILE', str(mode_file))
  assert platform._thp_mode() == 'madvise'
  monkeypatch.setattr(platform, '_THP_MODE_FILE', str(tmp_path / 'missing'))
  assert platform._thp_mode() == ''


def test_entry_point_reexecutes_itself_with_the_tunable():
  """`python -m mrr_jax.bench` restarts with the tunable added to the user's, and still runs."""
  env = {k: v for k, v in os.environ.items() if k != 'MRR_JAX_KEEP_GLIBC_TUNABLES'}
  env['GLIBC_TUNABLES'] = 'glibc.malloc.tcache_count=7'
  proc = subprocess.run(
      [sys.executable, '-m', 'mrr_jax.bench', '--config', 'configs/mrrnet.py:tiny',
       '--mode', 'infer', '--batch_sizes=1', '--steps=1', '--windows=1', '--warmup=1'],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  result = json.loads([l for l in proc.stdout.splitlines() if l.startswith('{')][-1])
  expected = platform.hugepage_malloc_env(env, platform._thp_mode(), platform._glibc_version())
  want = (expected or env)['GLIBC_TUNABLES']
  assert result['glibc_tunables'] == want
  if expected is None:
    pytest.skip(f'this host gains nothing from the tunable (THP {platform._thp_mode()!r}, '
                f'glibc {platform._glibc_version()}): checked only that nothing changed')
  assert want == 'glibc.malloc.tcache_count=7:glibc.malloc.hugetlb=1'
  assert result['images_per_s'] > 0


@pytest.mark.parametrize('environ, plugins, cpu', [
    ({'JAX_PLATFORMS': 'cpu'}, ('jax_cuda12_plugin',), True),   # the user's choice decides
    ({'JAX_PLATFORMS': 'tpu'}, (), False),
    ({'JAX_PLATFORMS': 'cuda,cpu'}, (), False),
    ({}, ('libtpu',), False),                                     # jax will pick the TPU
    ({}, ('jax_cuda12_plugin',), False),
    ({}, (), True),                                               # nothing but the CPU
])
def test_runs_on_cpu_is_decided_before_jax_starts(environ, plugins, cpu):
  assert platform.runs_on_cpu(environ, plugins) is cpu


def test_off_the_cpu_nothing_is_changed(monkeypatch):
  monkeypatch.setattr(platform, 'runs_on_cpu', lambda: False)
  monkeypatch.setattr(platform, 'reexec_with_hugepage_malloc',
                      lambda: pytest.fail('re-executed on an accelerator host'))
  monkeypatch.setenv('XLA_FLAGS', '--xla_mine=1')
  platform.prepare_process()
  assert os.environ['XLA_FLAGS'] == '--xla_mine=1'


def test_on_the_cpu_the_flag_is_set(monkeypatch):
  monkeypatch.setattr(platform, 'runs_on_cpu', lambda: True)
  monkeypatch.setattr(platform, 'reexec_with_hugepage_malloc', lambda: None)
  monkeypatch.setenv('XLA_FLAGS', '--xla_mine=1')
  monkeypatch.delenv('MRR_JAX_KEEP_XLA_FLAGS', raising=False)
  platform.prepare_process()
  assert os.environ['XLA_FLAGS'] == f'--xla_mine=1 {platform.YNN_FLAG}='


def test_importing_mrr_jax_changes_no_process_setting():
  code = ('import os; os.environ.pop("XLA_FLAGS", None); '
          'import mrr_jax, mrr_jax.models, mrr_jax.train.setup, mrr_jax.evaluation.loop; '
          'print(repr(os.environ.get("XLA_FLAGS")))')
  proc = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True,
                        timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.strip() == 'None'


def test_float32_golden_tests_pass_with_the_users_cpu_flag():
  """tests/test_models_golden.py again, in a process configured as the commands configure theirs.

  All but the floor-quantisation test, whose generator forward the output
  test already runs under the flag (it adds a rounding rule, not a convolution).
  """
  env = {k: v for k, v in os.environ.items() if k != 'MRR_JAX_KEEP_XLA_FLAGS'}
  env['MRR_JAX_TESTS_AS_USERS'] = '1'
  env['XLA_FLAGS'] = ''
  code = ('import os, sys, pytest\n'
          'rc = pytest.main(["-q", "-p", "no:cacheprovider", "tests/test_models_golden.py",\n'
          '                  "-k", "not floor_quantisation"])\n'
          'print("XLA_FLAGS=" + os.environ["XLA_FLAGS"])\n'
          'sys.exit(rc)\n')
  result = subprocess.run([sys.executable, '-c', code], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=1200)
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
  assert f'{platform.YNN_FLAG}=' in result.stdout.split('XLA_FLAGS=')[-1]
  assert ' passed' in result.stdout and 'failed' not in result.stdout
