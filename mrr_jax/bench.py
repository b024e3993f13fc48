r"""Benchmarks: the compiled train step of a config's phase, inference, or the input pipeline.

  python -m mrr_jax.bench --config configs/mrrnet.py --mode train --config.batch_size=4
  python -m mrr_jax.bench --config configs/mrrgan.py --mode train --config.batch_size=4
  python -m mrr_jax.bench --config configs/mrrnet.py --mode infer --config.batch_size=4
  python -m mrr_jax.bench --config configs/mrrnet.py --mode input --config.data.train_dir=DIR

Synthetic batches on whatever devices exist; no data set or weight files (the
GAN phase times a random VGG19). Prints one JSON object per line.
"""
import json
import os
import resource
import time

from absl import app, flags
import jax
import jax.numpy as jnp
from ml_collections import config_flags
import numpy as np

from mrr_jax import cli
from mrr_jax import platform

config_flags.DEFINE_config_file('config', None, 'Configuration file.', lock_config=True)
_MODE = flags.DEFINE_enum('mode', 'train', ['train', 'infer', 'input'], 'What to time.')
_ITERS = flags.DEFINE_integer('iters', 7, 'Timed iterations (the median is reported).')
_WARMUP = flags.DEFINE_integer('warmup', 2, 'Untimed iterations after compilation.')
flags.mark_flags_as_required(['config'])

# Forward GFLOP per 128x128 image (ARCH.md "Cost"); a step's FLOPs follow from them.
G_FWD_GFLOP = 13.55
L1_STEP_GFLOP = 40.62
GAN_STEP_GFLOP = 172.30
# Dense peak TFLOP/s of known accelerators (bf16 / f32-via-TF32 where it applies).
PEAK_TFLOPS = {'NVIDIA H100': 989.0, 'NVIDIA H200': 989.0, 'NVIDIA A100': 312.0,
               'TPU v4': 275.0, 'TPU v5 lite': 197.0, 'TPU v5e': 197.0, 'TPU v5p': 459.0}


def _peak(kind: str):
  for name, peak in PEAK_TFLOPS.items():
    if kind.startswith(name):
      return peak
  return None


def _peak_memory_mb() -> float:
  stats = jax.local_devices()[0].memory_stats() or {}
  if 'peak_bytes_in_use' in stats:
    return stats['peak_bytes_in_use'] / 2**20
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # host RSS on CPU


def _synthetic_batch(batch_size: int):
  rng = np.random.default_rng(0)
  return {'input': rng.uniform(-1, 1, (batch_size, 128, 128, 3)).astype(np.float32),
          'hr': rng.uniform(-1, 1, (batch_size, 128, 128, 3)).astype(np.float32),
          'lr': rng.uniform(-1, 1, (batch_size, 16, 16, 3)).astype(np.float32)}


def _time(fn, iters: int, warmup: int):
  t0 = time.perf_counter()
  jax.block_until_ready(fn())
  compile_s = time.perf_counter() - t0
  for _ in range(warmup):
    jax.block_until_ready(fn())
  times = []
  for _ in range(iters):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
  return compile_s, float(np.median(times))


def bench_train(config):
  from mrr_jax import parallel, train  # pylint: disable=g-import-not-at-top
  parallel.check_batch_size(config.batch_size)
  generator, discriminator = train.build_models(config)
  g_tx, d_tx, _ = train.make_optimizers(config, steps_per_epoch=1000)
  state = train.init_state(config, generator, discriminator, g_tx, d_tx, 0)
  vgg_params, mode = train.load_vgg(config) if config.phase == 'gan' else (None, 'torch')
  step_fn = train.make_step_fn(config, generator, discriminator, g_tx, d_tx, vgg_params, mode)
  holder = {'state': parallel.replicate(state)}
  batch = jax.tree_util.tree_map(jnp.asarray, parallel.shard(_synthetic_batch(config.batch_size)))

  def run():
    holder['state'], m = step_fn(holder['state'], batch)
    return m

  compile_s, step_s = _time(run, _ITERS.value, _WARMUP.value)
  gflop = L1_STEP_GFLOP if config.phase == 'l1' else GAN_STEP_GFLOP
  return step_s, compile_s, gflop


def bench_infer(config):
  from mrr_jax import parallel, train  # pylint: disable=g-import-not-at-top
  from mrr_jax.models import init as model_init  # pylint: disable=g-import-not-at-top
  parallel.check_batch_size(config.batch_size)
  generator, _ = train.build_models(config)
  params = model_init.init_generator(generator, 0)
  params = parallel.replicate(params)
  predict = jax.pmap(lambda p, x: generator.apply({'params': p}, x))
  x = jnp.asarray(parallel.shard(_synthetic_batch(config.batch_size))['input'])
  compile_s, step_s = _time(lambda: predict(params, x), _ITERS.value, _WARMUP.value)
  return step_s, compile_s, G_FWD_GFLOP


def run(config, mode: str):
  if mode == 'input':
    from mrr_jax import input_bench  # pylint: disable=g-import-not-at-top
    return input_bench.benchmark_input(config)
  step_s, compile_s, gflop_per_image = (bench_train if mode == 'train' else bench_infer)(config)
  devices = jax.devices()
  kind = devices[0].device_kind
  tflops = gflop_per_image * config.batch_size / step_s / 1e3
  peak = _peak(kind)
  result = {
      'mode': mode, 'phase': config.phase if mode == 'train' else 'infer',
      'batch': config.batch_size, 'images_per_s': config.batch_size / step_s,
      'median_step_ms': step_s * 1e3, 'compile_s': compile_s, 'devices': len(devices),
      'device_kind': kind, 'platform': devices[0].platform, 'host_cores': os.cpu_count(),
      'peak_memory_mb': _peak_memory_mb(), 'model_tflops': tflops,
      'compute_dtype': config.compute_dtype,
      'xla_flags': os.environ.get('XLA_FLAGS', ''),
      'glibc_tunables': os.environ.get('GLIBC_TUNABLES', ''),
  }
  if peak:
    result['mfu'] = tflops / (peak * len(devices))
  return result


def main(argv):
  del argv
  print(json.dumps(run(flags.FLAGS.config, _MODE.value)), flush=True)


if __name__ == '__main__':
  platform.reexec_with_hugepage_malloc()  # First: it restarts the process.
  app.run(main, flags_parser=cli.parse_flags)
