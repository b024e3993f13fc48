"""Where a compiled step's time can go: per-kernel FLOPs and bytes read from optimized HLO text.

XLA's own cost analysis is not always there (a program compiled for a GPU
that is not attached returns none) and counts library calls such as cuDNN
convolutions as zero. This reads the optimized module instead. Every
instruction of the entry computation that launches work (a fusion, a library
call, a copy, a collective) is one kernel. Its bytes are its operands read
once and its results written once; a library call's scratch buffer (a u8
tuple element) does not count, and a fusion that only slices an operand
(directly or through element-wise ops) reads just the slices. Its FLOPs are
those of the convolutions and matrix products in it: 2 (a multiply and an
add) per output element per contracted element, taps on padding or dilation
holes left out as XLA leaves them out.
Element-wise arithmetic is not counted: beside a convolution's it is small,
and such kernels are limited by their bytes anyway.

roofline() turns the kernels into a floor: max(FLOPs / peak, bytes /
bandwidth) per kernel, summed, since a GPU stream runs them one after
another. It leaves out launch gaps and kernels running below the peak rates,
so a measured step is slower; what it says is which kernels could cost the
most, and whether a step could reach a given MFU at all.
"""
import dataclasses
import math
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

DTYPE_BYTES = {'pred': 1, 's4': 0.5, 'u4': 0.5, 's8': 1, 'u8': 1, 's16': 2, 'u16': 2, 's32': 4,
               'u32': 4, 's64': 8, 'u64': 8, 'f16': 2, 'bf16': 2, 'f32': 4, 'f64': 8,
               'c64': 8, 'c128': 16, 'f8e4m3fn': 1, 'f8e5m2': 1, 'token': 0}
# Instructions that launch nothing: views, tuples, the second half of an async pair.
FREE_OPCODES = frozenset({
    'parameter', 'constant', 'get-tuple-element', 'tuple', 'bitcast', 'after-all',
    'opt-barrier', 'partition-id', 'replica-id', 'all-reduce-done', 'all-gather-done',
    'collective-permute-done', 'copy-done', 'async-done', 'send-done', 'recv-done',
    'add-dependency', 'domain'})
COLLECTIVES = ('all-reduce', 'all-gather', 'reduce-scatter', 'collective-permute', 'all-to-all')

_SHAPE = re.compile(r'\b([a-z]+[0-9a-z]*)\[([0-9,]*)\]')
_INSTRUCTION = re.compile(r'^\s*(?:ROOT\s+)?%([\w.\-]+)\s*=\s*(.*)$')
_COMPUTATION = re.compile(r'^(?:ENTRY\s+)?%([\w.\-]+)\s.*\{\s*$')


@dataclasses.dataclass
class Instruction:
  name: str
  opcode: str
  shapes: List[Tuple[str, Tuple[int, ...]]]  # (dtype, dims) of each result element
  operands: List[str]
  attrs: str
  inner: str = ''    # the text between the opcode's brackets (a parameter's number)

  def result_bytes(self) -> float:
    shapes = self.shapes
    if self.opcode == 'custom-call' and len(shapes) > 1 and shapes[-1][0] == 'u8':
      shapes = shapes[:-1]  # a library call's scratch buffer
    return sum(_bytes(s) for s in shapes)


@dataclasses.dataclass
class Kernel:
  name: str
  kind: str          # 'convolution', 'matmul', 'fusion', 'reduction fusion', 'copy', ...
  flops: float
  bytes: float
  op_name: str       # the jax/flax source path XLA kept in the metadata


def xla_cost(compiled) -> Tuple[Optional[float], Optional[float]]:
  """(FLOPs, bytes accessed) per device of a compiled program, by XLA's own cost analysis.

  None where the backend gives none (a compile-only GPU) or a zero; its bytes
  are XLA's estimate of memory traffic after fusion.
  """
  try:
    analysis = compiled.cost_analysis()
  except Exception:  # pylint: disable=broad-except
    return None, None
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0] if analysis else None
  positive = lambda v: float(v) if v and v > 0 else None
  return positive((analysis or {}).get('flops')), positive((analysis or {}).get('bytes accessed'))


