r"""Wall time of the trainer's first train steps: compile, and whether step 2 compiles again.

  python benchmarks/first_steps.py [--config mrrnet|mrrgan] [--batch_size 2] [--steps 3]
  python benchmarks/first_steps.py --repo /tmp/before --repo .   # side by side

Runs setup.create's step_fn (what mrr_jax.main runs) on a random batch put on
the devices as the trainer puts its batches (parallel.prefetch_to_device), in
a fresh process per --repo, with jax's persistent compilation cache off, and
prints one JSON line each: seconds per step, step 1 including its compile.
The GAN phase uses a random VGG19 (config.allow_random_vgg).
"""
import argparse
import json
import os
import subprocess
import sys

_CHILD = r'''
import importlib, json, sys, time
import jax
import numpy as np
from mrr_jax.train import parallel, setup
name, batch_size, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
config = importlib.import_module('configs.' + name).get_config()
config.batch_size = batch_size
if config.phase == 'gan':
  config.allow_random_vgg = True
run = setup.create(config, steps_per_epoch=1000)
state = parallel.replicate(run.state)
rng = np.random.default_rng(0)
faces = {k: rng.uniform(-1, 1, (batch_size, 128, 128, 3)).astype(np.float32) for k in ('input', 'hr')}
batch = next(parallel.prefetch_to_device(iter([faces])))  # the trainer's way onto the devices
times = []
for _ in range(steps):
  t0 = time.perf_counter()
  state, metrics = run.step_fn(state, batch)
  jax.block_until_ready(metrics)
  times.append(round(time.perf_counter() - t0, 2))
print(json.dumps({'config': name, 'batch_size': batch_size, 'step_s': times}))
'''


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--config', default='mrrnet', choices=('mrrnet', 'mrrgan'))
  parser.add_argument('--batch_size', type=int, default=2)
  parser.add_argument('--steps', type=int, default=3)
  parser.add_argument('--repo', action='append')
  args = parser.parse_args()
  repos = args.repo or [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
  env = dict(os.environ, JAX_COMPILATION_CACHE_DIR='')
  for repo in repos:
    result = subprocess.run(
        [sys.executable, '-c', _CHILD, args.config, str(args.batch_size), str(args.steps)],
        cwd=repo, env=dict(env, PYTHONPATH=repo), capture_output=True, text=True)
    if result.returncode:
      sys.exit(f'{repo}: {result.stderr.strip().splitlines()[-1]}')
    row = json.loads(result.stdout.strip().splitlines()[-1])
    print(json.dumps(dict(row, repo=repo)))


if __name__ == '__main__':
  main()
