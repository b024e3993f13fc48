"""Helpers shared by the input-pipeline tests: pixels back from batches, batch equality."""
import numpy as np


def to_u8(x):
  """[-1, 1] floats -> the uint8 pixel values they encode (inverse of input_pipeline.to_float)."""
  return np.round((np.asarray(x, np.float64) + 1.0) * 127.5).astype(np.uint8)


def take(it, n):
  return [next(it) for _ in range(n)]


def assert_same(a, b):
  """Two lists of batches are equal key by key, exactly."""
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert x.keys() == y.keys()
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])
