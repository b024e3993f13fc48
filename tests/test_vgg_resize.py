"""VGG19's input resize: torch's bilinear interpolate from slices, no matrix product."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mrr_jax.models import vgg


def test_two_to_four_by_hand():
  # torch: source = (o + 0.5) / 2 - 0.5, clamped to the first and last sample.
  x = jnp.asarray([[0.0, 1.0], [2.0, 6.0]]).reshape(1, 2, 2, 1)
  got = np.asarray(vgg.bilinear_upsample(x, 4))[0, ..., 0]
  rows = np.asarray([[0.0, 0.25, 0.75, 1.0], [2.0, 3.0, 5.0, 6.0]])
  want = np.stack([rows[0], 0.75 * rows[0] + 0.25 * rows[1],
                   0.25 * rows[0] + 0.75 * rows[1], rows[1]])
  np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.mark.parametrize('in_size,out_size', [(128, 224), (16, 24), (5, 7), (3, 10), (6, 6)])
def test_values_and_gradient_equal_jax_image_resize(in_size, out_size):
  """jax.image.resize ('bilinear', no antialias) is the same map when enlarging."""
  x = np.random.RandomState(in_size).randn(2, in_size, in_size, 3)
  cotangent = np.random.RandomState(out_size).randn(2, out_size, out_size, 3)
  reference = lambda v: jax.image.resize(v, (2, out_size, out_size, 3), 'bilinear',
                                         antialias=False)
  ours = lambda v: vgg.bilinear_upsample(v, out_size)
  with jax.enable_x64(True):
    (y, dy), (y_ref, dy_ref) = [
        jax.jit(lambda v, f=f: (f(v), jax.grad(lambda u: jnp.vdot(f(u), cotangent))(v)))(x)
        for f in (ours, reference)]
  np.testing.assert_allclose(y, y_ref, atol=1e-12)
  np.testing.assert_allclose(dy, dy_ref, atol=1e-12)


def test_resize_is_slices_not_a_contraction_and_keeps_the_dtype():
  x = jnp.zeros((2, 128, 128, 3), jnp.bfloat16)
  assert vgg.bilinear_upsample(x, 224).dtype == jnp.bfloat16
  text = jax.jit(jax.grad(lambda v: jnp.sum(vgg.bilinear_upsample(v, 224)))).lower(
      x.astype(jnp.float32)).as_text()
  assert 'dot_general' not in text and 'gather' not in text and 'HIGHEST' not in text
  assert 'stablehlo.slice' in text


def test_shrinking_is_refused():
  with pytest.raises(ValueError, match='enlarges: 8 -> 4'):
    vgg.bilinear_upsample(jnp.zeros((1, 8, 8, 1)), 4)
