r"""Start-up time of the commands that run an export: `--help` wall time, median of N runs.

  python benchmarks/startup_time.py [--runs 5] [--repo DIR ...]

Each --repo (default: this checkout) is timed in fresh processes, alternately,
so two checkouts (e.g. a `git worktree` of an older commit) compare side by
side. Also counts how many times TensorFlow's banner was printed.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

COMMANDS = ('mrr_jax.infer', 'mrr_jax.evaluate')


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--runs', type=int, default=5)
  parser.add_argument('--repo', action='append')
  args = parser.parse_args()
  repos = args.repo or [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
  times = {(r, c): [] for r in repos for c in COMMANDS}
  banners = {}
  for _ in range(args.runs):
    for command in COMMANDS:
      for repo in repos:
        t0 = time.perf_counter()
        result = subprocess.run([sys.executable, '-m', command, '--help'], cwd=repo,
                                capture_output=True, text=True)
        times[(repo, command)].append(time.perf_counter() - t0)
        banners[(repo, command)] = result.stderr.count('oneDNN custom operations')
  for (repo, command), values in times.items():
    print(json.dumps({'repo': repo, 'command': f'python -m {command} --help',
                      'median_s': round(statistics.median(values), 2),
                      'runs_s': [round(v, 2) for v in values],
                      'tensorflow_banners': banners[(repo, command)]}))


if __name__ == '__main__':
  main()
