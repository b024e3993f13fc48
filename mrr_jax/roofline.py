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
aggregate_roofline), not a bound. Per case it prints one JSON line, then a
table and, for GPUs, the groups of kernels (by kind of layer, forward or
backward) with the largest floors. On a GPU the floor is a lower bound on the step time, and the
MFU ceiling it implies is the most the step can reach as compiled. No
autotuning runs without the device, so the fusion is what the device gets,
but algorithm choices may differ.

--target local compiles for the attached backend instead (e.g. this CPU, for
the tests), with --peak_tflops and --bandwidth_gb_s giving the roofline.
"""
import dataclasses
import json
import os
import re
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from absl import flags
import ml_collections
from ml_collections import config_flags

from mrr_jax import cli, hlo_costs
from mrr_jax.peaks import peak_tflops

TARGETS_DIR = os.path.join(os.path.dirname(__file__), 'gpu_targets')
TARGETS = {'h100': 'h100_sxm.txtpb', 'h200': 'h200.txtpb'}
# TPUs: libtpu compiles for a named slice without one (its smallest 4-chip
# layouts); per-chip HBM bandwidth from the datasheets, GB/s.
TPU_TARGETS = {'v4': ('v4:2x2x1', 1200.0), 'v5e': ('v5e:2x2', 819.0),
               'v5p': ('v5p:2x2x1', 2765.0), 'v6e': ('v6e:2x2', 1640.0)}

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


class TargetError(Exception):
  """The target cannot be compiled for here (one line, for the user)."""


@dataclasses.dataclass
class Target:
  name: str
  device_kind: str
  devices: List[Any]
  peak_tflops: Dict[str, float]          # by dtype
  bandwidth_gb_s: Optional[float]
  platform: str = 'cuda'                 # 'cuda', 'tpu' or the local backend's


def _target_field(text: str, key: str) -> Optional[str]:
  match = re.search(rf'^\s*{key}:\s*"?([^"\n]*)"?\s*$', text, re.MULTILINE)
  return match.group(1) if match else None


def gpu_target(name: str, devices: int) -> Target:
  """Compile-only devices of the named GPU, from its description file."""
  import jax  # pylint: disable=g-import-not-at-top
  from jax.experimental import topologies  # pylint: disable=g-import-not-at-top
  with open(os.path.join(TARGETS_DIR, TARGETS[name])) as f:
    text = f.read()
  kind = _target_field(text, 'device_description_str')
  try:
    topology = topologies.get_topology_desc(platform='cuda', target_config=text,
                                            topology=f'1x1x{devices}')
  except Exception as e:  # pylint: disable=broad-except
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise TargetError(
        f'--target {name}: jax cannot compile for CUDA here ({first[:200]}). It needs jax\'s '
        f'CUDA plugin, which compiles without a GPU: pip install "jax[cuda12]=={jax.__version__}"'
    ) from e
  peaks = {d: peak_tflops(kind, d)[0] for d in ('bfloat16', 'float32')}
  bandwidth = float(_target_field(text, 'memory_bandwidth')) / 1e9
  return Target(name, kind, list(topology.devices), peaks, bandwidth)


def tpu_target(name: str, devices: int) -> Target:
  """Compile-only chips of a TPU slice (libtpu, no TPU attached)."""
  import jax  # pylint: disable=g-import-not-at-top
  from jax.experimental import topologies  # pylint: disable=g-import-not-at-top
  topology_name, bandwidth = TPU_TARGETS[name]
  try:
    chips = topologies.get_topology_desc(topology_name=topology_name, platform='tpu').devices
  except Exception as e:  # pylint: disable=broad-except
    lines = [l for l in str(e).strip().splitlines() if l.strip()]
    raise TargetError(
        f'--target {name}: jax cannot compile for TPU here ({(lines or [type(e).__name__])[0][:200]}).'
        f' It needs libtpu, which compiles without a TPU: pip install "jax[tpu]=={jax.__version__}"'
    ) from e
  if devices > len(chips):
    raise TargetError(f'--devices {devices}: the {topology_name} slice has {len(chips)} chips')
  kind = chips[0].device_kind
  peaks = {d: peak_tflops(kind, d)[0] for d in ('bfloat16', 'float32')}
  return Target(name, kind, list(chips[:devices]), peaks, bandwidth, 'tpu')


def local_target(devices: int) -> Target:
  import jax  # pylint: disable=g-import-not-at-top
  local = jax.local_devices()
  if devices > len(local):
    raise TargetError(f'--devices {devices}: this host has {len(local)} '
                      f'{local[0].platform} devices')
  kind = local[0].device_kind
  peaks = {d: peak_tflops(kind, d)[0] for d in ('bfloat16', 'float32')}
  return Target('local', kind, local[:devices], peaks, None, local[0].platform)


def _abstract_step_args(config, run, devices: int, per_device: int):
  """ShapeDtypeStructs of (state, batch, *constants) with pmap's leading device axis."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  stacked = lambda x: jax.ShapeDtypeStruct((devices,) + np.shape(x), jnp.asarray(x).dtype)
  # The constants are already replicated over the local devices: drop that axis.
  restacked = lambda x: jax.ShapeDtypeStruct((devices,) + x.shape[1:], x.dtype)
  state = jax.tree.map(stacked, run.state)
  image = jax.ShapeDtypeStruct((devices, per_device, 128, 128, 3), jnp.float32)
  constants = [jax.tree.map(restacked, c) for c in run.step_fn.constants]
  return state, {'input': image, 'hr': image}, constants


