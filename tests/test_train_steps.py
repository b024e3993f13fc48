"""pmap train steps: N devices equal one device with the same global batch, both phases."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import mrrgan, mrrnet
from mrr_jax.train import parallel
from mrr_jax.train import loop, setup
from mrr_jax.train import state as state_lib

pytestmark = pytest.mark.skipif(jax.local_device_count() < 4,
                                reason='needs 4 devices (tests/conftest.py forces 4 CPU devices)')


def _batches(n, batch_size):
  rng = np.random.default_rng(0)
  return [{'input': rng.uniform(-1, 1, (batch_size, 128, 128, 3)).astype(np.float32),
           'hr': rng.uniform(-1, 1, (batch_size, 128, 128, 3)).astype(np.float32)}
          for _ in range(n)]


def _run(config, num_devices, batches):
  # Adam's first update is lr * g / (|g| + eps): for the few params whose true
  # gradient is at float32 rounding level (encoder_0's bias, ~2e-8, reaches
  # the loss only through a shortcut), summing the batch in another order
  # flips that update by up to 2 * lr. The gradients themselves agree to 1e-8;
  # a larger eps keeps those noise-level gradients from being amplified.
  config.adam_eps = 1e-4
  devices = jax.local_devices()[:num_devices]
  as64 = lambda tree: jax.tree_util.tree_map(lambda x: np.asarray(x, np.float64), tree)
  vgg = state_lib.load_vgg(config) if config.phase == 'gan' else None
  if config.compute_dtype == 'float64':
    vgg = vgg and (as64(vgg[0]), vgg[1])
    batches = as64(batches)
  run = setup.create(config, steps_per_epoch=100, devices=devices, vgg=vgg)
  step = run.step_fn
  start = as64(run.state) if config.compute_dtype == 'float64' else run.state
  state = parallel.replicate(start, devices)
  history = []
  for batch in batches:
    state, m = step(state, jax.tree_util.tree_map(jnp.asarray, parallel.shard(batch, num_devices)))
    history.append({k: float(v[0]) for k, v in m.items()})
  return parallel.unreplicate(state), history


def _assert_trees_close(a, b, atol):
  for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree_util.tree_leaves(b)):
    np.testing.assert_allclose(x, y, atol=atol, rtol=0, err_msg=jax.tree_util.keystr(path))


@pytest.mark.parametrize('phase', ['l1', 'gan'])
def test_four_devices_equal_one(phase):
  """Two L1 steps, or one GAN step, on 4 devices and on 1, from the same state and batches.

  One GAN step already needs every global mean: D's and G's relativistic
  losses compare each image with the means of the whole batch's D outputs.
  """
  config = (mrrnet if phase == 'l1' else mrrgan).get_config('tiny')
  steps = 2 if phase == 'l1' else 1
  batches = _batches(steps, config.batch_size)
  # In float32 the two batch layouts sum in another order; VGG19's ReLU/max-pool
  # near-ties (docs/golden.md#near-ties) and Adam's first step amplify that to ~1e-5, so both
  # phases are compared in float64, where the two runs must agree.
  config.compute_dtype = 'float64'
  with jax.enable_x64(True):
    one, hist_one = _run(config, 1, batches)
    four, hist_four = _run(config, 4, batches)
    init = setup.initial_state(config)
  assert int(one.step) == int(four.step) == steps
  _assert_trees_close(one.g_params, four.g_params, 1e-5)
  if phase == 'gan':
    _assert_trees_close(one.d_params, four.d_params, 1e-5)
    _assert_trees_close(one.spectral, four.spectral, 1e-6)
    # The relativistic losses must use the global batch means on every device.
    np.testing.assert_allclose(hist_one[0]['d_loss'], hist_four[0]['d_loss'], rtol=1e-5)
    np.testing.assert_allclose(hist_one[0]['g_gan'], hist_four[0]['g_gan'], rtol=1e-5)
  # The logged losses are the whole batch's, not one device's. (That the L1 is
  # mean|G(x) - hr| the golden iterations show: tests/test_golden_iterations.py.)
  for before, after in zip(hist_one, hist_four):
    np.testing.assert_allclose(after['l1'], before['l1'], rtol=1e-9)
  # And the step changed something: params moved away from init.
  moved = max(float(np.max(np.abs(a - b))) for a, b in zip(
      jax.tree_util.tree_leaves(one.g_params), jax.tree_util.tree_leaves(init.g_params)))
  assert moved > 1e-5


def test_indivisible_batch_is_refused():
  with pytest.raises(ValueError, match='not divisible by the 4 devices'):
    parallel.check_batch_size(6)


def test_g_lr_decays_every_four_epochs():
  config = mrrnet.get_config('tiny')
  _, _, schedule = state_lib.make_optimizers(config, steps_per_epoch=10)
  np.testing.assert_allclose([schedule(0), schedule(39), schedule(40), schedule(80)],
                             [1e-4, 1e-4, 0.7e-4, 0.49e-4], rtol=1e-6)


class _FakeManager:
  directory = '/runs/x/checkpoints'

  def __init__(self, latest):
    self._latest = latest

  def latest_step(self):
    return self._latest

  def wait_until_finished(self):
    pass


def test_non_finite_loss_names_step_and_last_checkpoint():
  loop._check_finite(7, {'l1': 0.5, 'g_loss': 0.5}, _FakeManager(5))  # finite: no error
  with pytest.raises(state_lib.TrainingError,
                     match=r"non-finite loss at step 7: \{'g_loss': nan\}; the last good "
                           r'checkpoint is step 5 in /runs/x/checkpoints'):
    loop._check_finite(7, {'l1': 0.5, 'g_loss': float('nan')}, _FakeManager(5))
  with pytest.raises(state_lib.TrainingError, match='no checkpoint was written'):
    loop._check_finite(3, {'l1': float('inf')}, _FakeManager(None))


def test_the_step_compiles_once_not_again_at_step_two():
  """Steps 2 and 3 lower nothing: the state pmap returns is a valid input as it is.

  The device arrays the trainer makes (parallel.replicate, prefetch_to_device)
  once sat on a mesh axis named unlike pmap's, so step 2 saw a new input
  sharding and compiled the whole step again.
  """
  from jax._src import dispatch, monitoring  # pylint: disable=g-import-not-at-top
  config = mrrnet.get_config('tiny')
  run = setup.create(config, steps_per_epoch=100)
  state = parallel.replicate(run.state)
  batches = parallel.prefetch_to_device(iter(_batches(3, 4)))
  lowerings = []

  def count(event, *_, **__):
    lowerings.append(event == dispatch.JAXPR_TO_MLIR_MODULE_EVENT)

  monitoring.register_event_duration_secs_listener(count)
  try:
    per_step = []
    for batch in batches:
      before = sum(lowerings)
      state, metrics = run.step_fn(state, batch)
      jax.block_until_ready(metrics)
      per_step.append(sum(lowerings) - before)
  finally:
    monitoring.unregister_event_duration_listener(count)
  assert per_step[0] >= 1 and per_step[1:] == [0, 0], per_step


def test_the_state_is_donated_except_on_gpus():
  """On a GPU the Adam updates of conv kernels cannot write in place (steps.donates_state), so
  donation would only add a copy of every state leaf; elsewhere the state is donated."""
  import types  # pylint: disable=g-import-not-at-top
  from mrr_jax.train import steps  # pylint: disable=g-import-not-at-top
  devices = jax.local_devices()[:1]
  assert steps.donates_state(devices) and steps.donates_state()
  assert not steps.donates_state([types.SimpleNamespace(platform='gpu')])
  state = {'w': jnp.zeros((1, 3))}
  lowered = steps.pmap_step(lambda s: jax.tree.map(lambda v: v + 1, s), devices).lower(state)
  assert 'tf.aliasing_output' in lowered.as_text() or 'jax.buffer_donor' in lowered.as_text()


def test_mean_over_devices_is_the_mean_of_each_leaf_in_one_all_reduce_per_dtype():
  """Device d holds (d + 1) * x for every leaf x, so each mean is 2.5 * x exactly; two dtypes,
  two all-reduces; a leaf taken from the wrong slice of the combined buffer would show."""
  tree = {'kernel': np.arange(2 * 3 * 3 * 4, dtype=np.float32).reshape(2, 3, 3, 4),
          'bias': np.arange(4, dtype=np.float32) - 10.0, 'scalar': np.float32(3.0),
          'u': ((np.arange(8) - 4) / 8).astype(jnp.bfloat16)}  # sums exact in bfloat16
  scaled = jax.tree_util.tree_map(lambda x: np.stack([(d + 1) * np.asarray(x) for d in range(4)]),
                                  tree)
  mean = jax.pmap(parallel.mean_over_devices, axis_name=parallel.AXIS)
  out = mean(scaled)
  for name, x in tree.items():
    for d in range(4):
      np.testing.assert_array_equal(np.asarray(out[name][d], np.float32),
                                    2.5 * np.asarray(x, np.float32), err_msg=name)
    assert out[name].dtype == np.asarray(x).dtype and out[name].shape[1:] == np.shape(x)
  text = mean.lower(scaled).as_text()
  assert text.count('stablehlo.all_reduce') == 2
  # One device: the plain pmean, leaf by leaf (the program the CPU benchmark times).
  one = jax.pmap(parallel.mean_over_devices, axis_name=parallel.AXIS, devices=jax.devices()[:1])
  single = jax.tree_util.tree_map(lambda x: x[:1], scaled)
  np.testing.assert_array_equal(one(single)['kernel'][0], tree['kernel'])
