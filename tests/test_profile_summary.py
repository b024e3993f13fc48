"""mrr_jax.profile_summary: device time by kind of op, from traces built by hand and one jax wrote."""
import gzip
import json

from absl import flags
import jax
import jax.numpy as jnp
import pytest

from mrr_jax import profile_summary


def _main(trace_dir):
  """The CLI's main on fresh flags, as if run with --trace_dir."""
  fv = profile_summary.define_flags(flags.FlagValues())
  fv(['profile_summary', f'--trace_dir={trace_dir}'])
  profile_summary.main(['profile_summary'], fv)


def _meta(pid, process, threads):
  out = [{'ph': 'M', 'pid': pid, 'name': 'process_name', 'args': {'name': process}}]
  out += [{'ph': 'M', 'pid': pid, 'tid': tid, 'name': 'thread_name', 'args': {'name': name}}
          for tid, name in threads.items()]
  return out


def _op(pid, tid, ts, dur, name, **args):
  return {'ph': 'X', 'pid': pid, 'tid': tid, 'ts': ts, 'dur': dur, 'name': name, 'args': args}


def _gpu_trace(with_op_line):
  events = _meta(1, '/device:GPU:0', {7: 'Stream #7(Compute)', 101: 'XLA Modules'})
  events += _meta(701, '/host:CPU', {1: 'python'})
  # Kernels: a cuDNN convolution, a fusion whose name holds 'convert' (not a
  # convolution), an NCCL all-reduce, then a gap of 10 us, then a copy.
  events += [_op(1, 7, 0, 60, 'sm90_xmma_fprop_implicit_gemm', hlo_op='convolution.3'),
             _op(1, 7, 60, 20, 'loop_add_convert_fusion', hlo_op='add_convert_fusion.1'),
             _op(1, 7, 80, 10, 'ncclDevKernel_AllReduce_Sum_f32', hlo_op='all-reduce.2'),
             _op(1, 7, 100, 5, 'cudaMemcpyAsync'),
             _op(1, 101, 0, 105, 'jit_step'),           # the program: not an op
             _op(701, 1, 0, 500, 'PjitFunction(step)')]  # host time: not the device's
  if with_op_line:
    events += _meta(1, '/device:GPU:0', {102: 'XLA Ops'})
    events += [_op(1, 102, 0, 60, 'convolution.3'), _op(1, 102, 60, 20, 'add_convert_fusion.1'),
               _op(1, 102, 80, 10, 'all-reduce.2'), _op(1, 102, 100, 5, 'copy.4')]
  return {'traceEvents': events}


@pytest.mark.parametrize('with_op_line', [True, False])
def test_gpu_trace_by_category(with_op_line):
  summary = profile_summary.summarize(profile_summary.device_events(_gpu_trace(with_op_line)))
  # Either line gives the same four ops, counted once (never kernels and XLA Ops both).
  assert summary['events'] == 4
  assert summary['by_category'] == {'conv/matmul': 60, 'fusion': 20, 'collective': 10, 'copy': 5}
  assert (summary['span_us'], summary['busy_us'], summary['op_us']) == (105, 95, 95)
  assert summary['top_ops'][0] == ('convolution.3', 60, 1)
  text = profile_summary.format_summary('t', summary)
  assert 'device busy 0.1 ms of a 0.1 ms span (90%)' in text
  assert 'conv/matmul        0.06 ms   63.2%' in text


def test_cpu_trace_overlapping_threads():
  events = _meta(701, '/host:CPU', {1: 'tf_XLAEigen/1', 2: 'tf_XLAEigen/2', 3: 'main'})
  events += [_op(701, 1, 0, 100, 'ThunkExecutor::Execute'),  # wraps the ops: not counted
             _op(701, 1, 0, 40, 'convolution.1'), _op(701, 2, 20, 40, 'dot.2'),
             _op(701, 1, 70, 10, 'reduce_fusion'), _op(701, 3, 0, 200, 'step')]
  summary = profile_summary.summarize(profile_summary.device_events({'traceEvents': events}))
  assert summary['by_category'] == {'conv/matmul': 80, 'fusion': 10}
  # 0-60 on two threads (union 60) and 70-80: busy 70 of a span of 80.
  assert (summary['span_us'], summary['busy_us'], summary['op_us']) == (80, 70, 90)


def test_categories_of_names():
  cases = {'convolution.70': 'conv/matmul', 'conv_general_dilated.305': 'conv/matmul',
           'cudnn-conv-bias-activation.2': 'conv/matmul', 'dot.5': 'conv/matmul',
           'nvjet_gemm_tst': 'conv/matmul', 'add_convert_fusion.44': 'fusion',
           'convert_convert_fusion.161': 'fusion', 'all-reduce-start.3': 'collective',
           'transpose.2': 'copy', 'broadcast.1': 'other', 'dot_general_fusion': 'conv/matmul'}
  assert {name: profile_summary.category(name) for name in cases} == cases


def test_a_trace_jax_wrote(tmp_path, capsys):
  conv = jax.jit(lambda x, k: jax.lax.conv_general_dilated(x, k, (1, 1), 'SAME') * 2.0)
  x, k = jnp.ones((2, 3, 64, 64)), jnp.ones((8, 3, 3, 3))
  jax.block_until_ready(conv(x, k))
  with jax.profiler.trace(str(tmp_path)):
    for _ in range(3):
      jax.block_until_ready(conv(x, k))
  files = profile_summary.trace_files(str(tmp_path))
  assert len(files) == 1
  with gzip.open(files[0], 'rt') as f:
    summary = profile_summary.summarize(profile_summary.device_events(json.load(f)))
  assert summary['events'] >= 3  # at least one op per run
  assert summary['by_category'].get('conv/matmul', 0) > 0
  assert 0 < summary['busy_us'] <= summary['span_us']
  _main(tmp_path)
  assert 'conv/matmul' in capsys.readouterr().out


def test_no_trace_is_an_error(tmp_path):
  with pytest.raises(SystemExit, match=r'^error: no \*\.trace\.json\.gz under ' + str(tmp_path)):
    _main(tmp_path)
  bad = tmp_path / 'p' / 'x.trace.json.gz'
  bad.parent.mkdir()
  bad.write_bytes(b'not gzip')
  with pytest.raises(SystemExit, match=f'^error: {bad} is not a readable gzipped JSON trace'):
    _main(tmp_path)
