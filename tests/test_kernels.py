"""The CPU kernels and the plain forms give the same values and gradients (mrr_jax.models.kernels).

Checked on whole networks in float64, where both must agree to rounding: the
generator's and discriminator's outputs and every parameter gradient. Also:
the switch itself (config key, environment variable, 'auto' by backend), that
config.kernels selects the path of the train step setup builds, and that the
plain path's lowering has none of the CPU kernels' traces (gathers,
HIGHEST-precision dots).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import mrrnet
from mrr_jax.models import Discriminator, MRRNet, kernels
from mrr_jax.models import init as model_init
from mrr_jax.train import parallel, setup


def _max_rel(a, b):
  out = 0.0
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    x, y = np.asarray(x), np.asarray(y)
    out = max(out, float(np.abs(x - y).max() / max(np.abs(y).max(), 1e-30)))
  return out


def _as64(tree):
  return jax.tree_util.tree_map(lambda v: np.asarray(v, np.float64), tree)


def _under(mode, fn, *args):
  """fn(*args) traced and run with the kernels in `mode` (a fresh jit each time)."""
  with kernels.forced(mode):
    return jax.jit(lambda *a: fn(*a))(*args)


def test_generator_values_and_gradients_agree():
  model = MRRNet(base_channels=8, max_channels=16, num_res=1, dtype=jnp.float64)
  with jax.enable_x64(True):
    params = _as64(model_init.init_generator(model, 0))
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (2, 128, 128, 3))
    target = rng.uniform(-1, 1, (2, 128, 128, 3))
    loss = lambda p, v: jnp.mean(jnp.abs(model.apply({'params': p}, v) - target))
    value_and_grad = jax.value_and_grad(loss, argnums=(0, 1))
    (l_cpu, g_cpu) = _under('cpu', value_and_grad, params, x)
    (l_plain, g_plain) = _under('plain', value_and_grad, params, x)
  assert abs(float(l_cpu) - float(l_plain)) <= 1e-12 * abs(float(l_plain))
  assert _max_rel(g_cpu, g_plain) < 1e-9
  assert float(np.abs(g_plain[1]).max()) > 0  # gradients reach the input: not vacuous


def test_discriminator_values_and_gradients_agree():
  model = Discriminator(dtype=jnp.float64)
  with jax.enable_x64(True):
    params, spectral = _as64(model_init.init_discriminator(model, 1))
    x = np.random.default_rng(1).uniform(-1, 1, (2, 128, 128, 3))

    def loss(p, v):
      out, _ = model.apply({'params': p, 'spectral': spectral}, v, train=True,
                           mutable=['spectral'])
      return jnp.sum(out ** 2)

    grads = jax.value_and_grad(loss, argnums=(0, 1))
    (l_cpu, g_cpu), (l_plain, g_plain) = _under('cpu', grads, params, x), _under('plain', grads,
                                                                              params, x)
  assert abs(float(l_cpu) - float(l_plain)) <= 1e-12 * abs(float(l_plain))
  assert _max_rel(g_cpu, g_plain) < 1e-9


def _cpu_kernel_traces(text):
  """(HIGHEST dots, gathers) in lowered StableHLO: the CPU kernels' InstanceNorm and parity gradient."""
  return text.count('precision = [HIGHEST, HIGHEST]'), text.count('stablehlo.gather')


def test_config_kernels_reaches_the_train_step():
  """setup.create applies config.kernels to the step it builds (lowered only, not compiled).

  The values of the two paths agree by the tests above; here the key must
  select the path: the CPU kernels' InstanceNorm shows as HIGHEST dots and the
  parity gradient as gathers in the lowered L1 step, and 'plain' has neither.
  """
  config = mrrnet.get_config('tiny')
  devices = jax.local_devices()[:1]
  batch = parallel.shard({'input': np.zeros((4, 128, 128, 3), np.float32),
                          'hr': np.zeros((4, 128, 128, 3), np.float32)}, 1)
  texts = {}
  for mode in ('cpu', 'plain'):
    config.kernels = mode
    run = setup.create(config, steps_per_epoch=10, devices=devices)
    texts[mode] = run.step_fn.lower(parallel.replicate(run.state, devices), batch).as_text()
  kernels.set_mode(None)
  highest_dots, gathers = _cpu_kernel_traces(texts['cpu'])
  assert highest_dots > 0 and gathers > 0
  assert texts['plain'].count('HIGHEST') == _cpu_kernel_traces(texts['plain'])[1] == 0


def test_the_switch(monkeypatch):
  monkeypatch.delenv(kernels.ENV_VAR, raising=False)
  kernels.set_mode(None)
  assert kernels.mode() == 'auto' and kernels.enabled() == (jax.default_backend() == 'cpu')
  monkeypatch.setenv(kernels.ENV_VAR, 'plain')
  assert kernels.mode() == 'plain' and not kernels.enabled()
  kernels.set_mode('cpu')  # the config key wins over the environment
  assert kernels.enabled()
  with kernels.forced('plain'):
    assert not kernels.enabled()
  assert kernels.enabled()
  kernels.set_mode(None)
  monkeypatch.setenv(kernels.ENV_VAR, 'fast')
  with pytest.raises(ValueError, match="kernels mode must be one of .* got 'fast'"):
    kernels.mode()


def test_plain_lowering_has_no_cpu_kernel_traces():
  """The parity gradient shows as gathers and the InstanceNorm batch sum as HIGHEST dots."""
  model = MRRNet(base_channels=8, max_channels=16, num_res=1)
  params = model_init.init_generator(model, 0)
  x = jnp.zeros((2, 128, 128, 3))
  texts = {}
  for mode in ('cpu', 'plain'):
    # A new function per mode: jit caches a trace per function, and the mode is read when tracing.
    grad = jax.grad(lambda p: jnp.mean(model.apply({'params': p}, x) ** 2))
    with kernels.forced(mode):
      texts[mode] = jax.jit(grad).lower(params).as_text()
  assert _cpu_kernel_traces(texts['cpu'])[0] > 0
  assert texts['plain'].count('HIGHEST') == _cpu_kernel_traces(texts['plain'])[1] == 0
