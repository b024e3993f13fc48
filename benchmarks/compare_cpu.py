r"""Times the authors' PyTorch code (benchmarks/torch_reference.py) and mrr_jax side by side.

The CPU hosts this runs on are shared and noisy, so the two are interleaved
(torch, jax, torch, jax, ...) for --repeats rounds and the table shows, per
case, the median over rounds of each run's median step, plus the JAX/torch
ratio. Each run is a fresh process (JAX compile time included in its JSON,
excluded from its step time).

  python benchmarks/compare_cpu.py --cases l1,gan,infer --batch 4 --repeats 3
  python benchmarks/compare_cpu.py --cases l1 --jax-env MRR_JAX_KEEP_XLA_FLAGS=1  # jax defaults
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = {'l1': ('configs/mrrnet.py', 'train'), 'gan': ('configs/mrrgan.py', 'train'),
           'infer': ('configs/mrrnet.py', 'infer')}


def torch_cmd(case, batch, threads):
  mode = 'infer' if case == 'infer' else 'train'
  return [sys.executable, os.path.join(REPO, 'benchmarks', 'torch_reference.py'),
          '--mode', mode, '--phase', 'l1' if case == 'infer' else case,
          '--batch', str(batch), '--threads', str(threads)]


def jax_cmd(case, batch):
  config, mode = CONFIGS[case]
  cmd = [sys.executable, '-m', 'mrr_jax.bench', '--config', config, '--mode', mode,
         f'--config.batch_size={batch}']
  if case == 'gan':
    cmd.append('--config.allow_random_vgg=true')
  return cmd


def run_json(cmd, env, cwd=REPO):
  """Runs a benchmark process in `cwd` and returns its last JSON line."""
  proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
  lines = [l for l in proc.stdout.splitlines() if l.startswith('{')]
  if proc.returncode != 0 or not lines:
    raise RuntimeError(f'{" ".join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}')
  return json.loads(lines[-1])


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--cases', default='l1,gan,infer')
  parser.add_argument('--batch', type=int, default=4)
  parser.add_argument('--repeats', type=int, default=3)
  parser.add_argument('--threads', type=int, default=2, help='torch.set_num_threads')
  parser.add_argument('--jax-env', action='append', default=[],
                      help='KEY=VALUE added to the JAX runs\' environment (repeatable)')
  args = parser.parse_args()
  jax_env = dict(os.environ, **dict(kv.split('=', 1) for kv in args.jax_env))
  results = {}
  for case in args.cases.split(','):
    for r in range(args.repeats):
      for impl, cmd, env in (('torch', torch_cmd(case, args.batch, args.threads), os.environ),
                             ('jax', jax_cmd(case, args.batch), jax_env)):
        out = run_json(cmd, env)
        out.update(impl=impl, case=case, round=r)
        print(json.dumps(out), flush=True)
        results.setdefault((case, impl), []).append(out)
  print(f'\nbatch {args.batch}, {args.repeats} interleaved rounds, median over rounds')
  print(f'{"case":6} {"torch img/s":>11} {"jax img/s":>10} {"jax/torch":>9} '
        f'{"torch MB":>9} {"jax MB":>7} {"jax compile s":>13}')
  for case in args.cases.split(','):
    t, j = results[(case, 'torch')], results[(case, 'jax')]
    med = lambda rs, k: statistics.median(x[k] for x in rs)
    ti, ji = med(t, 'images_per_s'), med(j, 'images_per_s')
    print(f'{case:6} {ti:11.2f} {ji:10.2f} {ji / ti:9.2f} {med(t, "peak_memory_mb"):9.0f} '
          f'{med(j, "peak_memory_mb"):7.0f} {med(j, "compile_s"):13.1f}')


if __name__ == '__main__':
  main()
