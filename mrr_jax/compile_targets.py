"""Compile-only accelerators to compile the train steps for, and the compile itself.

A GPU from its description file (mrr_jax/gpu_targets/*.txtpb, through jax's
CUDA plugin), a TPU slice by name (through libtpu), or the attached backend;
compile_step builds the trainer's pmapped step for one of them on abstract
shapes and returns the optimized program (python -m mrr_jax.roofline reads it).
"""
import dataclasses
import os
import re
import time
from typing import Any, Dict, List, Optional, Tuple

import ml_collections

from mrr_jax import hlo_costs
from mrr_jax.peaks import peak_tflops

TARGETS_DIR = os.path.join(os.path.dirname(__file__), 'gpu_targets')
TARGETS = {'h100': 'h100_sxm.txtpb', 'h200': 'h200.txtpb'}
# TPUs: libtpu compiles for a named slice without one (its smallest 4-chip
# layouts); per-chip HBM bandwidth from the datasheets, GB/s.
TPU_TARGETS = {'v4': ('v4:2x2x1', 1200.0), 'v5e': ('v5e:2x2', 819.0),
               'v5p': ('v5p:2x2x1', 2765.0), 'v6e': ('v6e:2x2', 1640.0)}


class TargetError(Exception):
  """The target cannot be compiled for here (one line, for the user)."""


@dataclasses.dataclass
class Target:
  name: str
  device_kind: str
  devices: List[Any]
  bandwidth_gb_s: Optional[float]
  platform: str = 'cuda'                 # 'cuda', 'tpu' or the local backend's

  def peak(self, dtype: str) -> Optional[float]:
    """Dense peak TFLOP/s per device for dtype, from mrr_jax.peaks (None: kind unknown)."""
    return peak_tflops(self.device_kind, dtype)[0]


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
  bandwidth = float(_target_field(text, 'memory_bandwidth')) / 1e9
  return Target(name, kind, list(topology.devices), bandwidth)


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
        f'--target {name}: jax cannot compile for TPU here '
        f'({(lines or [type(e).__name__])[0][:200]}).'
        f' It needs libtpu, which compiles without a TPU: pip install "jax[tpu]=={jax.__version__}"'
    ) from e
  if devices > len(chips):
    raise TargetError(f'--devices {devices}: the {topology_name} slice has {len(chips)} chips')
  kind = chips[0].device_kind
  return Target(name, kind, list(chips[:devices]), bandwidth, 'tpu')


def local_target(devices: int) -> Target:
  import jax  # pylint: disable=g-import-not-at-top
  local = jax.local_devices()
  if devices > len(local):
    raise TargetError(f'--devices {devices}: this host has {len(local)} '
                      f'{local[0].platform} devices')
  kind = local[0].device_kind
  return Target('local', kind, local[:devices], None, local[0].platform)


def _abstract_step_args(run, devices: int, per_device: int):
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


def step_config(base: ml_collections.ConfigDict, phase: str, dtype: str,
                batch_size: int) -> ml_collections.ConfigDict:
  """base for one benchmarked or compiled step: the phase, dtype and global batch, and a
  random VGG19 for a GAN step without VGG weights (bench, compile_step)."""
  config = base.copy_and_resolve_references()
  with config.unlocked():
    config.phase = phase
    config.batch_size = batch_size
    config.compute_dtype = dtype
    if phase == 'gan' and not config.vgg_weights:
      config.allow_random_vgg = True
  return config


def compile_step(base_config: ml_collections.ConfigDict, phase: str, per_device: int,
                 dtype: str, target: Target) -> Tuple[str, Dict[str, Any]]:
  """(optimized HLO text, compile facts) of the phase's pmapped train step for `target`."""
  import jax  # pylint: disable=g-import-not-at-top
  from mrr_jax.train import setup, steps  # pylint: disable=g-import-not-at-top
  config = step_config(base_config, phase, dtype, per_device * jax.local_device_count())
  if target.name != 'local':
    with config.unlocked():
      config.kernels = 'plain'  # what 'auto' picks on the GPU or TPU compiled for
  run = setup.create(config, steps_per_epoch=1000)
  state, batch, constants = _abstract_step_args(run, len(target.devices), per_device)
  step = steps.phase_step(config, run.generator, run.discriminator, run.g_tx, run.d_tx,
                          run.pcp_mode)
  t0 = time.perf_counter()  # setup.create chose the kernels for what is traced from here
  compiled = steps.pmap_step(step, target.devices).lower(state, batch, *constants).compile()
  compile_s = time.perf_counter() - t0
  facts = {'compile_s': compile_s, 'kernels_mode': config.kernels,
           **hlo_costs.program_memory_mib(compiled)}
  flops, accessed = hlo_costs.xla_cost(compiled)  # TPU, CPU; none for a compile-only GPU
  if flops and accessed:
    facts.update(xla_tflop=flops / 1e12, xla_gb=accessed / 1e9)
  return compiled.as_text(), facts