def program_memory_mib(compiled) -> Dict[str, float]:
  """The compiled program's temporary and argument memory (MiB), where the backend says."""
  try:
    memory = compiled.memory_analysis()
  except Exception:  # pylint: disable=broad-except
    return {}
  return {'program_temp_mib': memory.temp_size_in_bytes / 2**20,
          'program_args_mib': memory.argument_size_in_bytes / 2**20}


def _bytes(shape: Tuple[str, Tuple[int, ...]]) -> float:
  dtype, dims = shape
  return DTYPE_BYTES.get(dtype, 4) * math.prod(dims)


def _split_top_level(text: str) -> List[str]:
  """Splits on commas outside (), {} and []."""
  parts, depth, start = [], 0, 0
  for i, ch in enumerate(text):
    if ch in '([{':
      depth += 1
    elif ch in ')]}':
      depth -= 1
    elif ch == ',' and depth == 0:
      parts.append(text[start:i])
      start = i + 1
  parts.append(text[start:])
  return [p.strip() for p in parts if p.strip()]


def _closing(text: str, start: int) -> int:
  """Index of the bracket closing the one at text[start]."""
  depth = 0
  for i in range(start, len(text)):
    if text[i] in '([{':
      depth += 1
    elif text[i] in ')]}':
      depth -= 1
      if depth == 0:
        return i
  raise ValueError(f'unbalanced brackets in HLO: {text[start:start + 80]!r}')


def parse_instruction(line: str) -> Optional[Instruction]:
  """One HLO instruction line, or None for anything else."""
  match = _INSTRUCTION.match(line)
  if not match:
    return None
  name, rest = match.groups()
  if rest.startswith('('):
    end = _closing(rest, 0)
    type_text, rest = rest[:end + 1], rest[end + 1:].lstrip()
  else:
    type_text, _, rest = rest.partition(' ')
  shapes = [(d, tuple(int(x) for x in dims.split(',') if x))
            for d, dims in _SHAPE.findall(type_text)]
  opcode_match = re.match(r'([\w\-$]+)\(', rest)
  if not opcode_match:
    return None
  opcode = opcode_match.group(1)
  open_at = opcode_match.end() - 1
  close_at = _closing(rest, open_at)
  operands = [p.split()[-1].lstrip('%') for p in _split_top_level(rest[open_at + 1:close_at])
              if p.split()[-1].startswith('%')]
  return Instruction(name, opcode, shapes, operands, rest[close_at + 1:],
                     rest[open_at + 1:close_at])


def parse_module(text: str) -> Tuple[Dict[str, List[Instruction]], str]:
  """({computation name: its instructions}, the entry computation's name)."""
  computations: Dict[str, List[Instruction]] = {}
  entry, current = None, None
  for line in text.splitlines():
    if current is None:
      match = _COMPUTATION.match(line)
      if match:
        current = match.group(1)
        computations[current] = []
        if line.startswith('ENTRY'):
          entry = current
      continue
    if line.startswith('}'):
      current = None
      continue
    instruction = parse_instruction(line)
    if instruction:
      computations[current].append(instruction)
  if entry is None:
    raise ValueError('no ENTRY computation in the HLO text')
  return computations, entry


def _attr(attrs: str, key: str) -> Optional[str]:
  match = re.search(rf'\b{key}=([^\s,]+)', attrs)
  return match.group(1) if match else None


def _window(attrs: str) -> Dict[str, List[Tuple[int, ...]]]:
  """window={size=3x3 stride=2x2 pad=1_1x1_1 lhs_dilate=2x2} as lists of per-dimension tuples."""
  match = re.search(r'window=\{([^}]*)\}', attrs)
  fields = dict(f.split('=') for f in match.group(1).split()) if match else {}
  size = [int(v) for v in fields['size'].split('x')] if 'size' in fields else []
  per_dim = lambda key, default: ([tuple(int(v) for v in part.split('_'))
                                   for part in fields[key].split('x')]
                                  if key in fields else [default] * len(size))
  return {'size': [(k,) for k in size], 'stride': per_dim('stride', (1,)),
          'pad': per_dim('pad', (0, 0)), 'lhs_dilate': per_dim('lhs_dilate', (1,)),
          'rhs_dilate': per_dim('rhs_dilate', (1,))}


