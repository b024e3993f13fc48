r"""Benchmarks: the compiled train steps and inference on whatever devices exist, or the input pipeline.

  python -m mrr_jax.bench --config configs/mrrnet.py --sweep
  python -m mrr_jax.bench --config configs/mrrnet.py --phases l1,gan --batch_sizes 4 \
      --dtypes float32 --json runs/bench.jsonl --markdown runs/bench.md
  python -m mrr_jax.bench --config configs/mrrnet.py --mode infer --batch_sizes 16
  python -m mrr_jax.bench --config configs/mrrnet.py --mode input --config.data.train_dir=DIR
  python -m mrr_jax.bench --config configs/mrrnet.py --mode ceilings

Synthetic batches, a random VGG19 for the GAN phase: no data set, no weight
file, and for --mode train|infer nothing beyond jax, flax, optax,
ml_collections and numpy (no TensorFlow, TFDS or grain), so it runs on a bare
accelerator image. Each case (phase x per-device batch x dtype) is compiled
first (lower + compile, timed apart), warmed up, then timed over windows of
pipelined steps (dispatched back to back, blocked once at the end of each
window); the figure is the median window. Reported: images/s, step ms,
compile s, peak device memory, the executed FLOPs of the compiled program
(XLA's cost analysis) beside the authors' network's FLOPs (model FLOPs:
nearest-upsample convs and VGG padding counted as written), and MFU of both
against the device's dense peak for the dtype (no MFU for a kind the table
does not know, and the row says so), and the bytes the compiled program
accesses per device (XLA's estimate after fusion) with the bandwidth and FLOP
per byte they imply. One JSON object per case on stdout (and
--json); a Markdown table at the end (and --markdown). --budget_s stops the
sweep before a case that would not fit.

--mode ceilings measures the rates a step's time is read against on this
device: a large bfloat16 matrix product (TFLOP/s, beside the table's peak), an
out-of-place float32 pass over a large buffer (GB/s read + written), and the
least time one kernel takes (a chain of dependent kernels on 64 KiB each, its
time over the kernels the compiled chain launches: launch and ramp-up, what
`python -m mrr_jax.roofline --min_kernel_us` takes), timed the same way, on
random data.
"""
import dataclasses
import os
import resource
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from absl import flags
import jax
import jax.numpy as jnp
from ml_collections import config_flags
import numpy as np

from mrr_jax import cli, hlo_costs
from mrr_jax.compile_targets import step_config
from mrr_jax.peaks import peak_tflops

config_flags.DEFINE_config_file('config', None, 'Configuration file.', lock_config=True)
_MODE = flags.DEFINE_enum('mode', 'train', ['train', 'infer', 'input', 'ceilings'],
                         'What to time.')
_SWEEP = flags.DEFINE_bool('sweep', False, 'Both phases x the platform\'s batch sizes x dtypes.')
_PHASES = flags.DEFINE_list('phases', None, 'l1,gan (default: the config\'s phase).')
_BATCHES = flags.DEFINE_list('batch_sizes', None, 'Per-device batch sizes (default: the '
                             'config\'s batch_size over the devices).')
_DTYPES = flags.DEFINE_list('dtypes', None, 'float32,bfloat16 (default: the config\'s).')
_STEPS = flags.DEFINE_integer('steps', 10, 'Steps per timed window.')
_WINDOWS = flags.DEFINE_integer('windows', 3, 'Timed windows per case (the median is reported).')
_WARMUP = flags.DEFINE_integer('warmup', 2, 'Untimed steps after compilation.')
_BUDGET = flags.DEFINE_float('budget_s', 0, 'Stop before a case that would end past this many '
                             'seconds from the start (0 = no limit).')
_JSON = flags.DEFINE_string('json', None, 'Also append the JSON lines to this file.')
_MARKDOWN = flags.DEFINE_string('markdown', None, 'Also write the Markdown table to this file.')
_PROFILE = flags.DEFINE_string('profile_dir', None, 'Trace one more, untimed window per case '
                               'here (TensorBoard profile plugin, Perfetto, '
                               'python -m mrr_jax.profile_summary).')
