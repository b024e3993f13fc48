"""How an HR face becomes the network's input: the degradation an SR researcher changes most.

As the authors' code: LR = PIL bicubic 128 -> 16 (PIL widens the kernel by
the scale when shrinking, i.e. it antialiases), network input = PIL bicubic
16 -> 128, pixels mapped to [-1, 1] (torchvision ToTensor + Normalize(0.5,
0.5)). docs/architecture.md#augmentation-and-lr-synthesis.
"""
import numpy as np

from mrr_jax.data import resize
from mrr_jax.data.images import HR_SIZE, LR_SIZE


# How HR becomes LR (config.data.resize, evaluate --resize): 'pil', the authors'
# PIL bicubic; 'matlab', MATLAB's antialiased bicubic imresize (mrr_jax.data.matlab_resize),
# which most SR papers' test sets were made with.
LR_RESIZES = ('pil', 'matlab')


def make_lr(hr_u8: np.ndarray, method: str = 'pil') -> np.ndarray:
  """128x128x3 uint8 HR -> its 16x16x3 uint8 LR, by PIL's or MATLAB's bicubic."""
  if method == 'matlab':
    from mrr_jax.data import matlab_resize  # pylint: disable=g-import-not-at-top
    return matlab_resize.imresize(np.asarray(hr_u8, np.uint8), (LR_SIZE, LR_SIZE))
  if method != 'pil':
    raise ValueError(f'LR resize must be one of {", ".join(LR_RESIZES)}, got {method!r}')
  return resize.pil_bicubic(hr_u8, LR_SIZE)


def upsample_lr(lr_u8: np.ndarray) -> np.ndarray:
  """16x16x3 uint8 LR -> 128x128x3 uint8 network input (also the bicubic baseline)."""
  return resize.pil_bicubic(lr_u8, HR_SIZE)


def upsample_lr_batch(lr_u8: np.ndarray) -> np.ndarray:
  """(B, 16, 16, 3) uint8 LR -> (B, 128, 128, 3) float64 holding upsample_lr's uint8 values."""
  return resize.pil_bicubic_batch(lr_u8, HR_SIZE)


def to_float(u8: np.ndarray) -> np.ndarray:
  """uint8 [0,255] -> float32 [-1,1] (torchvision ToTensor + Normalize(0.5, 0.5)).

  In place on one new array: a batch is megabytes, and each fresh temporary
  costs page faults that measured more than the arithmetic.
  """
  out = np.array(u8, np.float32)
  out /= np.float32(127.5)
  out -= np.float32(1.0)
  return out
