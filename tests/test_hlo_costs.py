"""Kernels, FLOPs and bytes read from optimized HLO (mrr_jax.hlo_costs), and the roofline command.

A hand-written module in the form XLA's GPU backend writes (cuDNN calls with
scratch buffers, a fusion that slices a combined buffer) with hand-counted
FLOPs and bytes; XLA's own cost analysis of programs compiled for this CPU;
and the roofline arithmetic.
"""
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from mrr_jax import compile_targets, hlo_costs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# x: 2 images 10x10x3; w: 4 output features, 3x3, 3 input; VALID -> 8x8x4.
GPU_STYLE_HLO = """\
HloModule jit_step, is_scheduled=true

%fused_slice (param_0: f32[100]) -> f32[10] {
  %param_0 = f32[100]{0} parameter(0)
  ROOT %slice.1 = f32[10]{0} slice(%param_0), slice={[0:10]}
}

%fused_add (param_0.1: bf16[2,8,8,4], param_1.1: bf16[2,8,8,4]) -> bf16[2,8,8,4] {
  %param_0.1 = bf16[2,8,8,4]{3,2,1,0} parameter(0)
  %param_1.1 = bf16[2,8,8,4]{3,2,1,0} parameter(1)
  ROOT %add.1 = bf16[2,8,8,4]{3,2,1,0} add(%param_0.1, %param_1.1)
}

ENTRY %main.9 (x: bf16[2,10,10,3], w: bf16[4,3,3,3], g: f32[100]) -> (bf16[2,10,10,3], bf16[4,3,3,3], f32[10]) {
  %x = bf16[2,10,10,3]{3,2,1,0} parameter(0)
  %w = bf16[4,3,3,3]{3,2,1,0} parameter(1)
  %g = f32[100]{0} parameter(2)
  %conv = (bf16[2,8,8,4]{3,2,1,0}, u8[1024]{0}) custom-call(%x, %w), window={size=3x3}, dim_labels=b01f_o01i->b01f, custom_call_target="__cudnn$convForward", metadata={op_name="jit(step)/jvp(MRRNet)/encoder_0/conv2d_1/conv_general_dilated"}
  %y = bf16[2,8,8,4]{3,2,1,0} get-tuple-element(%conv), index=0
  %sum = bf16[2,8,8,4]{3,2,1,0} fusion(%y, %y), kind=kLoop, calls=%fused_add, metadata={op_name="jit(step)/transpose(jvp(MRRNet))/encoder_0/norm/add"}
  %dx = (bf16[2,10,10,3]{3,2,1,0}, u8[0]{0}) custom-call(%sum, %w), window={size=3x3}, dim_labels=b01f_o01i->b01f, custom_call_target="__cudnn$convBackwardInput", metadata={op_name="jit(step)/transpose(jvp(MRRNet))/encoder_0/conv2d_1/conv_general_dilated"}
  %dw = (bf16[4,3,3,3]{3,2,1,0}, u8[0]{0}) custom-call(%x, %sum), window={size=3x3}, dim_labels=b01f_o01i->b01f, custom_call_target="__cudnn$convBackwardFilter", metadata={op_name="jit(step)/transpose(jvp(MRRNet))/encoder_0/conv2d_1/conv_general_dilated"}
  %dx.0 = bf16[2,10,10,3]{3,2,1,0} get-tuple-element(%dx), index=0
  %dw.0 = bf16[4,3,3,3]{3,2,1,0} get-tuple-element(%dw), index=0
  %s = f32[10]{0} fusion(%g), kind=kLoop, calls=%fused_slice
  ROOT %t = (bf16[2,10,10,3]{3,2,1,0}, bf16[4,3,3,3]{3,2,1,0}, f32[10]{0}) tuple(%dx.0, %dw.0, %s)
}
"""
# Each of the three convolutions: 2 x batch 2 x 4 out x 3 in x (8 x 3 taps)^2.
CONV_FLOPS = 2 * 2 * 4 * 3 * (8 * 3) ** 2
X_BYTES, W_BYTES, Y_BYTES = 2 * 10 * 10 * 3 * 2, 4 * 3 * 3 * 3 * 2, 2 * 8 * 8 * 4 * 2


