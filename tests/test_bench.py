"""mrr_jax.bench's pure parts: the order a sweep runs in, and the traced window kept out of the timings."""
import jax.numpy as jnp
import numpy as np
import pytest

from mrr_jax import bench, profile_summary


def test_a_budget_cuts_dtypes_and_sizes_before_a_phase():
  cases = bench.ordered_cases('train', ['l1', 'gan'], [16, 64], ['bfloat16', 'float32'])
  assert [(c.dtype, c.per_device, c.phase) for c in cases] == [
      ('bfloat16', 16, 'l1'), ('bfloat16', 16, 'gan'), ('bfloat16', 64, 'l1'),
      ('bfloat16', 64, 'gan'), ('float32', 16, 'l1'), ('float32', 16, 'gan'),
      ('float32', 64, 'l1'), ('float32', 64, 'gan')]


@pytest.mark.parametrize('profiled', [False, True])
def test_the_traced_window_is_extra_and_untimed(profiled, tmp_path):
  calls = []

  def step():
    calls.append(1)
    return jnp.ones(()) * len(calls)

  per_step = bench.time_windows(step, steps=3, windows=2, warmup=1,
                                profile_dir=str(tmp_path) if profiled else None)
  assert len(per_step) == 2 and all(t > 0 for t in per_step)
  # warmup 1 + 2 timed windows of 3 steps, and 3 more steps under the profiler.
  assert len(calls) == 1 + 2 * 3 + (3 if profiled else 0)
  assert len(profile_summary.trace_files(str(tmp_path))) == (1 if profiled else 0)


def test_ceilings_count_the_work_they_time():
  row = bench.measure_ceilings(matmul_n=256, copy_mib=8, steps=2, windows=2)
  assert row['matmul_tflop'] == 2 * 256**3 / 1e12  # n^3 multiply-adds
  assert row['matmul_tflops'] == pytest.approx(row['matmul_tflop'] / (row['matmul_ms'] / 1e3))
  # 8 MiB read and 8 MiB written per pass.
  assert row['copy_gb_per_s'] == pytest.approx(16 * 2**20 / (row['copy_ms'] / 1e3) / 1e9)
  assert row['matmul_ms'] > 0 and row['copy_ms'] > 0
  assert row['matmul_of_peak'] is None and 'no peak known' in row['peak']  # a CPU
  # The chain's kernels are counted in its compiled program: one per link here.
  assert (row['chain_length'], row['chain_kernels']) == (bench.CHAIN_LENGTH, bench.CHAIN_LENGTH)
  assert row['kernel_us'] == pytest.approx(row['chain_ms'] * 1e3 / bench.CHAIN_LENGTH)


def test_the_kernel_chain_keeps_every_link():
  x = np.arange(5 * 3, dtype=np.float32).reshape(5, 3)
  for length in (1, 4, 7):
    np.testing.assert_array_equal(bench.kernel_chain(length)(x),
                                  (-1) ** length * np.roll(x, length, axis=0))


def test_every_table_row_has_the_header_s_cells():
  measured = {'mode': 'train', 'phase': 'l1', 'dtype': 'bfloat16', 'per_device_batch': 16,
              'devices': 8, 'images_per_s': 512.0, 'step_ms': 250.0, 'compile_s': 40.0,
              'executed_tflops': 100.0, 'mfu_executed': 0.1, 'mfu_model': None,
              'accessed_gb_per_s_per_device': 2000.0, 'flop_per_byte': 18.1,
              'peak_device_mib': 9000.0, 'device_kind': 'NVIDIA H200', 'peak': 'H200'}
  skipped = {'mode': 'train', 'phase': 'gan', 'dtype': 'float32', 'per_device_batch': 64,
             'skipped': 'budget (400 s of 420 s used)'}
  head, rule, *rows = bench.markdown_table([measured, skipped]).splitlines()
  assert [line.count('|') for line in (rule, *rows)] == [head.count('|')] * 3
  assert '| 2000.0 | 18.1 | 9000 | NVIDIA H200 (H200) |' in rows[0]
  assert '| 10.0% | - |' in rows[0]
