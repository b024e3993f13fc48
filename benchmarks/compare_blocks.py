r"""Times each residual block of G (forward + backward) in the authors' torch code and in mrr_jax.

The whole-step comparison (compare_cpu.py) says how far apart the two are;
this says where: the 16 residual blocks at their real shapes, batch 4, random
inputs and output cotangent, gradients for the block's params and its input.
Each implementation runs in its own process, torch first, and prints one
table row per block (median of --repeats timed calls after 2 warm-ups).

  python benchmarks/compare_blocks.py              # both, side by side
  python benchmarks/compare_blocks.py --impl jax   # one side only
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# (name, in channels, out channels, mode, input spatial size, how many in G)
BLOCKS = (('encoder.1', 32, 64, 'down', 128, 1), ('encoder.2', 64, 128, 'down', 64, 1),
          ('encoder.3', 128, 128, 'down', 32, 1), ('res_layers', 128, 128, 'none', 16, 10),
          ('decoder.0', 128, 128, 'up', 16, 1), ('decoder.1', 128, 64, 'up', 32, 1),
          ('decoder.2', 64, 32, 'up', 64, 1))


def median_ms(fn, repeats):
  fn()
  fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return 1e3 * statistics.median(times)


def torch_times(batch, repeats, threads):
  import torch  # pylint: disable=g-import-not-at-top
  sys.path.insert(0, os.path.join(REPO, 'benchmarks'))
  import torch_reference  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(threads)
  for name, cin, cout, mode, size, _ in BLOCKS:
    block = torch_reference.ResBlock(cin, cout, mode)
    x = torch.randn(batch, cin, size, size, requires_grad=True)
    cotangent = torch.randn_like(block(x))

    def step(block=block, x=x, cotangent=cotangent):
      block.zero_grad()
      x.grad = None
      block(x).backward(cotangent)

    yield name, median_ms(step, repeats)


def jax_times(batch, repeats):
  sys.path.insert(0, REPO)
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import mrr_jax  # pylint: disable=g-import-not-at-top,unused-import  (XLA CPU flags)
  from mrr_jax.models import generator  # pylint: disable=g-import-not-at-top
  for name, cin, cout, mode, size, _ in BLOCKS:
    block = generator.ResBlock(cout, mode=mode)
    x = jax.random.normal(jax.random.PRNGKey(0), (batch, size, size, cin))
    params = block.init(jax.random.PRNGKey(1), x)
    cotangent = jax.random.normal(jax.random.PRNGKey(2), block.apply(params, x).shape)
    grad = jax.jit(jax.grad(lambda p, v, c: jnp.vdot(block.apply(p, v), c), argnums=(0, 1)))
    yield name, median_ms(lambda: jax.block_until_ready(grad(params, x, cotangent)), repeats)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--impl', choices=('both', 'torch', 'jax'), default='both')
  parser.add_argument('--batch', type=int, default=4)
  parser.add_argument('--repeats', type=int, default=10)
  parser.add_argument('--threads', type=int, default=2, help='torch.set_num_threads')
  args = parser.parse_args()
  if args.impl == 'torch':
    rows = torch_times(args.batch, args.repeats, args.threads)
  elif args.impl == 'jax':
    rows = jax_times(args.batch, args.repeats)
  if args.impl != 'both':
    for name, ms in rows:
      print(json.dumps({'impl': args.impl, 'block': name, 'ms': ms}), flush=True)
    return
  results = {}
  for impl in ('torch', 'jax'):
    cmd = [sys.executable, os.path.abspath(__file__), '--impl', impl, '--batch', str(args.batch),
           '--repeats', str(args.repeats), '--threads', str(args.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
      if line.startswith('{'):
        row = json.loads(line)
        results[(impl, row['block'])] = row['ms']
  print(f'batch {args.batch}, fwd+bwd ms per block (median of {args.repeats})')
  print(f'{"block":12s} {"count":>5s} {"torch":>8s} {"jax":>8s} {"jax/torch":>9s}')
  totals = {'torch': 0.0, 'jax': 0.0}
  for name, *_, count in BLOCKS:
    t, j = results[('torch', name)], results[('jax', name)]
    totals['torch'] += count * t
    totals['jax'] += count * j
    print(f'{name:12s} {count:5d} {t:8.1f} {j:8.1f} {j / t:9.2f}')
  print(f'{"all blocks":12s} {"":5s} {totals["torch"]:8.0f} {totals["jax"]:8.0f} '
        f'{totals["jax"] / totals["torch"]:9.2f}')


if __name__ == '__main__':
  main()
