"""Parameter initialisation by name rule, in numpy, as the authors' code does it.

The authors' `init_weights` walks the generator's modules and sets conv
weights N(0, 0.02), biases 0, norm scales 1; the discriminator keeps
PyTorch's default conv init. Doing the same here by leaf name avoids
compiling flax's init (XLA needs about 20 s on CPU for this model's
threefry-based init, longer than a training step) and gives the same
distributions. Shapes come from jax.eval_shape, so nothing is computed twice.
"""
from typing import Any, Callable, Dict, Tuple

import flax
import jax
import jax.numpy as jnp
import numpy as np

Path = Tuple[str, ...]
Rule = Callable[[np.random.Generator, Path, Tuple[int, ...]], np.ndarray]


def abstract_variables(module, image_size: int = 128, **kwargs) -> Dict[str, Any]:
  """The module's variables as ShapeDtypeStructs (no compilation, no compute)."""
  x = jnp.zeros((1, image_size, image_size, 3), jnp.float32)
  return jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), x, **kwargs))


def _fill(tree, rule: Rule, rng: np.random.Generator):
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(tree))
  return flax.traverse_util.unflatten_dict(
      {path: rule(rng, path, tuple(leaf.shape)).astype(np.float32)
       for path, leaf in sorted(flat.items())})


def generator_rule(rng, path, shape):
  """The authors' init_weights: conv/dense weights N(0, 0.02), biases 0, scales 1."""
  if path[-1] == 'kernel':
    return rng.normal(0.0, 0.02, shape)
  return np.ones(shape) if path[-1] == 'scale' else np.zeros(shape)


def torch_default_rule(rng, path, shape, fan_in):
  """PyTorch's Conv2d default: weight and bias U(+-1/sqrt(fan_in))."""
  bound = 1.0 / np.sqrt(fan_in)
  return rng.uniform(-bound, bound, shape)


def init_generator(model, seed: int) -> Dict[str, Any]:
  """Generator params, deterministic in `seed`."""
  return _fill(abstract_variables(model)['params'], generator_rule, np.random.default_rng(seed))


def init_discriminator(model, seed: int) -> Tuple[Dict[str, Any], Dict[str, Any]]:
  """(params, spectral) for the discriminator: PyTorch default init, random unit u, v."""
  variables = abstract_variables(model, train=False)
  rng = np.random.default_rng(seed)
  fan_in = {path[0]: int(np.prod(leaf.shape[:-1])) for path, leaf in
            flax.traverse_util.flatten_dict(flax.core.unfreeze(variables['params'])).items()
            if path[-1] == 'kernel'}
  params = _fill(variables['params'],
                 lambda r, p, s: torch_default_rule(r, p, s, fan_in[p[0]]), rng)

  def unit(r, p, s):
    z = r.standard_normal(s)
    return z / np.linalg.norm(z)

  return params, _fill(variables['spectral'], unit, rng)


def init_vgg19_random(model, seed: int) -> Dict[str, Any]:
  """A random VGG19 (He normal, zero bias), for tests and timing only."""
  variables = abstract_variables(model, image_size=32)

  def he(r, p, s):
    return r.normal(0.0, np.sqrt(2.0 / np.prod(s[:-1])), s) if p[-1] == 'kernel' else np.zeros(s)

  return _fill(variables['params'], he, np.random.default_rng(seed))