def _taps(in_size: int, out_size: int, kernel: int, stride: int, pad_low: int,
          lhs_dilate: int, rhs_dilate: int) -> int:
  """(output, kernel) position pairs along one dimension that meet an input value.

  Taps on padding or on the holes of a dilated input multiply zeros: XLA's
  cost analysis does not count them, and neither does this.
  """
  count = 0
  for o in range(out_size):
    for k in range(kernel):
      pos = o * stride + k * rhs_dilate - pad_low
      if pos >= 0 and pos % lhs_dilate == 0 and pos // lhs_dilate < in_size:
        count += 1
  return count


def _conv_flops(inst: Instruction, shapes: Dict[str, Tuple[str, Tuple[int, ...]]]) -> float:
  """2 x batch x output features x input features per group x the spatial taps that meet data.

  An HLO convolution reads (input, kernel) -> output. XLA's GPU backend emits
  the forward convolution and both its gradients as cuDNN calls that keep the
  forward convolution's window and dim_labels: forward (input, kernel) ->
  output; backward input (output, kernel) -> input; backward filter (input,
  output) -> kernel.
  """
  labels = _attr(inst.attrs, 'dim_labels')
  if not labels:
    return 0.0
  in_labels, rest = labels.split('_', 1)
  kernel_labels, out_labels = rest.split('->')
  target = _attr(inst.attrs, 'custom_call_target') or ''
  result = inst.shapes[0][1]
  operand = lambda i: shapes[inst.operands[i]][1]
  if 'BackwardInput' in target:
    in_shape, kernel_shape, out_shape = result, operand(1), operand(0)
  elif 'BackwardFilter' in target:
    in_shape, kernel_shape, out_shape = operand(0), result, operand(1)
  else:
    in_shape, kernel_shape, out_shape = operand(0), operand(1), result
  window = _window(inst.attrs)
  taps = 1
  for d in range(len(window['size'])):
    taps *= _taps(in_shape[in_labels.index(str(d))], out_shape[out_labels.index(str(d))],
                  window['size'][d][0], window['stride'][d][0], window['pad'][d][0],
                  window['lhs_dilate'][d][0], window['rhs_dilate'][d][0])
  return (2.0 * out_shape[out_labels.index('b')] * out_shape[out_labels.index('f')]
          * kernel_shape[kernel_labels.index('i')] * taps)


def _dot_flops(inst: Instruction, shapes: Dict[str, Tuple[str, Tuple[int, ...]]]) -> float:
  """2 x output elements x contracted elements (HLO dot or a cuBLAS call)."""
  if inst.opcode == 'dot':
    dims = _attr(inst.attrs, 'lhs_contracting_dims') or '{}'
    contracting = [int(d) for d in dims.strip('{}').split(',') if d]
  else:
    match = re.search(r'"lhs_contracting_dimensions":\[([^\]]*)\]', inst.attrs)
    contracting = [int(d.strip('"')) for d in match.group(1).split(',') if d] if match else []
  lhs = shapes[inst.operands[0]][1]
  return 2.0 * math.prod(inst.shapes[0][1]) * math.prod(lhs[d] for d in contracting)


def _is_conv(inst: Instruction) -> bool:
  target = _attr(inst.attrs, 'custom_call_target') or ''
  return inst.opcode == 'convolution' or (inst.opcode == 'custom-call' and 'conv' in target)


def _is_dot(inst: Instruction) -> bool:
  target = _attr(inst.attrs, 'custom_call_target') or ''
  return inst.opcode == 'dot' or (inst.opcode == 'custom-call' and
                                  ('gemm' in target or 'matmul' in target))


def _fused_body(inst: Instruction,
                computations: Dict[str, List[Instruction]]) -> Optional[List[Instruction]]:
  """The instructions of the computation a fusion calls; None for anything else."""
  called = (_attr(inst.attrs, 'calls') or '').lstrip('%')
  return computations.get(called) if inst.opcode == 'fusion' else None