def compile_step(base_config: ml_collections.ConfigDict, phase: str, per_device: int,
                 dtype: str, target: Target) -> Tuple[str, Dict[str, Any]]:
  """(optimized HLO text, compile facts) of the phase's pmapped train step for `target`."""
  import jax  # pylint: disable=g-import-not-at-top
  from mrr_jax.models import kernels  # pylint: disable=g-import-not-at-top
  from mrr_jax.train import parallel, setup, steps  # pylint: disable=g-import-not-at-top
  config = base_config.copy_and_resolve_references()
  with config.unlocked():
    config.phase = phase
    config.compute_dtype = dtype
    config.batch_size = per_device * jax.local_device_count()
    config.kernels = 'plain' if target.name != 'local' else config.kernels
    if phase == 'gan' and not config.vgg_weights:
      config.allow_random_vgg = True
  run = setup.create(config, steps_per_epoch=1000)
  state, batch, constants = _abstract_step_args(config, run, len(target.devices), per_device)
  step = steps.phase_step(config, run.generator, run.discriminator, run.g_tx, run.d_tx,
                          run.pcp_mode)
  with kernels.forced(config.kernels):
    pmapped = jax.pmap(step, axis_name=parallel.AXIS, donate_argnums=(0,),
                       devices=target.devices)
    t0 = time.perf_counter()
    compiled = pmapped.lower(state, batch, *constants).compile()
  compile_s = time.perf_counter() - t0
  facts = {'compile_s': compile_s, 'kernels_mode': config.kernels}
  try:
    memory = compiled.memory_analysis()
    facts['program_temp_mib'] = memory.temp_size_in_bytes / 2**20
    facts['program_args_mib'] = memory.argument_size_in_bytes / 2**20
  except Exception:  # pylint: disable=broad-except
    pass
  try:  # XLA's own counts, where the backend gives them (TPU, CPU; not a compile-only GPU).
    analysis = compiled.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
    if analysis and analysis.get('flops', 0) > 0:
      facts['xla_tflop'] = analysis['flops'] / 1e12
      facts['xla_gb'] = analysis['bytes accessed'] / 1e9
  except Exception:  # pylint: disable=broad-except
    pass
  return compiled.as_text(), facts


def kernel_group(kernel: hlo_costs.Kernel) -> str:
  """'backward norm (reduction fusion)': which kind of layer a kernel came from.

  The innermost flax module in XLA's op_name metadata, numbered modules
  merged (conv2d_3 -> conv2d), jax's transforms and the primitive dropped;
  '(no module)' for the optimizer and other code outside the models.
  """
  parts = [p for p in kernel.op_name.split('/') if p]
  direction = 'backward' if any(p.startswith('transpose(') for p in parts) else 'forward'
  modules = [re.sub(r'_\d+$', '', p) for p in parts[:-1]
             if not p.startswith(('jit(', 'jvp(', 'transpose(', 'pmap(', 'shard_map',
                                  'checkpoint', 'rematted_computation', 'remat'))]
  return f'{direction} {modules[-1] if modules else "(no module)"} ({kernel.kind})'


