r"""Times the full-size CPU train steps of two checkouts, interleaved, fresh process per run.

A shared CPU host drifts by 10-20% within minutes, so before/after figures
only compare inside one run that alternates them (before, after, then after,
before, ...). Each run is `python -m mrr_jax.bench` in that checkout, batch 4,
the median of 7 blocked one-step windows; a checkout from before the
benchmark's sweep flags (it has `--iters`) is called the way it was then.

  git worktree add /tmp/before 88260d6
  python benchmarks/compare_commits.py --before /tmp/before --rounds 3 --phases gan,l1
"""
import argparse
import json
import os
import statistics
import sys
import time

from compare_cpu import run_json  # pylint: disable=g-bad-import-order  (a sibling script)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def bench_cmd(checkout, phase, batch):
  config = 'configs/mrrnet.py' if phase == 'l1' else 'configs/mrrgan.py'
  cmd = [sys.executable, '-m', 'mrr_jax.bench', '--config', config]
  if phase == 'gan':
    cmd.append('--config.allow_random_vgg=true')
  with open(os.path.join(checkout, 'mrr_jax', 'bench.py')) as f:
    old_flags = "'iters'" in f.read()
  if old_flags:
    return cmd + ['--mode', 'train', f'--config.batch_size={batch}', '--iters=7']
  return cmd + ['--phases', phase, '--batch_sizes', str(batch), '--steps', '1', '--windows', '7']


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--before', required=True, help='the other checkout (a git worktree)')
  parser.add_argument('--after', default=REPO)
  parser.add_argument('--phases', default='gan,l1')
  parser.add_argument('--rounds', type=int, default=3)
  parser.add_argument('--batch', type=int, default=4)
  args = parser.parse_args()
  # As users run: the commands' own XLA flags, no test-session settings.
  env = {k: v for k, v in os.environ.items()
         if k not in ('XLA_FLAGS', 'MRR_JAX_KEEP_XLA_FLAGS', 'JAX_COMPILATION_CACHE_DIR')}
  phases = args.phases.split(',')
  checkouts = {'before': args.before, 'after': args.after}
  commands = {(phase, which): bench_cmd(checkout, phase, args.batch)
              for phase in phases for which, checkout in checkouts.items()}
  results = {}
  for r in range(args.rounds):
    for phase in phases:
      order = ('before', 'after') if r % 2 == 0 else ('after', 'before')
      for which in order:
        start = time.time()
        ips = run_json(commands[(phase, which)], env, cwd=checkouts[which])['images_per_s']
        wall = time.time() - start
        print(json.dumps({'round': r, 'phase': phase, 'which': which, 'images_per_s': ips,
                          'wall_s': round(wall, 1), 'load1': os.getloadavg()[0]}), flush=True)
        results.setdefault((phase, which), []).append(ips)
  print(f'\nbatch {args.batch}, {args.rounds} interleaved rounds')
  for phase in phases:
    before, after = results[(phase, 'before')], results[(phase, 'after')]
    paired = [a / b for a, b in zip(after, before)]
    print(f'{phase:4} before {statistics.median(before):.3f} img/s, after '
          f'{statistics.median(after):.3f} img/s; after/before per round '
          f'{", ".join(f"{p:.2f}" for p in paired)}, median {statistics.median(paired):.3f}')


if __name__ == '__main__':
  main()