def _flops(inst: Instruction, computations: Dict[str, List[Instruction]],
           shapes: Dict[str, Tuple[str, Tuple[int, ...]]]) -> float:
  if _is_conv(inst):
    return _conv_flops(inst, shapes)
  if _is_dot(inst):
    return _dot_flops(inst, shapes)
  body = _fused_body(inst, computations)
  if body is None:
    return 0.0
  inner = {i.name: i.shapes[0] for i in body if i.shapes}
  return sum(_flops(i, computations, inner) for i in body)


def _kind(inst: Instruction) -> str:
  if _is_conv(inst):
    return 'convolution'
  if _is_dot(inst):
    return 'matmul'
  if inst.opcode == 'fusion':
    fusion_kind = _attr(inst.attrs, 'kind')
    return {'kInput': 'reduction fusion', 'kLoop': 'loop fusion'}.get(fusion_kind, 'fusion')
  if inst.opcode.startswith(COLLECTIVES):
    return 'collective'
  if inst.opcode in ('copy', 'copy-start'):
    return 'copy'
  return inst.opcode


# Element-wise opcodes: output element i reads element i of each operand, so a
# slice of their result reads only the sliced elements of the operands.
ELEMENTWISE_OPCODES = frozenset({
    'abs', 'add', 'and', 'atan2', 'cbrt', 'ceil', 'clamp', 'compare', 'convert', 'cosine',
    'divide', 'exponential', 'exponential-minus-one', 'floor', 'is-finite', 'log',
    'log-plus-one', 'logistic', 'maximum', 'minimum', 'multiply', 'negate', 'not', 'or',
    'power', 'remainder', 'round-nearest-afz', 'round-nearest-even', 'rsqrt', 'select',
    'sign', 'sine', 'sqrt', 'subtract', 'tan', 'tanh', 'xor'})


def _sliced_elements(value: Instruction, body: Sequence[Instruction]) -> Optional[int]:
  """Elements of `value` that a fusion body reads, when it reads it only through slices.

  Follows element-wise ops of the same shape down to the slices that end
  them (XLA's GPU fusions compute only the elements a slice keeps); None
  when any use reads the value whole.
  """
  total = 0
  for user in (u for u in body if value.name in u.operands):
    if user.opcode in ('slice', 'dynamic-slice') and user.operands[0] == value.name:
      total += math.prod(user.shapes[0][1])
    elif user.opcode in ELEMENTWISE_OPCODES and user.shapes[0][1] == value.shapes[0][1]:
      inner = _sliced_elements(user, body)
      if inner is None:
        return None
      total += inner
    else:
      return None
  return total or None


def _read_bytes(inst: Instruction, index: int, producer: Instruction,
                computations: Dict[str, List[Instruction]]) -> float:
  """Bytes `inst` reads of its index-th operand: all of it, unless it only slices it.

  A fusion whose parameter feeds nothing but slices, directly or through
  element-wise ops, reads just those slices (XLA's GPU backend slices each
  gradient out of one combined all-reduce buffer this way); so does a slice
  outside a fusion.
  """
  whole = producer.result_bytes()
  if inst.opcode in ('slice', 'dynamic-slice') and index == 0:
    return min(whole, inst.result_bytes())
  body = _fused_body(inst, computations)
  if body is None:
    return whole
  param = next((i for i in body if i.opcode == 'parameter' and i.inner.strip() == str(index)),
               None)
  if param is None or len(param.shapes) != 1:
    return whole
  elements = _sliced_elements(param, body)
  if elements is None:
    return whole
  return min(whole, elements * _bytes((param.shapes[0][0], ())))


def kernels(hlo_text: str) -> List[Kernel]:
  """The entry computation's kernels, in schedule order."""
  computations, entry = parse_module(hlo_text)
  body = computations[entry]
  producers = {i.name: i for i in body}
  shapes = {i.name: i.shapes[0] for i in body if i.shapes}
  out = []
  for inst in body:
    if inst.opcode in FREE_OPCODES:
      continue
    read = sum(_read_bytes(inst, i, producers[n], computations)
               for i, n in enumerate(inst.operands) if n in producers)
    op_name = re.search(r'op_name="([^"]*)"', inst.attrs)
    out.append(Kernel(inst.name, _kind(inst), _flops(inst, computations, shapes),
                      read + inst.result_bytes(), op_name.group(1) if op_name else ''))
  return out


