"""Shared fixtures: golden vectors from the authors' code and the seeded weight recipe."""
import os
import shutil
import tempfile

# Four CPU devices for the pmap tests; set before jax is imported anywhere.
# LLVM at -O1 instead of XLA's -O2/-O3: the suite is mostly compiling small
# programs, and -O1 compiled the tiny train step in 16 s instead of 24 with the
# same step time; the golden, train-step, kernel and safety tests took 558 s
# instead of 603. (XLA keeps floating-point semantics at every level: no fast math.)
# The commands' own flags are tested as users get them (MRR_JAX_TESTS_AS_USERS below).
os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_force_host_platform_device_count=4'
                           ' --xla_backend_optimization_level=1').strip()
# On a CPU backend the commands apply mrr_jax.platform's XLA flag (Eigen
# convolutions; cli.run -> prepare_process). The session runs XLA's defaults
# instead: under the flag the float64 convolutions of the equivalence tests
# are far slower (test_models_golden.py and test_golden_iterations.py together
# had not finished after 12 minutes), and users never run float64. The float32 golden tests run again
# as users run, flag on, in a process of their own
# (tests/test_platform.py::test_float32_golden_tests_pass_with_the_users_cpu_flag):
# MRR_JAX_TESTS_AS_USERS=1 makes a session apply the flag.
if os.environ.get('MRR_JAX_TESTS_AS_USERS') == '1':
  os.environ.pop('MRR_JAX_KEEP_XLA_FLAGS', None)
  from mrr_jax import platform  # pylint: disable=g-import-not-at-top  (stdlib only)
  if platform.runs_on_cpu():
    platform.configure_xla_cpu_flags()
else:
  os.environ.setdefault('MRR_JAX_KEEP_XLA_FLAGS', '1')
# Everything the session and its subprocesses put in the temp folder goes
# under one folder, removed when the session passes: the compilation cache,
# pytest's tmp_path folders, and the empty scratch folder TFDS makes (and never
# removes) each time it constructs a builder for an unprepared dataset.
SESSION_TMP = tempfile.mkdtemp(prefix='mrr_jax_tests_')
os.environ['TMPDIR'] = tempfile.tempdir = SESSION_TMP
# One compilation cache for the session, its pytest-xdist workers and the
# subprocesses they start: the trainer tests in several modules compile the
# same step programs. xdist's controller imports this file before it starts
# the workers, which inherit its environment and so its cache folder (and make
# their own SESSION_TMP inside the controller's).
if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
  os.environ['JAX_COMPILATION_CACHE_DIR'] = os.path.join(SESSION_TMP, 'jit_cache')
  os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '1'

import gc

import jax
import numpy as np
import pytest

from tests import golden_recipe

DATA_DIR = os.path.join(os.path.dirname(__file__), 'data')
SEED = 20251125
SHARED_DATA = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', 'shared', 'data'))


@pytest.fixture(autouse=True, scope='module')
def _fresh_jax_caches():
  """Drops compiled programs after each test module.

  A session compiles hundreds of programs (full-size float64 steps among
  them); kept until the end, XLA crashed compiling one in test_train_steps
  after about 25 minutes of the whole suite (SIGSEGV or abort in a compile
  thread; the module alone passes). Modules share nothing compiled, and the
  on-disk cache keeps recompiles cheap.
  """
  yield
  jax.clear_caches()
  gc.collect()


# The slowest modules (minutes each on a 2-core CPU), longest first. README's
# command runs two pytest-xdist workers that take whole modules
# (--dist loadfile) in collection order (--no-loadscope-reorder: xdist would
# otherwise order modules by test count); starting with these keeps one
# worker from getting a long module last while the other sits idle.
SLOWEST_MODULES = ('test_train_e2e.py', 'test_train_steps.py', 'test_train_safety.py',
                   'test_golden_iterations.py', 'test_light_imports.py', 'test_tryit.py',
                   'test_kernels.py')


def pytest_collection_modifyitems(session, config, items):
  """Runs SLOWEST_MODULES first, in that order; every other module keeps its place."""
  del session, config
  rank = {name: i for i, name in enumerate(SLOWEST_MODULES)}
  items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable


def pytest_sessionfinish(session, exitstatus):
  """Removes SESSION_TMP after a passing session; a failing one keeps it to inspect."""
  del session
  if exitstatus == 0:
    shutil.rmtree(SESSION_TMP, ignore_errors=True)
  else:
    print(f'\nmrr_jax tests: temporary files kept in {SESSION_TMP}')


def nhwc(x):
  return np.transpose(x, (0, 2, 3, 1))


def golden(name):
  return dict(np.load(os.path.join(DATA_DIR, f'golden_{name}.npz')))


def recipe_state(which, seed, gain):
  keys = golden_recipe.read_keys(os.path.join(DATA_DIR, f'{which}_keys.txt'))
  return golden_recipe.make_state(keys, seed, conv_gain=gain)


@pytest.fixture(scope='session')
def g_state():
  return recipe_state('G_state_dict', SEED, golden_recipe.G_CONV_GAIN)


@pytest.fixture(scope='session')
def d_state():
  return recipe_state('D_state_dict', SEED + 6, golden_recipe.D_CONV_GAIN)


@pytest.fixture(scope='session')
def vgg_state():
  return recipe_state('VGG19_features', SEED + 5, golden_recipe.VGG_CONV_GAIN)


def shared_data_dir(name):
  """Path to ../shared/data/<name>, or skip the test with a reason."""
  path = os.path.join(SHARED_DATA, name)
  if not os.path.isdir(path):
    pytest.skip(f'{path} is absent (optional development data from ../shared)')
  return path
