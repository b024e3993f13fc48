r"""The train steps compiled for a GPU or TPU that is not attached, and where their time can go.

  pip install "jax[cuda12]==0.10.2"   # jax's CUDA plugin (5.6 GB): it compiles without a GPU
  python -m mrr_jax.roofline --config configs/mrrnet.py --target h200 --phases l1,gan \
      --batch_sizes 16 --dtypes bfloat16 --json runs/roofline.jsonl
  pip install "jax[tpu]==0.10.2"      # libtpu (1.5 GB venv): it compiles without a TPU
  python -m mrr_jax.roofline --config configs/mrrnet.py --target v5e --phases l1

XLA's GPU compiler runs on a CPU machine given a description of the GPU
(mrr_jax/gpu_targets/*.txtpb); libtpu compiles for a named TPU slice. This
compiles the trainer's own pmapped step for the target (the plain kernels,
synthetic shapes, a random VGG19) and reads what came out. For a GPU, the
optimized program (mrr_jax.hlo_costs): the kernels it launches, their FLOPs
and bytes, and each one's roofline floor on that GPU (its datasheet peak for
the dtype, its memory bandwidth), summed. For a TPU, XLA's own cost analysis
of the whole program against the chip's peak and bandwidth: an estimate by
its cost model, which counts convolution inputs several times (see
hlo_costs.aggregate_roofline), not a bound. Per case it prints one JSON line, then a
table and, for GPUs, the groups of kernels (by kind of layer, forward or
backward) with the largest floors. On a GPU the floor is a lower bound on the step time, and the
MFU ceiling it implies is the most the step can reach as compiled. No
autotuning runs without the device, so the fusion is what the device gets,
but algorithm choices may differ.

--target local compiles for the attached backend instead (e.g. this CPU, for
the tests), with --peak_tflops and --bandwidth_gb_s giving the roofline.
"""
import os
import sys
from typing import Any, Dict, Sequence

from absl import flags
from ml_collections import config_flags

from mrr_jax import cli, hlo_costs
from mrr_jax.compile_targets import (TARGETS, TPU_TARGETS, TargetError, compile_step, gpu_target,
                                     local_target, tpu_target)

config_flags.DEFINE_config_file('config', None, 'Configuration file.', lock_config=True)
_TARGET = flags.DEFINE_enum('target', 'h200', sorted(TARGETS) + sorted(TPU_TARGETS) + ['local'],
                            'The GPU or TPU to compile for, or the attached backend.')
_DEVICES = flags.DEFINE_integer('devices', 1, 'Devices the step is pmapped over (collectives '
                                'appear from 2).')
_PHASES = flags.DEFINE_list('phases', ['l1', 'gan'], 'Train steps: l1, gan.')
_BATCHES = flags.DEFINE_list('batch_sizes', ['16'], 'Per-device batch sizes.')
_DTYPES = flags.DEFINE_list('dtypes', ['bfloat16'], 'Compute dtypes.')
_PEAK = flags.DEFINE_float('peak_tflops', None, 'Dense peak TFLOP/s per device (default: '
                           'mrr_jax.peaks\'s table for the target).')
_BANDWIDTH = flags.DEFINE_float('bandwidth_gb_s', None, 'Memory bandwidth per device, GB/s '
                                '(default: the target description\'s).')
_MIN_KERNEL = flags.DEFINE_float('min_kernel_us', 0.0, 'The least time one kernel takes on the '
                                 'device (launch, ramp-up), if known; 0: pure roofline.')
_TOP = flags.DEFINE_integer('top', 12, 'Kernel groups listed per case.')
_JSON = flags.DEFINE_string('json', None, 'Also append the JSON lines to this file.')
_HLO_DIR = flags.DEFINE_string('hlo_dir', None, 'Also write each optimized program here.')
flags.mark_flags_as_required(['config'])


def _fmt(value, spec: str) -> str:
  return '-' if value is None else format(value, spec)