def test_gpu_style_kernels_counted_by_hand():
  kernels = hlo_costs.kernels(GPU_STYLE_HLO)
  assert [(k.name, k.kind) for k in kernels] == [
      ('conv', 'convolution'), ('sum', 'loop fusion'), ('dx', 'convolution'),
      ('dw', 'convolution'), ('s', 'loop fusion')]
  assert [k.flops for k in kernels] == [CONV_FLOPS, 0, CONV_FLOPS, CONV_FLOPS, 0]
  assert [k.bytes for k in kernels] == [
      X_BYTES + W_BYTES + Y_BYTES,        # the 1 KiB scratch buffer is not traffic
      2 * Y_BYTES + Y_BYTES,              # each operand read once, the sum written
      Y_BYTES + W_BYTES + X_BYTES,        # (dy, w) -> dx
      X_BYTES + Y_BYTES + W_BYTES,        # (x, dy) -> dw
      10 * 4 + 10 * 4]                    # 10 of the 100 floats read, 10 written
  assert kernels[1].op_name == 'jit(step)/transpose(jvp(MRRNet))/encoder_0/norm/add'


# A combined all-reduce buffer cast and scaled, then cut into two gradients:
# the GPU fusion computes only the 20 elements the slices keep. In the second
# module the same parameter also feeds a reduce, which reads all 100.
SCALED_SLICES_HLO = """\
HloModule jit_step, is_scheduled=true

%fused_cut (param_0: f32[100]) -> (bf16[10], bf16[10]) {
  %param_0 = f32[100]{0} parameter(0)
  %c = f32[] constant(0.5)
  %b = f32[100]{0} broadcast(%c), dimensions={}
  %m = f32[100]{0} multiply(%param_0, %b)
  %v = bf16[100]{0} convert(%m)
  %s0 = bf16[10]{0} slice(%v), slice={[0:10]}
  %s1 = bf16[10]{0} slice(%v), slice={[50:60]}
  ROOT %t = (bf16[10]{0}, bf16[10]{0}) tuple(%s0, %s1)
}

ENTRY %main (g: f32[100]) -> (bf16[10], bf16[10]) {
  %g = f32[100]{0} parameter(0)
  ROOT %cut = (bf16[10]{0}, bf16[10]{0}) fusion(%g), kind=kLoop, calls=%fused_cut
}
"""
WHOLE_READ_HLO = SCALED_SLICES_HLO.replace(
    "  %s1 = bf16[10]{0} slice(%v), slice={[50:60]}\n",
    "  %s1 = bf16[10]{0} slice(%v), slice={[50:60]}\n"
    "  %z = f32[] constant(0)\n"
    "  %r = f32[] reduce(%param_0, %z), dimensions={0}, to_apply=%fused_cut\n")


def test_slices_through_element_wise_ops_read_only_the_sliced_elements():
  [cut] = hlo_costs.kernels(SCALED_SLICES_HLO)
  assert cut.bytes == 20 * 4 + 20 * 2      # 20 floats read, 20 bfloat16s written
  [cut] = hlo_costs.kernels(WHOLE_READ_HLO)
  assert cut.bytes == 100 * 4 + 20 * 2     # the reduce reads the whole parameter