flags.mark_flags_as_required(['config'])

# GFLOP per 128x128 image of the authors' network as written (docs/architecture.md#cost).
MODEL_GFLOP = {'infer': 13.55, 'l1': 40.62, 'gan': 172.30}
# ... which hold for this generator only (other widths or attention: no model FLOPs).
PAPER_MODEL = {'base_channels': 32, 'max_channels': 128, 'num_down': 3, 'num_res': 10,
               'attention': 'mrr', 'att_kernels': (1, 3, 5, 7)}


def model_gflop(model_config, phase: str) -> Optional[float]:
  """MODEL_GFLOP[phase] when model_config is the paper's generator, else None."""
  fields = {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in model_config.items()}
  return MODEL_GFLOP[phase] if fields == PAPER_MODEL else None

def sweep_cases(platform: str) -> Dict[str, List[Any]]:
  """What --sweep runs: both phases; bf16 only where it is native; sizes that fit."""
  if platform == 'cpu':
    return {'phases': ['l1', 'gan'], 'batch_sizes': [4], 'dtypes': ['float32']}
  return {'phases': ['l1', 'gan'], 'batch_sizes': [16, 64], 'dtypes': ['bfloat16', 'float32']}


@dataclasses.dataclass
class Case:
  mode: str          # 'train' or 'infer'
  phase: str         # 'l1', 'gan' ('infer' for inference)
  per_device: int
  dtype: str


def _synthetic_batch(batch_size: int) -> Dict[str, np.ndarray]:
  rng = np.random.default_rng(0)
  return {'input': rng.uniform(-1, 1, (batch_size, 128, 128, 3)).astype(np.float32),
          'hr': rng.uniform(-1, 1, (batch_size, 128, 128, 3)).astype(np.float32)}


def _device_batch(batch_size: int):
  from mrr_jax.train import parallel  # pylint: disable=g-import-not-at-top
  sharding = parallel.device_axis_sharding(jax.local_devices())
  return jax.device_put(parallel.shard(_synthetic_batch(batch_size)), sharding)


def _compiled_train(config):
  """(compiled step, its arguments builder): the trainer's own step, compiled ahead."""
  from mrr_jax.train import parallel, setup  # pylint: disable=g-import-not-at-top
  run = setup.create(config, steps_per_epoch=1000)
  state = parallel.replicate(run.state)
  batch = _device_batch(config.batch_size)
  t0 = time.perf_counter()
  lowered = run.step_fn.lower(state, batch)
  compiled = lowered.compile()
  compile_s = time.perf_counter() - t0
  holder = {'state': state}

  def step():
    holder['state'], metrics = run.step_fn.call_compiled(compiled, holder['state'], batch)
    return metrics

  return compiled, compile_s, step


def _compiled_infer(config):
  from mrr_jax.models import init as model_init  # pylint: disable=g-import-not-at-top
  from mrr_jax.train import parallel, state as state_lib  # pylint: disable=g-import-not-at-top
  from mrr_jax.models import kernels  # pylint: disable=g-import-not-at-top
  kernels.set_mode(config.kernels)
  generator, _ = state_lib.build_models(config)
  params = parallel.replicate(model_init.init_generator(generator, 0))
  predict = jax.pmap(lambda p, x: generator.apply({'params': p}, x))
  x = _device_batch(config.batch_size)['input']
  t0 = time.perf_counter()
  compiled = predict.lower(params, x).compile()
  compile_s = time.perf_counter() - t0
  return compiled, compile_s, lambda: compiled(params, x)


