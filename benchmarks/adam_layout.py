r"""G's Adam update as the trainer keeps it (one array per param) against one flat vector.

The L1 step's optimizer update is one small kernel per param leaf (304 for G):
their bytes are a few percent of the step, their count a fifth of its kernels.
This compiles both layouts of the same update (the trainer's G optimizer for
configs/mrrnet.py on its initial params; no gradient, just the update) and prints, per layout, the kernels the compiled
program launches, the bytes they move, the roofline floor, and the floor if
each kernel took at least --min_kernel_us. On an attached GPU or TPU
(--target local) it also times both, pipelined, and checks they agree.

  python benchmarks/adam_layout.py --target local          # the attached device
  python benchmarks/adam_layout.py --target h200           # compile-only, jax's CUDA plugin

Flat is what a device measurement would argue for; it would change the
checkpointed optimizer state's layout, so it is measured here first.
"""
import argparse
import json
import os
import sys

import jax
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from configs import mrrnet  # pylint: disable=g-import-not-at-top
from mrr_jax import bench, compile_targets, hlo_costs  # pylint: disable=g-import-not-at-top
from mrr_jax.models import MRRNet  # pylint: disable=g-import-not-at-top
from mrr_jax.models import init as model_init  # pylint: disable=g-import-not-at-top
from mrr_jax.train import state as train_state  # pylint: disable=g-import-not-at-top


def update_fn(tx):
  def update(params, opt_state, grads):
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state
  return jax.jit(update)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--target', default='local', choices=['local', 'h100', 'h200'])
  parser.add_argument('--min_kernel_us', type=float, default=2.0)
  parser.add_argument('--bandwidth_gb_s', type=float, default=None,
                      help='GB/s for the floors (default: the target description\'s)')
  parser.add_argument('--steps', type=int, default=20)
  parser.add_argument('--windows', type=int, default=3)
  args = parser.parse_args()
  if args.target != 'local':
    jax.config.update('jax_platforms', 'cpu')  # built here, compiled for the target
    target = compile_targets.gpu_target(args.target, 1)
  else:
    target = compile_targets.local_target(1)
  sharding = jax.sharding.SingleDeviceSharding(target.devices[0])
  g_tx = train_state.make_optimizers(mrrnet.get_config(), steps_per_epoch=1000)[0]
  params = model_init.init_generator(MRRNet(), seed=0)
  grads = jax.tree.map(lambda p: p * 1e-3 + 1e-4, params)
  flat_params = ravel_pytree(params)[0]
  layouts = {'per leaf': (params, g_tx.init(params), grads),
             'flat': (flat_params, g_tx.init(flat_params), ravel_pytree(grads)[0])}
  peak, bandwidth = target.peak('float32'), args.bandwidth_gb_s or target.bandwidth_gb_s
  update = update_fn(g_tx)
  results = {}
  for name, state in layouts.items():
    abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding),
                            state)
    compiled = update.lower(*abstract).compile()
    kernels = hlo_costs.kernels(compiled.as_text())
    row = {'layout': name, 'leaves': len(jax.tree.leaves(state[0])),
           'params': int(flat_params.size), 'device_kind': target.device_kind,
           'kernels': len(kernels), 'mb': sum(k.bytes for k in kernels) / 1e6}
    if peak and bandwidth:
      floors = hlo_costs.roofline(kernels, peak, bandwidth, 0, args.min_kernel_us)
      row.update(floor_us=floors.get('floor_ms_without_min_kernel', floors['floor_ms']) * 1e3,
                 floor_us_at_min_kernel=floors['floor_ms'] * 1e3,
                 min_kernel_us=args.min_kernel_us)
    if args.target == 'local':
      on_device = jax.device_put(state, sharding)
      windows = bench.time_windows(lambda: compiled(*on_device), args.steps, args.windows, 2,
                                   None)
      row['measured_us'] = float(np.median(windows)) * 1e6
      results[name] = compiled(*on_device)[0]
    print(json.dumps(row), flush=True)
  if results:  # the two layouts give the same params
    np.testing.assert_allclose(ravel_pytree(results['per leaf'])[0], results['flat'],
                               rtol=1e-6, atol=1e-9)
    print('same params after the update from both layouts')


if __name__ == '__main__':
  main()