def test_roofline_of_the_hand_counted_module():
  kernels = hlo_costs.kernels(GPU_STYLE_HLO)
  # 1 MFLOP/s and 1 MB/s: each convolution is compute-bound (27648 FLOPs vs
  # 2440 bytes), the fusions memory-bound.
  out = hlo_costs.roofline(kernels, peak_tflops=1e-6, bandwidth_gb_s=1e-3, top=3)
  conv_s, add_s, slice_s = CONV_FLOPS / 1e6, 3 * Y_BYTES / 1e6, 80 / 1e6
  assert out['kernels'] == 5
  assert out['floor_ms'] == pytest.approx((3 * conv_s + add_s + slice_s) * 1e3)
  assert out['compute_floor_ms'] == pytest.approx(3 * conv_s * 1e3)
  assert out['mfu_ceiling'] == pytest.approx(3 * conv_s / (3 * conv_s + add_s + slice_s))
  assert out['by_kind']['convolution'] == {
      'kernels': 3, 'tflop': pytest.approx(3 * CONV_FLOPS / 1e12),
      'gb': pytest.approx(3 * (X_BYTES + W_BYTES + Y_BYTES) / 1e9)}
  # The largest floors first, by kind of layer and direction; the slice has no op_name.
  assert [(g['group'], g['kernels']) for g in out['groups']] == [
      ('backward conv2d (convolution)', 2), ('forward conv2d (convolution)', 1),
      ('backward norm (loop fusion)', 1)]
  assert out['groups'][0]['floor_share'] == pytest.approx(
      2 * conv_s / (3 * conv_s + add_s + slice_s))
  assert hlo_costs.kernel_group(kernels[-1]) == 'forward (no module) (loop fusion)'


def test_a_least_kernel_time_lifts_the_small_kernels():
  kernels = hlo_costs.kernels(GPU_STYLE_HLO)
  # 10 ms per kernel: above the add (3.072 ms) and the slice (0.08 ms), below a conv.
  out = hlo_costs.roofline(kernels, 1e-6, 1e-3, top=1, min_kernel_us=1e4)
  assert out['floor_ms'] == pytest.approx(3 * CONV_FLOPS / 1e6 * 1e3 + 2 * 10.0)
  assert out['compute_floor_ms'] == pytest.approx(3 * CONV_FLOPS / 1e6 * 1e3)
  assert out['kernels_under_min_kernel'] == 2
  assert out['floor_ms_without_min_kernel'] == pytest.approx(
      (3 * CONV_FLOPS / 1e6 + 3 * Y_BYTES / 1e6 + 80 / 1e6) * 1e3)
  assert 'kernels_under_min_kernel' not in hlo_costs.roofline(kernels, 1e-6, 1e-3, top=1)


def test_whole_program_roofline_for_tpu_totals():
  # 0.6 TFLOP and 30 GB on a 197 TFLOP/s, 819 GB/s chip: memory-bound.
  out = hlo_costs.aggregate_roofline(0.6, 30.0, 197.0, 819.0)
  assert out['compute_floor_ms'] == pytest.approx(0.6 / 197.0 * 1e3)
  assert out['memory_floor_ms'] == pytest.approx(30.0 / 819.0 * 1e3)
  assert out['floor_ms'] == out['memory_floor_ms']
  assert out['mfu_ceiling'] == pytest.approx((0.6 / 197.0) / (30.0 / 819.0))
  assert out['flop_per_byte'] == pytest.approx(20.0)
  assert hlo_costs.aggregate_roofline(2.0, 1.0, 100.0, 1000.0)['mfu_ceiling'] == 1.0
  assert hlo_costs.aggregate_roofline(2.0, 1.0, None, 1000.0)['floor_ms'] is None


def test_no_roofline_without_peak_or_bandwidth():
  out = hlo_costs.roofline(hlo_costs.kernels(GPU_STYLE_HLO), None, 4800.0, top=3)
  assert out['tflop_per_device_step'] == pytest.approx(3 * CONV_FLOPS / 1e12)
  assert out['floor_ms'] is None and out['mfu_ceiling'] is None and out['groups'] == []


def _strided_net(x, w1, w2, m):
  """A SAME stride-2 conv (taps on padding), a VALID conv, a matrix product."""
  dn = ('NHWC', 'HWIO', 'NHWC')
  h = jax.nn.relu(jax.lax.conv_general_dilated(x, w1, (2, 2), 'SAME', dimension_numbers=dn))
  h = jax.lax.conv_general_dilated(h, w2, (1, 1), 'VALID', dimension_numbers=dn)
  return jnp.sum(h.reshape(h.shape[0], -1) @ m)