def markdown_table(rows: Sequence[Dict[str, Any]]) -> str:
  head = ('| target | phase | dtype | batch/dev | devices | kernels | TFLOP | GB | FLOP/byte | '
          'floor ms | compute floor ms | memory floor ms | MFU ceiling | temp MiB | compile s |')
  columns = head.count('|') - 1
  lines = [head, '|' + '|'.join(['---'] * columns) + '|']
  for r in rows:
    lines.append(
        f'| {r["device_kind"]} | {r["phase"]} | {r["dtype"]} | {r["per_device_batch"]} | '
        f'{r["devices"]} | {_fmt(r["kernels"], "d")} | {r["tflop_per_device_step"]:.3f} | '
        f'{r["gb_per_device_step"]:.2f} | {_fmt(r["flop_per_byte"], ".0f")} | '
        f'{_fmt(r["floor_ms"], ".2f")} | {_fmt(r["compute_floor_ms"], ".2f")} | '
        f'{_fmt(r["memory_floor_ms"], ".2f")} | {_fmt(r["mfu_ceiling"], ".1%")} | '
        f'{_fmt(r.get("program_temp_mib"), ".0f")} | {r["compile_s"]:.1f} |')
  return '\n'.join(lines)


def groups_text(row: Dict[str, Any]) -> str:
  lines = [f'{row["phase"]} {row["dtype"]} batch {row["per_device_batch"]}/device on '
           f'{row["device_kind"]}: largest floors']
  if 'kernels_under_min_kernel' in row:
    lines[0] += (f' ({row["kernels_under_min_kernel"]} of {row["kernels"]} kernels lifted to '
                 f'{row["min_kernel_us"]:g} us: floor {row["floor_ms_without_min_kernel"]:.2f} '
                 f'-> {row["floor_ms"]:.2f} ms)')
  for g in row['groups']:
    lines.append(f'  {g["floor_share"]:6.1%}  {g["floor_ms"]:7.3f} ms  {g["gb"]:6.2f} GB  '
                 f'{g["tflop"]:6.3f} TFLOP  {g["kernels"]:4d} kernels  {g["group"]}')
  return '\n'.join(lines)


def main(argv):
  cli.check_args(argv, flags.FLAGS, ['config'])
  if _TARGET.value != 'local':
    import jax  # pylint: disable=g-import-not-at-top
    # The model and its abstract state are built on the CPU; only the compile
    # targets the GPU or TPU, through compile-only devices.
    jax.config.update('jax_platforms', 'cpu')
  try:
    if _TARGET.value == 'local':
      target = local_target(_DEVICES.value)
    elif _TARGET.value in TPU_TARGETS:
      target = tpu_target(_TARGET.value, _DEVICES.value)
    else:
      target = gpu_target(_TARGET.value, _DEVICES.value)
  except TargetError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)
  rows = []
  for dtype in _DTYPES.value:
    for per_device in [int(b) for b in _BATCHES.value]:
      for phase in _PHASES.value:
        hlo, facts = compile_step(flags.FLAGS.config, phase, per_device, dtype, target)
        if _HLO_DIR.value:
          os.makedirs(_HLO_DIR.value, exist_ok=True)
          path = os.path.join(_HLO_DIR.value, f'{target.name}_{phase}_b{per_device}_{dtype}.hlo')
          with open(path, 'w') as f:
            f.write(hlo)
        row = {'target': target.name, 'device_kind': target.device_kind, 'phase': phase,
               'dtype': dtype, 'per_device_batch': per_device, 'devices': len(target.devices),
               **facts}
        peak = _PEAK.value or target.peak(dtype)
        bandwidth = _BANDWIDTH.value or target.bandwidth_gb_s
        if target.platform == 'tpu' and 'xla_tflop' in facts:
          row['cost_source'] = 'XLA TPU cost analysis (whole program)'
          row.update(hlo_costs.aggregate_roofline(facts['xla_tflop'], facts['xla_gb'], peak,
                                                  bandwidth))
        else:
          row['cost_source'] = 'optimized HLO, per kernel (mrr_jax.hlo_costs)'
          row.update(hlo_costs.roofline(hlo_costs.kernels(hlo), peak, bandwidth, _TOP.value,
                                        _MIN_KERNEL.value))
        rows.append(row)
        cli.emit_json_line(row, _JSON.value)
  print(markdown_table(rows), flush=True)
  for row in rows:
    if row['groups']:
      print(groups_text(row), flush=True)


if __name__ == '__main__':
  cli.run(main, config_flags=True)
