r"""G's Adam update as the trainer keeps it (one array per param) against flat layouts.

The L1 step's optimizer update is one small kernel per param leaf (304 for G):
their bytes are a few percent of the step, their count a fifth of its kernels.
This compiles three layouts of the same update (the trainer's G optimizer for
configs/mrrnet.py on its initial params; no gradient, just the update):

  per leaf    params and Adam moments one array per param (as trained)
  flat state  params per leaf, Adam moments one vector (optax.flatten)
  flat        params and moments one vector each

and prints, per layout, the kernels the compiled program launches, the bytes
they move, the roofline floor, and the floor if each kernel took at least
--min_kernel_us. On an attached GPU or TPU (--target local) it also times them,
pipelined, and checks they agree.

--step compiles the whole train step instead (per-device batch --batch_size,
pmapped over --devices), with the trainer's optimizers as they are and wrapped
in optax.flatten: what the flat state would change in the step, where the
gradients arrive from the backward pass rather than as given arrays.

  python benchmarks/adam_layout.py --target local          # the attached device
  python benchmarks/adam_layout.py --target h200           # compile-only, jax's CUDA plugin
  python benchmarks/adam_layout.py --target h200 --step --devices 8

A flat state would change the checkpointed optimizer state's layout, so it is
measured here first.
"""
import argparse
import contextlib
import json
import os
import sys
from unittest import mock

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


def flat_optimizer_state():
  """While open, the trainer builds its optimizers wrapped in optax.flatten."""
  make_optimizers = train_state.make_optimizers

  def flattened(config, steps_per_epoch):
    g_tx, d_tx, g_schedule = make_optimizers(config, steps_per_epoch)
    return optax.flatten(g_tx), optax.flatten(d_tx), g_schedule

  return mock.patch.object(train_state, 'make_optimizers', flattened)


def kernel_costs(kernels, target, dtype, args):
  """Kernel count, bytes and roofline floors (without and with the least kernel time)."""
  roof = hlo_costs.roofline(kernels, target.peak(dtype),
                            args.bandwidth_gb_s or target.bandwidth_gb_s, 0, args.min_kernel_us)
  row = {'kernels': roof['kernels'], 'mb': roof['gb_per_device_step'] * 1e3}
  if roof['floor_ms'] is not None:  # None without a peak or a bandwidth
    row.update(floor_us=roof.get('floor_ms_without_min_kernel', roof['floor_ms']) * 1e3,
               floor_us_at_min_kernel=roof['floor_ms'] * 1e3, min_kernel_us=args.min_kernel_us)
  return row


def compare_steps(target, args):
  """The train step compiled with the trainer's optimizer state and with it flat."""
  config = mrrnet.get_config()
  for name, layout in [('per leaf', contextlib.nullcontext), ('flat state', flat_optimizer_state)]:
    with layout():
      hlo, facts = compile_targets.compile_step(config, args.phase, args.batch_size, args.dtype,
                                                target)
    row = {'step': args.phase, 'layout': name, 'device_kind': target.device_kind,
           'devices': len(target.devices), 'per_device_batch': args.batch_size,
           'dtype': args.dtype, 'temp_mib': facts['program_temp_mib'],
           **kernel_costs(hlo_costs.kernels(hlo), target, args.dtype, args)}
    print(json.dumps(row), flush=True)


def compare_updates(target, args):
  """G's optimizer update alone, in each layout; timed and checked equal on a local device."""
  sharding = jax.sharding.make_single_device_sharding(target.devices[0])
  g_tx = train_state.make_optimizers(mrrnet.get_config(), steps_per_epoch=1000)[0]
  params = model_init.init_generator(MRRNet(), seed=0)
  grads = jax.tree.map(lambda p: p * 1e-3 + 1e-4, params)
  flat_params, flat_grads = ravel_pytree(params)[0], ravel_pytree(grads)[0]
  flat_state_tx = optax.flatten(g_tx)
  layouts = {'per leaf': (g_tx, (params, g_tx.init(params), grads)),
             'flat state': (flat_state_tx, (params, flat_state_tx.init(params), grads)),
             'flat': (g_tx, (flat_params, g_tx.init(flat_params), flat_grads))}
  results = {}
  for name, (tx, state) in layouts.items():
    abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding),
                            state)
    compiled = update_fn(tx).lower(*abstract).compile()
    row = {'layout': name, 'leaves': len(jax.tree.leaves(state[0])),
           'params': int(flat_params.size), 'device_kind': target.device_kind,
           **kernel_costs(hlo_costs.kernels(compiled.as_text()), target, 'float32', args)}
    if args.target == 'local':
      on_device = jax.device_put(state, sharding)
      windows = bench.time_windows(lambda: compiled(*on_device), args.steps, args.windows, 2,
                                   None)
      row['measured_us'] = float(np.median(windows)) * 1e6
      results[name] = ravel_pytree(compiled(*on_device)[0])[0]
    print(json.dumps(row), flush=True)
  if results:  # every layout gives the same params
    for name in ('flat state', 'flat'):
      np.testing.assert_allclose(results['per leaf'], results[name], rtol=1e-6, atol=1e-9)
    print('same params after the update from every layout')


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--target', default='local', choices=['local', 'h100', 'h200'])
  parser.add_argument('--min_kernel_us', type=float, default=2.0)
  parser.add_argument('--bandwidth_gb_s', type=float, default=None,
                      help='GB/s for the floors (default: the target description\'s)')
  parser.add_argument('--steps', type=int, default=20)
  parser.add_argument('--windows', type=int, default=3)
  parser.add_argument('--step', action='store_true', help='compile the whole train step')
  parser.add_argument('--phase', default='l1', choices=['l1', 'gan'])
  parser.add_argument('--devices', type=int, default=1, help='with --step: devices pmapped over')
  parser.add_argument('--batch_size', type=int, default=16, help='with --step: per device')
  parser.add_argument('--dtype', default='bfloat16', help='with --step: compute dtype')
  args = parser.parse_args()
  devices = args.devices if args.step else 1
  if args.target != 'local':
    jax.config.update('jax_platforms', 'cpu')  # built here, compiled for the target
    target = compile_targets.gpu_target(args.target, devices)
  else:
    target = compile_targets.local_target(devices)
  if args.step:
    compare_steps(target, args)
  else:
    compare_updates(target, args)


if __name__ == '__main__':
  main()
