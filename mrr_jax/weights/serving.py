"""A serving artifact: the whole 16x16 -> 128x128 model as one jax.export program.

`python -m mrr_jax.export ... --serving` adds three files to an export:
serving.jaxexport (the serialised StableHLO of uint8 LR [b, 16, 16, 3] ->
uint8 SR [b, 128, 128, 3], b symbolic, weights inside, lowered for cpu, cuda
and tpu), serving.json (what it takes and gives, the platforms, the jax that
wrote it) and load_serving.py (the few lines that run it with jax alone: no
mrr_jax, flax or numpy model code). The program does what `infer` does: PIL's
bicubic 16 -> 128 (fixed point, bit for bit), the generator, clip, map to
[0, 255], round.
"""
import json
import os
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

SERVING_FILE = 'serving.jaxexport'
SERVING_INFO = 'serving.json'
SERVING_LOADER = 'load_serving.py'
SERVING_FILES = (SERVING_FILE, SERVING_INFO, SERVING_LOADER)
PLATFORMS = ('cpu', 'cuda', 'tpu')
_PRECISION_BITS = 22  # Pillow's fixed-point resampling (mrr_jax.data.resize)

LOADER = '''"""Runs an mrr_jax serving export with jax alone.

  python load_serving.py LR.png [more.png ...]   # writes <name>_sr.png beside each (needs Pillow)

or, from Python: sr = load(folder)(lr) with lr a uint8 [b, 16, 16, 3] array.
"""
import os
import sys

import jax
import numpy as np


def load(folder=os.path.dirname(os.path.abspath(__file__))):
  with open(os.path.join(folder, 'serving.jaxexport'), 'rb') as f:
    exported = jax.export.deserialize(bytearray(f.read()))
  return lambda lr: np.asarray(exported.call(np.asarray(lr, np.uint8)))


if __name__ == '__main__':
  from PIL import Image
  run = load()
  for path in sys.argv[1:]:
    lr = np.asarray(Image.open(path).convert('RGB').resize((16, 16), Image.BICUBIC))
    Image.fromarray(run(lr[None])[0]).save(os.path.splitext(path)[0] + '_sr.png')
'''


def _fixed_point_weights(in_size: int, out_size: int) -> np.ndarray:
  """Pillow's bicubic weights as int32 multiples of 2**-22, (out, in)."""
  from mrr_jax.data import resize  # pylint: disable=g-import-not-at-top
  weights = resize.pil_bicubic_weights(in_size, out_size)
  return np.round(weights * 2.0 ** _PRECISION_BITS).astype(np.int32)


def _pil_pass(x: jax.Array, weights: np.ndarray, axis: int) -> jax.Array:
  """One Pillow resampling pass along `axis` of int32 pixels, rounded to [0, 255].

  Elementwise products and a sum (no integer matmul, which not every backend
  has); exact: |sum| < 255 * 1.25 * 2**22 < 2**31.
  """
  x = jnp.moveaxis(x, axis, -2)                                # [..., in, C]
  acc = (x[..., None, :, :] * jnp.asarray(weights)[:, :, None]).sum(-2)  # [..., out, C]
  acc = jnp.right_shift(acc + (1 << (_PRECISION_BITS - 1)), _PRECISION_BITS)
  return jnp.moveaxis(jnp.clip(acc, 0, 255), -2, axis)


def bicubic_upsample(lr_u8: jax.Array, size: int = 128) -> jax.Array:
  """PIL BICUBIC resize of uint8 [b, h, w, 3] to [b, size, size, 3] int32, bit for bit."""
  x = lr_u8.astype(jnp.int32)
  x = _pil_pass(x, _fixed_point_weights(x.shape[2], size), axis=2)  # horizontal first, as PIL
  return _pil_pass(x, _fixed_point_weights(x.shape[1], size), axis=1)


def serving_function(generator, params: Mapping[str, Any]):
  """uint8 LR [b, 16, 16, 3] -> uint8 SR [b, 128, 128, 3], as `infer` computes it."""
  from mrr_jax.evaluation import predict  # pylint: disable=g-import-not-at-top

  def serve(lr_u8):
    pixels = bicubic_upsample(lr_u8).astype(jnp.float32)
    return predict.super_resolve(generator, params, pixels, 'round').astype(jnp.uint8)

  return serve


def export_program(generator, params, platforms: Sequence[str] = PLATFORMS):
  """The jax.export.Exported of serving_function, batch symbolic, for `platforms`."""
  from mrr_jax.models import kernels  # pylint: disable=g-import-not-at-top
  batch, = jax.export.symbolic_shape('b')
  spec = jax.ShapeDtypeStruct((batch, 16, 16, 3), jnp.uint8)
  serve = serving_function(generator, jax.tree_util.tree_map(jnp.asarray, dict(params)))

  def traced_with(mode):
    def run(lr_u8):
      with kernels.forced(mode):  # read while platform_dependent traces this branch
        return serve(lr_u8)
    return run

  # Each platform runs the forms `infer` traces there (kernels 'auto'): the
  # CPU forms on a CPU, the plain forms on GPUs and TPUs. Their up convs add
  # in different orders, and float32 rounding would move a rare pixel.
  program = lambda lr_u8: jax.lax.platform_dependent(
      lr_u8, cpu=traced_with('cpu'), default=traced_with('plain'))
  return jax.export.export(jax.jit(program), platforms=tuple(platforms))(spec)


def write_serving(folder: str, generator, params, platforms: Sequence[str] = PLATFORMS) -> None:
  """Writes SERVING_FILES into folder (an export being assembled)."""
  exported = export_program(generator, params, platforms)
  with open(os.path.join(folder, SERVING_FILE), 'wb') as f:
    f.write(exported.serialize())
  info = {'input': 'uint8 [b, 16, 16, 3] LR faces (RGB)',
          'output': 'uint8 [b, 128, 128, 3] SR faces (RGB)',
          'batch': 'symbolic: any b >= 1', 'platforms': list(exported.platforms),
          'jax_version': jax.__version__,
          'computes': 'PIL bicubic 16->128, the generator, clip to [-1, 1], map to '
                      '[0, 255], round (as mrr_jax.infer)'}
  with open(os.path.join(folder, SERVING_INFO), 'w') as f:
    json.dump(info, f, indent=2)
  with open(os.path.join(folder, SERVING_LOADER), 'w') as f:
    f.write(LOADER)
