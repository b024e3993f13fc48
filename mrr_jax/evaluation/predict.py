"""Running a generator the way training feeds it, for every command that runs an export.

The generator takes the 16x16 LR bicubic-upsampled to 128x128
(mrr_jax.data.degradations), in [-1, 1]; its output becomes pixel values as a
PNG stores them (mrr_jax.evaluation.metrics.quantize). 'bicubic' stands for
the network input itself, the first row of every face-SR table.
"""
from typing import Any, Dict, Iterable, List, Optional, Tuple

import jax
import jax.numpy as jnp

from mrr_jax.evaluation import metrics
from mrr_jax.weights import export_format

BICUBIC = 'bicubic'


class ModelError(ValueError):
  """A --model argument that cannot be loaded."""


def to_model_input(pixels: jax.Array) -> jax.Array:
  """uint8-valued pixels -> [-1, 1] as training feeds them (ToTensor, Normalize(0.5, 0.5))."""
  return jnp.asarray(pixels, jnp.float32) / 127.5 - 1.0


def load_model(model: str) -> Tuple[Optional[Any], Dict[str, Any], Dict[str, Any]]:
  """(MRRNet or None for bicubic, params, metadata) from --model."""
  if model == BICUBIC:
    return None, {}, {}
  try:
    return export_format.load_generator(model)
  except export_format.ExportError as e:
    raise ModelError(f'--model {model}: {e}') from e


def super_resolve(generator, params, pixels: jax.Array, quantize: str = 'round') -> jax.Array:
  """SR pixel values in [0, 255] from the bicubic-upsampled LR pixels ([N, 128, 128, 3]).

  The bicubic baseline (generator None) is those pixels themselves, already uint8.
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
