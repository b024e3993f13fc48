r"""Where the device time of a traced run goes, without TensorBoard.

  python -m mrr_jax.profile_summary --trace_dir DIR [--top 15]

Reads every Chrome-format trace (`*.trace.json.gz`) that `jax.profiler` wrote
under DIR, searched recursively (`mrr_jax.bench --profile_dir`, or a workdir
trained with `config.profile_steps`) and prints, per trace: how much of the traced span the device was busy (gaps
are host or launch overhead), the busy time by kind of op (convolutions and
matmuls, other fusions, collectives, copies) and the ops that took longest.

Device events are the ops of a `/device:*` process (GPU, TPU): its `XLA Ops`
line where the trace has one, else its streams' kernels (each named by the HLO
op it runs where the trace says). A CPU backend has no device process; there
the XLA ops run on the host's `tf_XLA*` threads, and work XLA hands to other
thread pools is not on those lines, so its busy share reads low.
"""
import collections
import glob
import gzip
import json
import os
import re
import sys
from typing import Dict, List, Sequence, Tuple

from absl import flags

from mrr_jax import cli

# Names as XLA and the GPU libraries give them. 'conv' must not match 'convert'.
_CATEGORIES = (
    ('collective', re.compile(r'all-reduce|all_reduce|allreduce|all-gather|reduce-scatter|'
                              r'collective|nccl')),
    ('conv/matmul', re.compile(r'conv(?!ert)|gemm|xmma|cudnn|cublas|cutlass|wgmma|matmul|'
                               r'(^|[^a-z])dot([^a-z]|$)')),
    ('copy', re.compile(r'copy|memcpy|memset|transpose')),
    ('fusion', re.compile(r'fusion|reduce|loop_|input_')),
)
# Host-side wrappers around the ops on the CPU backend's threads, not ops themselves.
_CPU_WRAPPERS = ('ThunkExecutor', 'ThreadpoolListener')
# A device's lines that repeat its ops' time at a coarser grain (whole programs, steps).
_SUMMARY_LINES = ('XLA Modules', 'Steps', 'Framework Ops', 'Framework Name Scope', 'Source code')

Event = Tuple[float, float, str]  # start (us), duration (us), name


def category(name: str) -> str:
  lowered = name.lower()
  for label, pattern in _CATEGORIES:
    if pattern.search(lowered):
      return label
  return 'other'


def device_events(trace: Dict) -> List[Event]:
  """The op events of the trace's devices (see the module docstring)."""
  events = trace.get('traceEvents', [])
  processes, threads = {}, {}
  for e in events:
    if e.get('ph') == 'M' and e.get('name') == 'process_name':
      processes[e['pid']] = e['args']['name']
    elif e.get('ph') == 'M' and e.get('name') == 'thread_name':
      threads[(e['pid'], e.get('tid'))] = e['args']['name']
  device_pids = {pid for pid, name in processes.items() if '/device:' in name}
  if device_pids:
    device_lines = {key: name for key, name in threads.items() if key[0] in device_pids}
    op_lines = {key for key, name in device_lines.items() if name == 'XLA Ops'}
    kernel_lines = {key for key, name in device_lines.items() if name.startswith('Stream')}
    lines = op_lines or kernel_lines or {key for key, name in device_lines.items()
                                         if not name.startswith(_SUMMARY_LINES)}
  else:
    lines = {key for key, name in threads.items() if name.startswith('tf_XLA')}
  out = []
  for e in events:
    if e.get('ph') != 'X' or (e.get('pid'), e.get('tid')) not in lines:
      continue
    if e['name'].startswith(_CPU_WRAPPERS):
      continue
    args = e.get('args') or {}
    # A kernel's args may name the HLO op it runs; that says more than the kernel name.
    out.append((float(e['ts']), float(e['dur']), args.get('hlo_op') or e['name']))
  return out


def busy_us(events: Sequence[Event]) -> float:
  """Length of the union of the events' intervals (ops on parallel threads overlap)."""
  total, end = 0.0, float('-inf')
  for start, dur, _ in sorted(events):
    stop = start + dur
    if stop > end:
      total += stop - max(start, end)
      end = stop
  return total


def summarize(events: Sequence[Event], top: int = 15) -> Dict:
  """Busy time, span, time per category and the longest ops (by total time) of one trace."""
  if not events:
    return {'events': 0}
  span = max(s + d for s, d, _ in events) - min(s for s, _, _ in events)
  by_category, by_op = collections.Counter(), collections.Counter()
  counts = collections.Counter()
  for _, dur, name in events:
    by_category[category(name)] += dur
    by_op[name] += dur
    counts[name] += 1
  return {'events': len(events), 'span_us': span, 'busy_us': busy_us(events),
          'op_us': sum(by_category.values()), 'by_category': dict(by_category),
          'top_ops': [(name, us, counts[name]) for name, us in by_op.most_common(top)]}


def format_summary(title: str, summary: Dict) -> str:
  if not summary['events']:
    return f'{title}: no device events found'
  op_us = summary['op_us']
  lines = [f'{title}: {summary["events"]} op events; device busy '
           f'{summary["busy_us"] / 1e3:.1f} ms of a {summary["span_us"] / 1e3:.1f} ms span '
           f'({summary["busy_us"] / summary["span_us"]:.0%})']
  for label, us in sorted(summary['by_category'].items(), key=lambda kv: -kv[1]):
    lines.append(f'  {label:12} {us / 1e3:10.2f} ms  {us / op_us:6.1%}')
  lines.append(f'  longest ops (total ms, count, share of op time):')
  for name, us, count in summary['top_ops']:
    lines.append(f'    {us / 1e3:10.2f} {count:6d} {us / op_us:6.1%}  {name[:100]}')
  return '\n'.join(lines)


def trace_files(root: str) -> List[str]:
  return sorted(glob.glob(os.path.join(root, '**', '*.trace.json.gz'), recursive=True))


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> flags.FlagValues:
  flags.DEFINE_string('trace_dir', None, 'A folder holding jax.profiler traces (searched '
                      'recursively): a workdir, or bench --profile_dir.', flag_values=fv)
  flags.DEFINE_integer('top', 15, 'How many of the longest ops to list.', flag_values=fv)
  return fv


def main(argv: Sequence[str], fv: flags.FlagValues = flags.FLAGS) -> None:
  cli.check_args(argv, fv, ('trace_dir',))
  files = trace_files(fv.trace_dir)
  if not files:
    sys.exit(f'error: no *.trace.json.gz under {fv.trace_dir}')
  for path in files:
    try:
      with gzip.open(path, 'rt') as f:
        trace = json.load(f)
    except (OSError, ValueError) as e:
      sys.exit(f'error: {path} is not a readable gzipped JSON trace ({e})')
    print(format_summary(os.path.relpath(path, fv.trace_dir),
                         summarize(device_events(trace), fv.top)))


if __name__ == '__main__':
  define_flags()
  cli.run(main)