def time_windows(step, steps: int, windows: int, warmup: int,
                 profile_dir: Optional[str]) -> List[float]:
  """Seconds per step of each window of `steps` pipelined steps (one block per window).

  With a profile_dir, one more window runs under the profiler after the timed
  ones: tracing slows the host, so that window is not among the timings.
  """
  def window():
    result = None
    for _ in range(steps):
      result = step()
    jax.block_until_ready(result)

  for _ in range(max(warmup, 1)):
    jax.block_until_ready(step())
  out = []
  for _ in range(windows):
    t0 = time.perf_counter()
    window()
    out.append((time.perf_counter() - t0) / steps)
  if profile_dir:
    with jax.profiler.trace(profile_dir):
      window()
  return out


def _memory(compiled) -> Dict[str, Optional[float]]:
  """Peak device memory (MiB) where the device reports it; the compiled program's needs."""
  stats = jax.local_devices()[0].memory_stats() or {}
  out = {'peak_device_mib': stats['peak_bytes_in_use'] / 2**20
         if 'peak_bytes_in_use' in stats else None,
         'host_rss_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}
  out.update(hlo_costs.program_memory_mib(compiled))
  return out


def run_case(base_config, case: Case, steps: int, windows: int, warmup: int,
             profile_dir: Optional[str] = None) -> Dict[str, Any]:
  """One benchmark row."""
  config = step_config(base_config, case.phase if case.mode == 'train' else 'l1', case.dtype,
                       case.per_device * jax.device_count())
  compiled, compile_s, step = (_compiled_train if case.mode == 'train'
                               else _compiled_infer)(config)
  trace = os.path.join(profile_dir, f'{case.phase}_b{case.per_device}_{case.dtype}') \
      if profile_dir else None
  per_step = time_windows(step, steps, windows, warmup, trace)
  step_s = float(np.median(per_step))
  devices = jax.devices()
  kind, n = devices[0].device_kind, len(devices)
  images = config.batch_size
  # XLA's cost analysis: the bytes beside the FLOPs say whether the step can be
  # compute-bound at all (FLOP per byte against the ridge, bench --mode ceilings).
  executed, accessed = hlo_costs.xla_cost(compiled)
  executed_total = executed * n if executed else None  # the program runs on every device
  gflop = model_gflop(config.model, case.phase)
  model_total = gflop * 1e9 * images if gflop else None
  peak, peak_name = peak_tflops(kind, case.dtype)
  row = {
      'mode': case.mode, 'phase': case.phase, 'dtype': case.dtype,
      'per_device_batch': case.per_device, 'global_batch': images, 'devices': n,
      'device_kind': kind, 'platform': devices[0].platform,
      'images_per_s': images / step_s, 'step_ms': step_s * 1e3,
      'window_step_ms': [t * 1e3 for t in per_step], 'compile_s': compile_s,
      'executed_tflop_per_step': executed_total / 1e12 if executed_total else None,
      'model_tflop_per_step': model_total / 1e12 if model_total else None,
      'executed_tflops': executed_total / step_s / 1e12 if executed_total else None,
      # Per device: bytes over step time is the memory bandwidth the step reaches.
      'accessed_gb_per_device_step': accessed / 1e9 if accessed else None,
      'accessed_gb_per_s_per_device': accessed / step_s / 1e9 if accessed else None,
      'flop_per_byte': executed / accessed if executed and accessed else None,
      'model_tflops': model_total / step_s / 1e12 if model_total else None,
      'peak_tflops_per_device': peak, 'peak': peak_name,
      'mfu_executed': executed_total / step_s / (peak * 1e12 * n) if peak and executed_total
                      else None,
      'mfu_model': model_total / step_s / (peak * 1e12 * n) if peak and model_total else None,
      'kernels': config.kernels, 'host_cores': os.cpu_count(),
      'xla_flags': os.environ.get('XLA_FLAGS', ''),
      'glibc_tunables': os.environ.get('GLIBC_TUNABLES', ''),
      'jax': jax.__version__,
  }
  row.update(_memory(compiled))
  return row


def _fmt(value, spec: str) -> str:
  return '-' if value is None else format(value, spec)


def markdown_table(rows: Sequence[Dict[str, Any]]) -> str:
  """One line per case: what was measured and against which peak."""
  head = ('| mode | phase | dtype | batch/dev | devices | images/s | step ms | compile s | '
          'executed TFLOP/s | MFU (executed) | MFU (model) | GB/s per device | FLOP/byte | '
          'peak mem MiB | device |')
  columns = head.count('|') - 1
  lines = [head, '|' + '|'.join(['---'] * columns) + '|']
  for r in rows:
    if 'skipped' in r:  # the reason in the images/s column, the columns after it empty
      cells = [r['mode'], r['phase'], r['dtype'], r['per_device_batch'], '',
               f'skipped: {r["skipped"]}']
      lines.append('| ' + ' | '.join(map(str, cells + [''] * (columns - len(cells)))) + ' |')
      continue
    mem = r.get('peak_device_mib') or r.get('program_temp_mib')
    lines.append(
        f'| {r["mode"]} | {r["phase"]} | {r["dtype"]} | {r["per_device_batch"]} | '
        f'{r["devices"]} | {r["images_per_s"]:.2f} | {r["step_ms"]:.1f} | {r["compile_s"]:.1f} | '
        f'{_fmt(r["executed_tflops"], ".2f")} | {_fmt(r["mfu_executed"], ".1%")} | '
        f'{_fmt(r["mfu_model"], ".1%")} | {_fmt(r["accessed_gb_per_s_per_device"], ".1f")} | '
        f'{_fmt(r["flop_per_byte"], ".1f")} | {_fmt(mem, ".0f")} | {r["device_kind"]} ({r["peak"]}) |')
  return '\n'.join(lines)


def ceiling_sizes(platform: str) -> Tuple[int, int]:
  """(matrix side, copy buffer MiB): large enough to fill an accelerator, small on a CPU."""
  return (1024, 64) if platform == 'cpu' else (8192, 1024)


# The kernel chain: long enough that dispatching it once is a small part of its
# time, on 128 x 128 float32 (64 KiB), so each link is all fixed cost: a 4.8 TB/s
# GPU moves its 128 KiB in 0.03 us.
CHAIN_LENGTH, CHAIN_SHAPE = 256, (128, 128)


def kernel_chain(length: int):
  """`length` dependent small kernels: negate and roll by one row, behind a barrier.

  The barrier keeps GPU and TPU compilers from fusing one link into the next;
  a CPU's compiler drops barriers before it fuses, and there the roll's
  concatenation keeps the links apart. The result is exact: (-1)**length times
  x rolled by `length` rows.
  """
  def chain(x):
    for _ in range(length):
      x = jax.lax.optimization_barrier(jnp.roll(-x, 1, axis=0))
    return x
  return jax.jit(chain)


def measure_ceilings(matmul_n: int, copy_mib: int, steps: int, windows: int,
                     chain_length: int = CHAIN_LENGTH) -> Dict[str, Any]:
  """The device's matrix-product rate (bfloat16), memory bandwidth and least time per
  kernel, as this code reaches them."""
  a_key, b_key, x_key, c_key = jax.random.split(jax.random.PRNGKey(0), 4)
  a = jax.random.normal(a_key, (matmul_n, matmul_n), jnp.bfloat16)
  b = jax.random.normal(b_key, (matmul_n, matmul_n), jnp.bfloat16)
  x = jax.random.normal(x_key, (copy_mib * 2**20 // 4,), jnp.float32)
  small = jax.random.normal(c_key, CHAIN_SHAPE, jnp.float32)
  matmul, scale = jax.jit(jnp.matmul), jax.jit(lambda v: v * 2.0)
  chain = kernel_chain(chain_length).lower(small).compile()
  # Counted in the compiled program, not assumed: a compiler that fused links
  # would otherwise make each kernel look cheaper.
  chain_kernels = len(hlo_costs.kernels(chain.as_text()))
  matmul_s = float(np.median(time_windows(lambda: matmul(a, b), steps, windows, 1, None)))
  copy_s = float(np.median(time_windows(lambda: scale(x), steps, windows, 1, None)))
  chain_s = float(np.median(time_windows(lambda: chain(small), steps, windows, 1, None)))
  device = jax.devices()[0]
  matmul_tflop = 2 * matmul_n**3 / 1e12
  peak, peak_name = peak_tflops(device.device_kind, 'bfloat16')
  return {
      'mode': 'ceilings', 'device_kind': device.device_kind, 'platform': device.platform,
      'matmul_n': matmul_n, 'matmul_dtype': 'bfloat16', 'matmul_tflop': matmul_tflop,
      'matmul_ms': matmul_s * 1e3, 'matmul_tflops': matmul_tflop / matmul_s,
      'matmul_of_peak': matmul_tflop / matmul_s / peak if peak else None, 'peak': peak_name,
      'copy_mib': copy_mib, 'copy_ms': copy_s * 1e3,
      'copy_gb_per_s': 2 * copy_mib * 2**20 / copy_s / 1e9,  # read once, written once
      'chain_length': chain_length, 'chain_kernels': chain_kernels, 'chain_ms': chain_s * 1e3,
      'kernel_us': chain_s / chain_kernels * 1e6,
      'jax': jax.__version__,
  }


def _cases(config) -> List[Case]:
  mode = _MODE.value
  chosen = sweep_cases(jax.devices()[0].platform) if _SWEEP.value else {}
  phases = _PHASES.value or chosen.get('phases') or [config.phase]
  if mode == 'infer':
    phases = ['infer']
  default_batch = [max(config.batch_size // jax.device_count(), 1)]
  batches = [int(b) for b in (_BATCHES.value or chosen.get('batch_sizes') or default_batch)]
  dtypes = _DTYPES.value or chosen.get('dtypes') or [config.compute_dtype]
  return ordered_cases(mode, phases, batches, dtypes)


def ordered_cases(mode: str, phases: Sequence[str], batches: Sequence[int],
                  dtypes: Sequence[str]) -> List[Case]:
  """Every phase of the first dtype and batch before the next: a budget that runs
  out drops the last dtypes and sizes, never a whole phase."""
  return [Case(mode, p, b, d) for d in dtypes for b in batches for p in phases]


def main(argv):
  del argv
  config = flags.FLAGS.config
  if _MODE.value == 'input':
    from mrr_jax.data import throughput  # pylint: disable=g-import-not-at-top
    cli.emit_json_line(throughput.benchmark_input(config), _JSON.value)
    return
  if _MODE.value == 'ceilings':
    ceilings = measure_ceilings(*ceiling_sizes(jax.devices()[0].platform), _STEPS.value,
                                _WINDOWS.value)
    cli.emit_json_line(ceilings, _JSON.value)
    return
  start, rows, last_cost = time.perf_counter(), [], 0.0
  for case in _cases(config):
    elapsed = time.perf_counter() - start
    if _BUDGET.value and rows and elapsed + last_cost > _BUDGET.value:
      rows.append({'mode': case.mode, 'phase': case.phase, 'dtype': case.dtype,
                   'per_device_batch': case.per_device,
                   'skipped': f'budget ({elapsed:.0f} s of {_BUDGET.value:.0f} s used)'})
      cli.emit_json_line(rows[-1], _JSON.value)
      continue
    t0 = time.perf_counter()
    try:
      row = run_case(config, case, _STEPS.value, _WINDOWS.value, _WARMUP.value, _PROFILE.value)
    except Exception as e:  # pylint: disable=broad-except
      # One case that does not fit (e.g. out of memory) must not lose the others.
      row = {'mode': case.mode, 'phase': case.phase, 'dtype': case.dtype,
             'per_device_batch': case.per_device, 'skipped': f'{type(e).__name__}: {e}'[:300]}
    last_cost = time.perf_counter() - t0
    rows.append(row)
    cli.emit_json_line(row, _JSON.value)
  table = markdown_table(rows)
  print(table, flush=True)
  if _MARKDOWN.value:
    with open(_MARKDOWN.value, 'w') as f:
      f.write(table + '\n')


if __name__ == '__main__':
  cli.run(main, config_flags=True)
