"""Dense peak TFLOP/s of the accelerators MFU is computed against (bench, roofline)."""
import re
from typing import Dict, Optional, Tuple

# Dense peak TFLOP/s per device, by the dtype the convolutions run in: bfloat16,
# and float32 as the platform runs it by default (TF32 tensor cores on NVIDIA
# GPUs; one bf16 MXU pass on TPUs, so the bf16 figure). Matched in order by a
# regular expression on device_kind: the H100's PCIe and NVL boards before the
# SXM part, TPU v5p (which reports 'TPU v5') after 'TPU v5 lite'.
PEAKS: Tuple[Tuple[str, str, Dict[str, float]], ...] = (
    (r'^NVIDIA H100.*PCIe', 'H100 PCIe', {'bfloat16': 756.0, 'float32': 378.0}),
    (r'^NVIDIA H100.*NVL', 'H100 NVL', {'bfloat16': 835.0, 'float32': 417.5}),
    (r'^NVIDIA H100', 'H100 SXM', {'bfloat16': 989.4, 'float32': 494.7}),
    (r'^NVIDIA H200', 'H200', {'bfloat16': 989.4, 'float32': 494.7}),
    (r'^NVIDIA A100', 'A100', {'bfloat16': 312.0, 'float32': 156.0}),
    (r'^NVIDIA L4$', 'L4', {'bfloat16': 121.0, 'float32': 60.5}),
    (r'^TPU v4$', 'TPU v4', {'bfloat16': 275.0, 'float32': 275.0}),
    (r'^TPU v5 ?lite$|^TPU v5e$', 'TPU v5e', {'bfloat16': 197.0, 'float32': 197.0}),
    (r'^TPU v5p?$', 'TPU v5p', {'bfloat16': 459.0, 'float32': 459.0}),
    (r'^TPU v6 ?lite$|^TPU v6e$', 'TPU v6e', {'bfloat16': 918.0, 'float32': 918.0}),
)


def peak_tflops(device_kind: str, dtype: str) -> Tuple[Optional[float], str]:
  """(dense peak TFLOP/s per device or None, what was matched or why not)."""
  for pattern, name, peaks in PEAKS:
    if re.search(pattern, device_kind):
      return peaks.get(dtype), name
  return None, f'no peak known for {device_kind!r}: MFU not computed'