def test_matches_xla_cost_analysis_on_this_cpu():
  """Forward and gradient (input gradient over a zero-dilated tensor) as XLA counts them."""
  args = (jax.ShapeDtypeStruct((4, 33, 33, 8), jnp.float32),
          jax.ShapeDtypeStruct((3, 3, 8, 16), jnp.float32),
          jax.ShapeDtypeStruct((3, 3, 16, 16), jnp.float32),
          jax.ShapeDtypeStruct((15 * 15 * 16, 32), jnp.float32))
  for fn in (_strided_net, jax.grad(_strided_net, argnums=(0, 1, 2, 3))):
    compiled = jax.jit(fn).lower(*args).compile()
    analysis = compiled.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
    kernels = hlo_costs.kernels(compiled.as_text())
    flops = sum(k.flops for k in kernels)
    # XLA also counts the element-wise work (relu, its mask), which this does not.
    assert analysis['flops'] * 0.97 < flops <= analysis['flops']
    assert sum(k.bytes for k in kernels) == pytest.approx(analysis['bytes accessed'], rel=0.02)


def _run(*args, env=None):
  return subprocess.run([sys.executable, '-m', 'mrr_jax.roofline', *args], cwd=ROOT,
                        capture_output=True, text=True, env=env, timeout=600)


def test_cli_on_this_cpu_matches_its_own_compile():
  """--target local: the tiny L1 step's row, its FLOPs as XLA counts the same program."""
  result = _run('--config', 'configs/mrrnet.py:tiny', '--target', 'local', '--phases', 'l1',
                '--batch_sizes', '2', '--dtypes', 'float32', '--peak_tflops', '0.1',
                '--bandwidth_gb_s', '10', '--top', '3')
  assert result.returncode == 0, result.stderr[-2000:]
  rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith('{')]
  assert len(rows) == 1
  row = rows[0]
  assert (row['phase'], row['dtype'], row['per_device_batch'], row['devices']) == \
      ('l1', 'float32', 2, 1)
  assert row['floor_ms'] >= max(row['compute_floor_ms'], row['memory_floor_ms'])
  assert row['floor_ms'] <= row['compute_floor_ms'] + row['memory_floor_ms']
  assert 0 < row['mfu_ceiling'] < 1
  assert row['mfu_ceiling'] == pytest.approx(row['compute_floor_ms'] / row['floor_ms'])
  assert len(row['groups']) == 3 and row['by_kind']['convolution']['kernels'] > 0
  assert '| cpu | l1 | float32 | 2 | 1 |' in result.stdout


def _installed(*parts):
  return any(os.path.isdir(os.path.join(p, *parts)) for p in sys.path if p)


@pytest.mark.parametrize('target, extra', [
    pytest.param('h200', 'cuda12', id='gpu',
                 marks=pytest.mark.skipif(_installed('jax_plugins', 'xla_cuda12'),
                                          reason="jax's CUDA plugin is installed: it would compile")),
    pytest.param('v5e', 'tpu', id='tpu',
                 marks=pytest.mark.skipif(_installed('libtpu'),
                                          reason='libtpu is installed: it would compile'))])
def test_target_without_its_compiler_says_what_to_install(target, extra):
  result = _run('--config', 'configs/mrrnet.py:tiny', '--target', target, '--phases', 'l1')
  assert result.returncode == 1
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith(f'error: --target {target}:')
  assert f'pip install "jax[{extra}]=={jax.__version__}"' in lines[0]


@pytest.mark.parametrize('name', sorted(compile_targets.TARGETS))
def test_target_descriptions_name_a_known_peak(name):
  with open(os.path.join(compile_targets.TARGETS_DIR, compile_targets.TARGETS[name])) as f:
    text = f.read()
  field = compile_targets._target_field  # pylint: disable=protected-access
  kind = field(text, 'device_description_str')
  from mrr_jax.peaks import peak_tflops  # pylint: disable=g-import-not-at-top
  assert peak_tflops(kind, 'bfloat16')[0] == 989.4
  assert float(field(text, 'memory_bandwidth')) == {'h100': 3.35232e12, 'h200': 4.8e12}[name]