# ---------------------------------------------------------------- the roofline


def kernel_group(kernel: Kernel) -> str:
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


def _sums(kernels: Sequence[Kernel], keys: Sequence[str],
          floors_s: Optional[Sequence[float]] = None) -> Dict[str, Dict[str, float]]:
  """{key: kernels, TFLOP, GB (and floor ms, given floors)} over the kernels sharing a key."""
  out: Dict[str, Dict[str, float]] = {}
  for i, (k, key) in enumerate(zip(kernels, keys)):
    entry = out.setdefault(key, {'kernels': 0, 'tflop': 0.0, 'gb': 0.0,
                                 **({'floor_ms': 0.0} if floors_s else {})})
    entry['kernels'] += 1
    entry['tflop'] += k.flops / 1e12
    entry['gb'] += k.bytes / 1e9
    if floors_s:
      entry['floor_ms'] += floors_s[i] * 1e3
  return out


def _totals(kernels: Optional[int], tflop: float, gb: float, peak_tflops: Optional[float],
            bandwidth_gb_s: Optional[float], floor_s: Optional[float],
            min_kernel_us: Optional[float] = None) -> Dict[str, Any]:
  """The fields roofline() and aggregate_roofline() share; the floors None without a floor."""
  compute_s = tflop / peak_tflops if floor_s is not None else None
  memory_s = gb / bandwidth_gb_s if floor_s is not None else None
  ms = lambda v: v * 1e3 if v is not None else None
  return {'kernels': kernels, 'tflop_per_device_step': tflop, 'gb_per_device_step': gb,
          'flop_per_byte': tflop * 1e3 / gb if gb else None,
          'peak_tflops_per_device': peak_tflops, 'bandwidth_gb_s': bandwidth_gb_s,
          'min_kernel_us': min_kernel_us, 'floor_ms': ms(floor_s),
          'compute_floor_ms': ms(compute_s), 'memory_floor_ms': ms(memory_s),
          'mfu_ceiling': compute_s / floor_s if floor_s else None}


def roofline(kernels: Sequence[Kernel], peak_tflops: Optional[float],
             bandwidth_gb_s: Optional[float], top: int,
             min_kernel_us: float = 0.0) -> Dict[str, Any]:
  """Totals, the per-kernel roofline floor and the MFU ceiling it implies, the top groups.

  min_kernel_us: the least time any kernel takes (launch and ramp-up, a
  property of the device and runtime, measured there); 0 leaves it out.
  """
  tflop = sum(k.flops for k in kernels) / 1e12
  gb = sum(k.bytes for k in kernels) / 1e9
  by_kind = _sums(kernels, [k.kind for k in kernels])
  floors = None
  if peak_tflops and bandwidth_gb_s:
    peak, bandwidth = peak_tflops * 1e12, bandwidth_gb_s * 1e9
    rates = [max(k.flops / peak, k.bytes / bandwidth) for k in kernels]
    floors = [max(r, min_kernel_us * 1e-6) for r in rates]
  out = _totals(len(kernels), tflop, gb, peak_tflops, bandwidth_gb_s,
                sum(floors) if floors else None, min_kernel_us)
  if floors and min_kernel_us:
    # How much of the floor the least kernel time adds, and over how many kernels.
    out['kernels_under_min_kernel'] = sum(r < min_kernel_us * 1e-6 for r in rates)
    out['floor_ms_without_min_kernel'] = sum(rates) * 1e3
  out['by_kind'] = dict(sorted(by_kind.items(), key=lambda x: -x[1]['gb']))
  out['groups'] = []
  if floors:
    groups = _sums(kernels, [kernel_group(k) for k in kernels], floors)
    ranked = sorted(groups.items(), key=lambda x: -x[1]['floor_ms'])[:top]
    out['groups'] = [{'group': g, **v, 'floor_share': v['floor_ms'] / out['floor_ms']}
                     for g, v in ranked]
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
  floor_s = (max(tflop / peak_tflops, gb / bandwidth_gb_s)
             if peak_tflops and bandwidth_gb_s else None)
  return {**_totals(None, tflop, gb, peak_tflops, bandwidth_gb_s, floor_s),
          'by_kind': {}, 'groups': []}
