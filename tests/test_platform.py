"""Process settings: huge-page malloc for the entry points (mrr_jax/platform.py)."""
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
       '--mode', 'infer', '--config.batch_size=4', '--iters=1', '--warmup=0'],
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
