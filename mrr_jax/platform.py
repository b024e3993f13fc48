"""Process settings that make this model fast on CPU hosts, and only there.

An XLA flag and glibc's malloc on huge pages, applied by `prepare_process`,
which every entry point calls first (through mrr_jax.cli.run) and only when
the process will compute on the CPU (`runs_on_cpu`). Importing mrr_jax
changes nothing.

jaxlib 0.10 sends CPU convolutions through YNNPACK by default. For this
network's many small-width convolutions (and their gradients) that path kept
only ~1.3 of 2 cores busy and ran the L1 train step at ~0.4x the authors'
PyTorch code; an empty `--xla_cpu_experimental_ynn_fusion_type=` falls back to
XLA's Eigen convolutions, which use every core (BENCHMARKS.md). The flag only
touches the CPU backend, so it is harmless on GPU/TPU hosts, and the numbers
are the same math (fp32 convolutions either way; golden tests pass on both).
"""
import importlib.util
import os
import sys
from typing import Mapping, Optional, Tuple

YNN_FLAG = '--xla_cpu_experimental_ynn_fusion_type'


def configure_xla_cpu_flags() -> None:
  """Appends `YNN_FLAG=` (Eigen convolutions) to XLA_FLAGS unless the user set it.

  XLA reads XLA_FLAGS once, when the first backend starts, so this must run
  before any computation (prepare_process does). Setting
  MRR_JAX_KEEP_XLA_FLAGS=1 leaves XLA_FLAGS untouched (to time the default).
  """
  if os.environ.get('MRR_JAX_KEEP_XLA_FLAGS') == '1':
    return
  flags = os.environ.get('XLA_FLAGS', '')
  if YNN_FLAG in flags:
    return
  os.environ['XLA_FLAGS'] = f'{flags} {YNN_FLAG}='.strip()


HUGEPAGE_TUNABLE = 'glibc.malloc.hugetlb=1'
_THP_MODE_FILE = '/sys/kernel/mm/transparent_hugepage/enabled'


def _thp_mode() -> str:
  """The bracketed word of THP's 'enabled' file ('always [madvise] never' -> 'madvise')."""
  try:
    with open(_THP_MODE_FILE) as f:
      text = f.read()
  except OSError:
    return ''
  return text[text.find('[') + 1:text.find(']')] if '[' in text else ''


def _glibc_version() -> Optional[Tuple[int, int]]:
  try:
    name, version = os.confstr('CS_GNU_LIBC_VERSION').split()
    major, minor = version.split('.')[:2]
  except (AttributeError, OSError, ValueError):
    return None
  return (int(major), int(minor)) if name == 'glibc' else None


def hugepage_malloc_env(environ: Mapping[str, str], thp_mode: str,
                        glibc: Optional[Tuple[int, int]]) -> Optional[dict]:
  """The environment to re-execute with so malloc uses huge pages, or None if nothing to gain.

  XLA:CPU allocates each execution's temporaries (about 0.5 GB for the L1
  step at batch 4) afresh from glibc, which maps them with mmap and unmaps
  them when freed, so every step page-faulted them in again: 139,000 faults
  and 0.35 CPU-s of kernel time per L1 step on a 2-core host. With the
  tunable glibc asks for transparent huge pages on those mappings (kernels in
  THP 'madvise' mode give them only when asked): under 1,000 faults, and the
  L1 step 8-12% faster (BENCHMARKS.md). glibc reads tunables only at process
  start, hence a re-execution. Kernels in THP 'always' mode already do this;
  glibc before 2.35 has no such tunable; MRR_JAX_KEEP_GLIBC_TUNABLES=1 or a
  GLIBC_TUNABLES that already names the setting leaves the process as it is.
  """
  tunables = environ.get('GLIBC_TUNABLES', '')
  if (environ.get('MRR_JAX_KEEP_GLIBC_TUNABLES') == '1' or 'glibc.malloc.hugetlb' in tunables
      or thp_mode != 'madvise' or glibc is None or glibc < (2, 35)):
    return None
  return dict(environ, GLIBC_TUNABLES=':'.join(t for t in (tunables, HUGEPAGE_TUNABLE) if t))


def reexec_with_hugepage_malloc() -> None:
  """Re-executes this command (same PID) with hugepage_malloc_env(), when it applies.

  For the entry points' `if __name__ == '__main__'` blocks only, before any
  work starts: a library import must not replace the process.
  """
  if not sys.platform.startswith('linux'):
    return
  env = hugepage_malloc_env(os.environ, _thp_mode(), _glibc_version())
  if env is None:
    return
  argv = [sys.executable] + sys.orig_argv[1:]
  sys.stdout.flush()
  sys.stderr.flush()
  try:
    os.execve(sys.executable, argv, env)
  except OSError:
    pass  # Run on without huge pages: slower, same results.


# jaxlib's accelerator plugins, found without importing them (importing one
# would start nothing, but costs seconds).
_ACCELERATOR_PLUGINS = ('jax_cuda12_plugin', 'jax_cuda13_plugin', 'jax_rocm60_plugin',
                        'jax_rocm7_plugin', 'libtpu', 'jax_plugins.xla_cuda12',
                        'jax_plugins.xla_cuda13', 'jax_plugins.xla_tpu')


def _installed(module: str) -> bool:
  try:
    return importlib.util.find_spec(module) is not None
  except (ImportError, ValueError):
    return False


def runs_on_cpu(environ: Mapping[str, str] = os.environ,
                plugins: Optional[Tuple[str, ...]] = None) -> bool:
  """Whether jax in this process will compute on the CPU, decided before jax starts.

  JAX_PLATFORMS, when set, decides (its first entry); otherwise jax uses an
  accelerator whenever a GPU or TPU plugin is installed, and the CPU only
  without one.
  """
  platforms = environ.get('JAX_PLATFORMS', '').strip()
  if platforms:
    return platforms.split(',')[0].strip().lower() == 'cpu'
  found = plugins if plugins is not None else tuple(p for p in _ACCELERATOR_PLUGINS
                                                     if _installed(p))
  return not found


def prepare_process() -> None:
  """The CPU settings for an entry point, before anything else runs; nothing off the CPU.

  May replace the process (reexec_with_hugepage_malloc): call it first.
  """
  if not runs_on_cpu():
    return
  reexec_with_hugepage_malloc()
  configure_xla_cpu_flags()