def roofline(kernels: Sequence[hlo_costs.Kernel], peak_tflops: Optional[float],
             bandwidth_gb_s: Optional[float], top: int,
             min_kernel_us: float = 0.0) -> Dict[str, Any]:
  """Totals, the per-kernel roofline floor and the MFU ceiling it implies, the top groups.

  min_kernel_us: the least time any kernel takes (launch and ramp-up, a
  property of the device and runtime, measured there); 0 leaves it out.
  """
  flops = sum(k.flops for k in kernels)
  accessed = sum(k.bytes for k in kernels)
  by_kind: Dict[str, List[float]] = {}
  for k in kernels:
    entry = by_kind.setdefault(k.kind, [0, 0.0, 0.0])
    entry[0] += 1
    entry[1] += k.flops / 1e12
    entry[2] += k.bytes / 1e9
  out: Dict[str, Any] = {
      'kernels': len(kernels), 'tflop_per_device_step': flops / 1e12,
      'gb_per_device_step': accessed / 1e9, 'flop_per_byte': flops / accessed if accessed else None,
      'by_kind': {kind: {'kernels': n, 'tflop': f, 'gb': b}
                  for kind, (n, f, b) in sorted(by_kind.items(), key=lambda x: -x[1][2])},
      'peak_tflops_per_device': peak_tflops, 'bandwidth_gb_s': bandwidth_gb_s,
      'min_kernel_us': min_kernel_us, 'floor_ms': None, 'compute_floor_ms': None, 'memory_floor_ms': None, 'mfu_ceiling': None,
      'groups': []}
  if not (peak_tflops and bandwidth_gb_s):
    return out
  peak, bandwidth = peak_tflops * 1e12, bandwidth_gb_s * 1e9
  floors = [max(k.flops / peak, k.bytes / bandwidth, min_kernel_us * 1e-6) for k in kernels]
  floor = sum(floors)
  out.update(floor_ms=floor * 1e3, compute_floor_ms=flops / peak * 1e3,
             memory_floor_ms=accessed / bandwidth * 1e3,
             mfu_ceiling=flops / peak / floor if floor else None)
  groups: Dict[str, List[float]] = {}
  for k, f in zip(kernels, floors):
    entry = groups.setdefault(kernel_group(k), [0, 0.0, 0.0, 0.0])
    entry[0] += 1
    entry[1] += k.flops / 1e12
    entry[2] += k.bytes / 1e9
    entry[3] += f * 1e3
  ranked = sorted(groups.items(), key=lambda x: -x[1][3])[:top]
  out['groups'] = [{'group': g, 'kernels': n, 'tflop': f, 'gb': b, 'floor_ms': t,
                    'floor_share': t / (floor * 1e3)} for g, (n, f, b, t) in ranked]
  return out


def aggregate_roofline(tflop: float, gb: float, peak_tflops: Optional[float],
                       bandwidth_gb_s: Optional[float]) -> Dict[str, Any]:
  """roofline()'s fields from whole-program totals: the floor is max(compute, memory).

  For TPU programs, from XLA's TPU cost analysis. A TPU program's kernels are
  not laid out one per instruction as on a GPU (asynchronous copies between
  memories, convolutions inside fusions), so no per-kernel sum is made. Its
  bytes are the cost model's: it counts a convolution's input several times
  (for a 3x3 conv on 128x128, 9.5x the input and output bytes at 32 channels,
  4x at 128 on a v5e), so this floor is that model's estimate, not a bound.
  """
  out = {'kernels': None, 'tflop_per_device_step': tflop, 'gb_per_device_step': gb,
         'flop_per_byte': tflop * 1e12 / (gb * 1e9) if gb else None, 'by_kind': {},
         'peak_tflops_per_device': peak_tflops, 'bandwidth_gb_s': bandwidth_gb_s,
         'min_kernel_us': None, 'floor_ms': None, 'compute_floor_ms': None,
         'memory_floor_ms': None, 'mfu_ceiling': None, 'groups': []}
  if peak_tflops and bandwidth_gb_s:
    compute, memory = tflop / peak_tflops * 1e3, gb / bandwidth_gb_s * 1e3
    out.update(floor_ms=max(compute, memory), compute_floor_ms=compute, memory_floor_ms=memory,
               mfu_ceiling=compute / max(compute, memory))
  return out


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
  for g in row['groups']:
    lines.append(f'  {g["floor_share"]:6.1%}  {g["floor_ms"]:7.3f} ms  {g["gb"]:6.2f} GB  '
                 f'{g["tflop"]:6.3f} TFLOP  {g["kernels"]:4d} kernels  {g["group"]}')
  return '\n'.join(lines)


def _emit(row: Dict[str, Any]) -> None:
  line = json.dumps(row)
  print(line, flush=True)
  if _JSON.value:
    with open(_JSON.value, 'a') as f:
      f.write(line + '\n')


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
        peak = _PEAK.value or target.peak_tflops.get(dtype)
        bandwidth = _BANDWIDTH.value or target.bandwidth_gb_s
        if target.platform == 'tpu':
          row['cost_source'] = 'XLA TPU cost analysis (whole program)'
          row.update(aggregate_roofline(facts['xla_tflop'], facts['xla_gb'], peak, bandwidth))
        else:
          row['cost_source'] = 'optimized HLO, per kernel (mrr_jax.hlo_costs)'
          row.update(roofline(hlo_costs.kernels(hlo), peak, bandwidth, _TOP.value,
                              _MIN_KERNEL.value))
        rows.append(row)
        _emit(row)
  print(markdown_table(rows), flush=True)
  for row in rows:
    if row['groups']:
      print(groups_text(row), flush=True)


if __name__ == '__main__':
  cli.run(main, config_flags=True)
