"""Input-pipeline throughput: train batches per second from the real pipeline.

  python -m mrr_jax.bench --mode input --config configs/default.py \
      --config.data.train_dir=/path/to/lfw --config.data.crop_box=50,50,200,200

prints one JSON line: mode, images_per_s, cores (CPU-seconds per wall second
of this process and its workers while timing), images_per_s_per_core, batch,
batches, num_workers. The dataset is built (and cached in data.data_dir) first;
that build is not timed.
"""
import time
from typing import Any, Dict

import psutil

from mrr_jax.data import pipeline


def _cpu_seconds(proc: psutil.Process) -> float:
  """User + system CPU time of proc and its live children."""
  total = 0.0
  for p in [proc] + proc.children(recursive=True):
    try:
      t = p.cpu_times()
      total += t.user + t.system
    except psutil.NoSuchProcess:
      pass
  return total


def benchmark_input(config, warmup_batches: int = 5, timed_batches: int = 200) -> Dict[str, Any]:
  """Times `timed_batches` train batches after `warmup_batches`; see the module doc."""
  it = pipeline.create_train_iterator(config.data, config.batch_size, config.seed)
  try:
    for _ in range(warmup_batches):
      next(it)
    proc = psutil.Process()
    cpu0, t0 = _cpu_seconds(proc), time.perf_counter()
    for _ in range(timed_batches):
      next(it)
    wall = time.perf_counter() - t0
    cpu = _cpu_seconds(proc) - cpu0
  finally:
    it.close()
  images_per_s = timed_batches * config.batch_size / wall
  # CPU times tick in 10 ms: a few fast batches can show none (no per-core figure then).
  cores = cpu / wall if cpu > 0 else None
  return {'mode': 'input', 'images_per_s': round(images_per_s, 1),
          'cores': round(cores, 2) if cores else None,
          'images_per_s_per_core': round(images_per_s / cores, 1) if cores else None,
          'batch': config.batch_size, 'batches': timed_batches,
          'num_workers': pipeline.num_workers(config.data)}
