"""What evaluate and infer share: reading images, the LR path, the generator call.

The LR path mirrors training's LR synthesis (ARCH.md "Training as coded"):
HR 128x128 -> PIL bicubic to 16x16 -> PIL bicubic back to 128x128 -> [-1, 1].
"""
from typing import Dict, Iterable, List

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from mrr_jax import exported
from mrr_jax import input_pipeline
from mrr_jax import metrics

HR_SIZE = input_pipeline.HR_SIZE
LR_SIZE = input_pipeline.LR_SIZE
BICUBIC = 'bicubic'


class InputError(ValueError):
  """An unreadable image file or a model argument that cannot be loaded."""


def read_rgb(path: str) -> np.ndarray:
  """HxWx3 uint8 RGB from any image file PIL reads; InputError naming the file otherwise."""
  try:
    with Image.open(path) as im:
      return np.asarray(im.convert('RGB'), np.uint8)
  except Exception as e:  # PIL raises many unrelated types on corrupt files.
    raise InputError(f'cannot read image {path}: {e}') from e


def resize_bicubic(image: np.ndarray, size: int) -> np.ndarray:
  """PIL bicubic resize of an HxWx3 uint8 image to size x size."""
  return np.asarray(Image.fromarray(image).resize((size, size), Image.BICUBIC), np.uint8)


# The 16x16 LR of a 128x128 HR, made exactly as training makes it.
degrade = input_pipeline.shrink_hr
# The network input's pixels (PIL bicubic 16->128), also the bicubic baseline.
upsample_lr = input_pipeline.upsample_lr


def to_model_input(pixels: jax.Array) -> jax.Array:
  """uint8-valued pixels -> [-1, 1] as training feeds them (ToTensor, Normalize(0.5, 0.5))."""
  return jnp.asarray(pixels, jnp.float32) / 127.5 - 1.0


def load_model(model: str):
  """(MRRNet or None for bicubic, params, metadata) from --model."""
  if model == BICUBIC:
    return None, {}, {}
  try:
    return exported.load_generator(model)
  except exported.ExportError as e:
    raise InputError(f'--model {model}: {e}') from e


def super_resolve(generator, params, pixels: jax.Array, quantize: str = 'round') -> jax.Array:
  """SR pixel values in [0, 255] from the bicubic-upsampled LR pixels ([N, 128, 128, 3]).

  The bicubic baseline is those pixels themselves, already uint8.
  """
  if generator is None:
    return jnp.asarray(pixels, jnp.float32)
  return metrics.quantize(generator.apply({'params': params}, to_model_input(pixels)), quantize)


def attention_maps(generator, params, pixels: jax.Array) -> Dict[str, jax.Array]:
  """{block name: [N, h, w, 1] map} from the 'intermediates' collection (jittable)."""
  _, state = generator.apply({'params': params}, to_model_input(pixels), mutable=['intermediates'])
  return {name: v['att_map'][0] for name, v in state['intermediates'].items() if 'att_map' in v}


def forward_order(block_names: Iterable[str]) -> List[str]:
  """Generator block names (encoder_i, res_layers_i, decoder_i) in the order they run."""
  stage = {'encoder': 0, 'res_layers': 1, 'decoder': 2}
  key = lambda name: (stage[name.rsplit('_', 1)[0]], int(name.rsplit('_', 1)[1]))
  return sorted(block_names, key=key)
